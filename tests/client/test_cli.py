"""The ``jobsctl`` CLI against the real app: in-process through ``main(argv)`` (output and exit
codes), and once as the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devhost.testing import DevHostProcess, free_port
from jobs_client.cli import EXIT_CODES, main
from tests.client.helpers import UNKNOWN_ID

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
Jobs = Callable[..., tuple[int, str, str]]


@pytest.fixture
def jobs(host: DevHostProcess, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> Iterator[Jobs]:
    """``jobs(*argv)`` -> (exit code, stdout, stderr); URL and key from the environment."""
    monkeypatch.setenv("JOBS_URL", host.base_url)
    monkeypatch.setenv("JOBS_KEY", host.key)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    yield run


def test_schedule_wait_get_and_json(jobs: Jobs) -> None:
    code, out, _ = jobs("schedule", "echo", "--payload", '{"x": 1}', "--wait", "20", "--json")
    assert code == 0
    job = json.loads(out)
    assert job["status"] == "succeeded" and job["result"] == {"x": 1}
    code, _, err = jobs("schedule", "echo", "--label", "no-colon")
    assert code == 2 and "KEY:VALUE" in err
    code, out, _ = jobs("get", job["id"])
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["id"] == job["id"] and lines["status"] == "succeeded"
    assert lines["result"] == '{"x":1}' and lines["attempts"] == "1/5"
    code, out, _ = jobs("--json", "history", job["id"])
    assert code == 0 and [r["type"] for r in json.loads(out)["records"]] == ["add", "start", "ok"]


def test_exit_codes(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(EXIT_CODES) == {0, 1, 2, 3, 4, 5, 6, 7, 130, 141}
    code, _, err = jobs("get", UNKNOWN_ID)
    assert code == 3 and "404 Job not found" in err
    code, _, err = jobs("schedule", "nope")
    assert code == 2 and "field 'handler'" in err
    code, _, err = jobs("schedule", "echo", "--payload", "{not json")
    assert code == 2 and "not JSON" in err
    assert jobs("get")[0] == 2  # argparse: the id is missing
    code, out, _ = jobs("--json", "schedule", "echo", "--delay", "300")
    job_id = json.loads(out)["id"]
    assert jobs("cancel", job_id, "--reason", "test")[0] == 0
    code, _, err = jobs("cancel", job_id)
    assert code == 4 and "409" in err
    code, _, _ = jobs("schedule", "reserve", "--payload", '{"fail": true}', "--wait", "20")
    assert code == 1  # the job failed
    code, out, _ = jobs("--json", "schedule", "echo", "--delay", "120")
    late = json.loads(out)["id"]
    code, out, err = jobs("wait", late, "--timeout", "1", "--json")
    assert code == 6 and json.loads(out)["status"] == "scheduled" and "still scheduled" in err
    assert jobs("cancel", late)[0] == 0
    assert jobs("status", "--key", "wrong")[0] == 7
    monkeypatch.setenv("JOBS_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    code, _, err = jobs("status")
    assert code == 5 and "no answer" in err


def test_list_table_and_json_lines(jobs: Jobs) -> None:
    tag = f"tag:{uuid.uuid4().hex[:8]}"
    ids = [json.loads(jobs("--json", "schedule", "fail_n_times", "--delay", "900",
                           "--label", tag, "--label", "team:cli")[1])["id"] for _ in range(3)]
    code, out, _ = jobs("list", "--label", tag, "--label", "team", "--status", "scheduled",
                        "--page-size", "1", "--limit", "0")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STATUS", "HANDLER", "DUE", "(UTC)", "ATTEMPTS", "RUNS"]
    assert {row.split()[0] for row in rows} == set(ids)
    assert all(row.split()[1:3] == ["scheduled", "fail_n_times"] for row in rows)
    code, out, err = jobs("list", "--handler", "fail_n_times", "--limit", "2", "--json")
    assert code == 0 and len(out.splitlines()) == 2 and "--limit 0 lists all" in err
    assert all(json.loads(line)["handler"] == "fail_n_times" for line in out.splitlines())
    for job_id in ids:
        assert jobs("cancel", job_id)[0] == 0


def test_controls_watch_and_status(jobs: Jobs) -> None:
    job_id = json.loads(jobs("--json", "schedule", "echo", "--payload", '"w"',
                             "--delay", "600")[1])["id"]
    for command, status in (("pause", "paused"), ("resume", "scheduled"),
                            ("run-now", "scheduled")):
        code, out, _ = jobs(command, job_id, "--json")
        assert code == 0 and json.loads(out)["status"] == status, (command, out)
    code, out, _ = jobs("watch", job_id, "--interval", "0.2", "--timeout", "30")
    assert code == 0
    changes = out.splitlines()
    assert changes and changes[-1].split()[1] == "succeeded" and 'result "w"' in changes[-1]
    code, out, _ = jobs("reschedule", job_id, "--delay", "60")
    assert code == 4  # final: nothing to reschedule
    code, out, _ = jobs("status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["SLOT", "RUNTIME"]
    assert [line.split()[:2] for line in lines[1:3]] == [["0", "Running"], ["1", "Running"]]
    assert lines[3].startswith("jobs: ")
    assert lines[5].split() == ["HANDLER", "MAX", "CONCURRENCY", "IN", "USE", "MAX", "PER",
                                "SECOND"]
    assert lines[6].split() == ["sleep", "5", "0", "-"]
    code, out, _ = jobs("start")
    assert code == 0 and out.count("already running") == 2


def test_the_installed_console_script(host: DevHostProcess) -> None:
    script = shutil.which("jobsctl", path=str(Path(sys.executable).parent))
    assert script, "the `jobsctl` console script is not installed: run scripts/bootstrap.sh"
    env = {**os.environ, "JOBS_URL": host.base_url, "JOBS_KEY": host.key}
    done = subprocess.run([script, "--json", "schedule", "echo", "--payload", "[1, 2]",
                           "--wait", "20"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == [1, 2]
    missing = subprocess.run([script, "get", UNKNOWN_ID], env=env, capture_output=True,
                             text=True, timeout=60, check=False)
    assert missing.returncode == 3 and "Job not found" in missing.stderr
