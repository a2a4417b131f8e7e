"""``jobsctl`` input that never reaches the API, or reaches it as given: on an
``httpx.MockTransport`` (no server). Bad numbers, files and URLs are exit 2 with a message, not a
traceback with exit 1 (which means "the awaited job failed"); ``--max-attempts 0`` goes to the
API as given instead of being dropped (hunt of stop 29)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from jobs_client import cli
from jobs_client.client import JobsClient
from tests.client.helpers import job_json, problem_response

URL = ["--url", "http://jobs.test", "--key", "k3y"]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """The requests the CLI sends; the API refuses each as invalid (400)."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return problem_response(400, "Invalid job", "max_attempts must be 1-100",
                                field="retry.max_attempts")

    def client(url: str | None, key: str | None, **options: object) -> JobsClient:
        return JobsClient(url, key, transport=httpx.MockTransport(answer),
                          **options)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "JobsClient", client)
    return requests


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    return cli.main([*URL, *argv], stdout=out, stderr=err), out.getvalue() + err.getvalue()


@pytest.mark.parametrize(("argv", "says"), [
    (["watch", "j1", "--interval", "-1"], "--interval: '-1' is not a number of seconds >= 0"),
    (["watch", "j1", "--interval", "0"], "--interval: '0': give more than 0 seconds"),
    (["watch", "j1", "--timeout", "inf"], "--timeout: 'inf' is not a number of seconds"),
    (["wait", "j1", "--timeout", "-5"], "--timeout: '-5' is not a number of seconds"),
    (["list", "--limit", "-1"], "--limit: '-1' is not a whole number >= 0"),
    (["list", "--limit", "x"], "--limit: 'x' is not a whole number >= 0"),
    (["schedule", "echo", "--wait", "nan"], "--wait: 'nan' is not a number of seconds"),
    (["--http-timeout", "0", "status"], "--http-timeout: '0': give more than 0 seconds"),
    (["get", "j1", "--http-timeout", "-1"], "--http-timeout: '-1' is not a number"),
    (["schedule", "echo", "--delay", "inf"], "--delay: 'inf' is not a finite number"),
    (["schedule", "echo", "--every", "nan"], "--every: 'nan' is not a finite number"),
    (["schedule", "echo", "--timeout-seconds", "inf"], "--timeout-seconds: 'inf' is not a"),
    (["reschedule", "j1", "--delay", "nan"], "--delay: 'nan' is not a finite number"),
])
def test_bad_numbers_are_usage_errors_before_any_request(
        sent: list[httpx.Request], argv: list[str], says: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(*argv)
    assert code == cli.USAGE and sent == []
    assert says in capsys.readouterr().err  # (argparse writes to sys.stderr)


def test_a_payload_file_that_is_not_utf8_is_a_usage_error(
        sent: list[httpx.Request], tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(b'{"name": "M\xfcller"}')  # Latin-1
    code, text = run("schedule", "echo", "--payload-file", str(payload))
    assert code == cli.USAGE and "not UTF-8" in text and sent == []


def test_an_invalid_url_is_a_usage_error() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--url", "http://[::1", "--key", "k", "status"], stdout=out, stderr=err)
    assert code == cli.USAGE and "URL" in err.getvalue()


def test_max_attempts_0_goes_to_the_api_which_refuses_it(sent: list[httpx.Request]) -> None:
    code, text = run("schedule", "echo", "--max-attempts", "0")
    assert code == cli.USAGE and "max_attempts" in text
    assert json.loads(sent[0].content)["retry"] == {"max_attempts": 0}


@pytest.mark.parametrize(("payload", "says"), [
    ("NaN", "NaN is not JSON"),
    ('{"a": -Infinity}', "-Infinity is not JSON"),
    ("[Infinity]", "Infinity is not JSON"),
    ("1e400", "a number too large"),
    ('"\\ud800"', "not Unicode text"),
    ("[" * 500 + "]" * 500, "nests arrays/objects too deeply"),  # (the client's encoder)
    ("[" * 100_000 + "]" * 100_000, "nests arrays/objects too deeply"),  # (json.loads)
])
def test_a_payload_that_is_not_strict_json_is_a_usage_error(
        sent: list[httpx.Request], tmp_path: Path, payload: str, says: str) -> None:
    """Python's json reads NaN, Infinity, 1e400 (inf) and lone surrogates, which the request
    cannot carry: a traceback with exit 1 ("the job failed") before this."""
    code, text = run("schedule", "echo", "--payload", payload)
    assert code == cli.USAGE and says in text and sent == [], text
    path = tmp_path / "payload.json"
    path.write_text(payload, encoding="utf-8")
    code, text = run("schedule", "echo", "--payload-file", str(path))
    assert code == cli.USAGE and says in text and sent == [], text


def test_a_key_a_header_cannot_carry_is_a_usage_error_never_printed(
        sent: list[httpx.Request]) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--url", "http://jobs.test", "--key", "s3cret-key\r", "get", "j1"],
                    stdout=out, stderr=err)
    assert code == cli.USAGE and sent == [] and "function key" in err.getvalue()
    assert "s3cret" not in out.getvalue() + err.getvalue()


def test_a_label_filter_with_a_comma_is_a_usage_error(sent: list[httpx.Request]) -> None:
    """``--label team:billing,eu`` went out as two filters (``team:billing`` and a key
    ``eu``) and listed other jobs than asked, or none, with exit 0."""
    code, text = run("list", "--label", "team:billing,eu")
    assert code == cli.USAGE and "comma" in text and sent == []


class ClosedPipe(io.StringIO):
    """Standard output read by ``head -1``: gone after the first line."""

    def write(self, text: str) -> int:
        if self.getvalue():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_reader_that_went_away_is_not_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """``jobsctl --json list | head -1``: exit 2 ("bad arguments") with "[Errno 32] Broken
    pipe" on stderr, a failure for a script under ``set -o pipefail``."""
    page = {"jobs": [job_json(id=f"j{i}") for i in range(3)], "next_cursor": None}

    def client(url: str | None, key: str | None, **options: object) -> JobsClient:
        return JobsClient(url, key, transport=httpx.MockTransport(
            lambda request: httpx.Response(200, json=page)), **options)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "JobsClient", client)
    out, err = ClosedPipe(), io.StringIO()
    code = cli.main([*URL, "--json", "list"], stdout=out, stderr=err)
    assert (code, err.getvalue()) == (141, "")
    assert json.loads(out.getvalue())["id"] == "j0"


@pytest.fixture
def one_job_server() -> Iterator[str]:
    """A server answering every GET with one job (for a jobsctl of its own process)."""
    body = json.dumps(job_json()).encode()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_reader_gone_before_the_last_flush_is_exit_141_too(one_job_server: str) -> None:
    """``jobsctl get ID | true``: the output sat in stdout's buffer (a pipe is block-buffered)
    until the interpreter flushed it at exit, after main() returned 0; that flush met the
    closed pipe, Python printed 'Exception ignored ... BrokenPipeError' and exited 120."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before jobsctl writes
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from jobs_client.cli import run; run()",
             "--url", one_job_server, "--key", "k3y", "get", "j1"],
            stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (cli.PIPE_CLOSED, b"")
