"""Handler features end to end on devhost + Azurite: the built-in ``http`` handler calling a
local HTTP server under the base JOBS_HTTP_ALLOWED_BASES allows, and a handler limit set by
JOBS_HANDLER_LIMITS."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, make_host

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
SEEN: list[tuple[str, str, bytes]] = []


class Target(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        SEEN.append((self.command, self.path, body))
        status = 200 if self.path.endswith("/ship") else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"path": self.path}).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/"
    server.shutdown()


@pytest.fixture(scope="module")
def api(azurite: azurite_helpers.Azurite, tmp_path_factory: pytest.TempPathFactory,
        target: str) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("e2e-http-handler")
    with make_host(azurite, root, JOBS_HTTP_ALLOWED_BASES=target,
                   JOBS_HANDLER_LIMITS='{"sleep": {"max_concurrency": 1}}') as host:
        client = Api(host)
        client.start()
        yield client


def test_an_http_job_calls_the_allowed_url_and_keeps_the_answer(api: Api, target: str) -> None:
    ok = api.schedule(handler="http", payload={"url": target + "orders/42/ship",
                                               "json": {"carrier": "x"}})
    gone = api.schedule(handler="http", payload={"url": target + "orders/43/nope"},
                        retry={"max_attempts": 3})
    done = api.wait_final(ok["id"])
    assert done["status"] == "succeeded" and done["result"]["status"] == 200
    assert json.loads(done["result"]["body"]) == {"path": "/hooks/orders/42/ship"}
    failed = api.wait_final(gone["id"])
    assert (failed["status"], failed["attempts"]) == ("failed", 1)  # a 404 is not retried
    assert failed["error"]["permanent"] and "HTTP 404" in failed["error"]["message"]
    assert ("POST", "/hooks/orders/42/ship", b'{"carrier": "x"}') in SEEN


def test_a_url_outside_the_allowed_base_is_a_400_and_is_never_called(api: Api,
                                                                      target: str) -> None:
    before = len(SEEN)
    for url in (target.replace("/hooks/", "/admin/"), "http://169.254.169.254/metadata",
                target + "../admin"):
        r = api.request("POST", "/api/jobs", json={"handler": "http", "payload": {"url": url}})
        assert r.status_code == 400 and r.json()["field"] == "payload", r.text
    document = api.request("GET", "/api/openapi.json").json()
    handlers = document["components"]["schemas"]["JobRequest"]["properties"]["handler"]["enum"]
    assert "http" in handlers
    assert len(SEEN) == before


def test_a_handler_limited_to_one_never_overlaps_and_the_status_shows_it(api: Api) -> None:
    ids = [api.schedule(handler="sleep", payload={"seconds": 0.5})["id"] for _ in range(4)]
    jobs = [api.wait_final(i) for i in ids]
    assert {j["status"] for j in jobs} == {"succeeded"}
    spans = sorted((j["started_at"], j["finished_at"]) for j in jobs)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans  # one at a time (ISO-8601 UTC strings sort by time)
    status = api.request("GET", "/api/scheduler").json()
    assert status["handler_limits"] == {"sleep": {"max_concurrency": 1, "max_per_second": None,
                                                  "in_use": 0}}
    totals = [s["custom_status"].get("totals", {}) for s in status["slots"]
              if isinstance(s.get("custom_status"), dict)]
    assert sum(t.get("throttled", 0) for t in totals) > 0  # the others waited their turn
