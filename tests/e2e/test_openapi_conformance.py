"""Every route, over real HTTP on devhost + Azurite, answers what the app's own OpenAPI document
says: each response's status is listed for the operation, its content type is the documented
one, required headers are there, and the body validates against the documented schema.

The document is the one the app serves (GET /api/openapi.json), so the limits in it are this
host's settings (2 slots, batches of 5, 100 kB bodies).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
import requests
from schemathesis.specs.openapi.definitions import OPENAPI_31

from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, make_host
from tests.openapi_support import check_response, operations

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
UNKNOWN = "j20261122T1400-s001-0000-1a2b3c4d5e6f7a8b"
MALFORMED = "not-a-job-id"
SETTINGS = {"JOBS_MAX_BATCH": "5", "JOBS_MAX_BODY_BYTES": "100000",
            "JOBS_MAX_WAIT_SECONDS": "20"}


@dataclass
class Checked:
    """Sends requests and checks every answer against the served document."""

    api: Api
    document: dict[str, Any]
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    last: Any = None  # the last requests.Response

    def call(self, method: str, path: str, status: int, *, key: bool = True,
             **kwargs: Any) -> Any:
        """``path`` is the document's template (``/jobs/{id}``); ``id=`` fills it."""
        filled = path.format(**{k: kwargs.pop(k) for k in ("id",) if k in kwargs})
        response = self.api.request(method, "/api" + filled, key=key, **kwargs)
        assert response.status_code == status, \
            f"{method} {filled}: {response.status_code} {response.text[:500]}"
        self.seen.add((path, method.lower(), status))
        self.last = response
        return check_response(self.document, path, method, response)

    def schedule(self, **job: Any) -> dict[str, Any]:
        return dict(self.call("POST", "/jobs", 201, json=job))

    def wait_final(self, job_id: str) -> dict[str, Any]:
        return self.api.wait_final(job_id)


@pytest.fixture(scope="module")
def app(azurite: azurite_helpers.Azurite,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checked]:
    root = tmp_path_factory.mktemp("e2e-openapi")
    host = make_host(azurite, root, **SETTINGS)
    with host:
        api = Api(host)
        r = api.request("GET", "/api/openapi.json")
        assert r.status_code == 200, r.text
        checked = Checked(api, r.json())
        checked.call("POST", "/scheduler/start", 200)
        yield checked
    print(host.logs()[-4000:])


def test_the_served_document_is_valid_and_tells_this_hosts_limits(app: Checked) -> None:
    doc = app.call("GET", "/openapi.json", 200)
    jsonschema.Draft202012Validator(OPENAPI_31).validate(doc)
    assert "max-age" in app.last.headers["Cache-Control"]
    params = {p["name"]: p for p in doc["paths"]["/jobs"]["get"]["parameters"]}
    assert params["slot"]["schema"]["maximum"] == 1  # JOBS_SLOTS=2
    schemas = doc["components"]["schemas"]
    assert schemas["BatchRequest"]["properties"]["jobs"]["maxItems"] == 5
    assert "100000 bytes" in doc["paths"]["/jobs"]["post"]["requestBody"]["description"]
    app.call("GET", "/openapi.json", 401, key=False)


def test_schedule_answers(app: Checked) -> None:
    job = app.call("POST", "/jobs", 201, json={"handler": "echo", "delay": 3600},
                   headers={"Idempotency-Key": "conformance-1"})
    assert app.last.headers["Location"] == f"/api/jobs/{job['id']}"
    again = app.call("POST", "/jobs", 200, json={"handler": "echo", "delay": 3600},
                     headers={"Idempotency-Key": "conformance-1"})
    assert again["id"] == job["id"]
    app.call("POST", "/jobs", 409, json={"handler": "echo", "payload": 2, "delay": 3600,
                                         "idempotency_key": "conformance-1"})
    done = app.call("POST", "/jobs", 200, params={"wait": "20"},
                    json={"handler": "echo", "payload": {"x": 1}})
    assert done["status"] == "succeeded" and done["result"] == {"x": 1}
    late = app.call("POST", "/jobs", 202, headers={"Prefer": "wait=1"},
                    json={"handler": "echo", "delay": 3600})
    assert late["status"] == "scheduled" and int(app.last.headers["Retry-After"]) >= 1
    for body, field_name in [({"handler": "nope"}, "handler"),
                             ({"handler": "echo", "due_at": "2026-01-01T10:00:00"}, "due_at"),
                             ({"handler": "echo", "recurrence": {"cron": "0 0 30 2 *"}},
                              "recurrence"),
                             ({"handler": "echo", "bogus": 1}, "bogus")]:
        problem = app.call("POST", "/jobs", 400, json=body)
        assert problem["field"] == field_name, problem
    app.call("POST", "/jobs", 400, params={"wait": "soon"}, json={"handler": "echo"})
    app.call("POST", "/jobs", 400, data=b"{not json",
             headers={"Content-Type": "application/json"})
    app.call("POST", "/jobs", 400, data=b"[" * 5000 + b"]" * 5000,
             headers={"Content-Type": "application/json"})
    too_big = app.call("POST", "/jobs", 413, json={"handler": "echo", "payload": "x" * 70_000})
    assert too_big["field"] == "payload"
    app.call("POST", "/jobs", 413, json={"handler": "echo", "payload": "x" * 120_000})
    app.call("POST", "/jobs", 415, data=b"handler=echo", headers={"Content-Type": "text/plain"})
    app.call("POST", "/jobs", 401, key=False, json={"handler": "echo"})


def test_batch_answers(app: Checked) -> None:
    results = app.call("POST", "/jobs/batch", 200, json={"jobs": [
        {"handler": "echo", "delay": 3600}, {"handler": "nope"},
        {"handler": "echo", "payload": "x" * 70_000}]})["results"]
    assert [r["status"] for r in results] == [201, 400, 413]
    app.call("POST", "/jobs/batch", 400, json=[{"handler": "echo"}])
    app.call("POST", "/jobs/batch", 413, json={"jobs": [{"handler": "echo"}] * 6})
    app.call("POST", "/jobs/batch", 415, data=b"{}", headers={"Content-Type": "text/plain"})
    app.call("POST", "/jobs/batch", 401, key=False, json={"jobs": []})


def test_list_answers(app: Checked) -> None:
    for _ in range(2):
        app.schedule(handler="echo", delay=3600)
    first = app.call("GET", "/jobs", 200, params={"limit": "1", "status": "scheduled"})
    assert len(first["jobs"]) == 1 and first["next_cursor"]
    second = app.call("GET", "/jobs", 200, params={"limit": "1", "cursor": first["next_cursor"],
                                                    "status": "scheduled"})
    assert second["jobs"][0]["id"] != first["jobs"][0]["id"]
    app.call("GET", "/jobs", 200, params={"handler": "echo", "slot": "1",
                                          "due_from": "2026-01-01T00:00:00Z",
                                          "due_to": "2030-01-01T00:00:00+01:00"})
    for params in ({"status": "sleeping"}, {"cursor": "bogus"}, {"slot": "2"}, {"limit": "0"},
                   {"due_from": "2026-01-01T00:00:00"}):
        app.call("GET", "/jobs", 400, params=params)
    app.call("GET", "/jobs", 401, key=False)


def test_one_job_answers(app: Checked) -> None:
    waiting = app.schedule(handler="echo", delay=3600)
    assert app.call("GET", "/jobs/{id}", 200, id=waiting["id"])["id"] == waiting["id"]
    cancelled = app.call("DELETE", "/jobs/{id}", 200, id=waiting["id"],
                         params={"reason": "conformance"})
    assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "conformance"
    app.call("DELETE", "/jobs/{id}", 409, id=waiting["id"])
    app.call("POST", "/jobs/{id}/run", 409, id=waiting["id"])
    later = app.schedule(handler="echo", payload=5, delay=3600)
    assert app.call("POST", "/jobs/{id}/run", 200, id=later["id"])["id"] == later["id"]
    assert app.wait_final(later["id"])["status"] == "succeeded"
    for method, path in (("GET", "/jobs/{id}"), ("DELETE", "/jobs/{id}"),
                         ("POST", "/jobs/{id}/run"), ("GET", "/jobs/{id}/history")):
        app.call(method, path, 404, id=UNKNOWN)
        app.call(method, path, 400, id=MALFORMED)
        app.call(method, path, 401, id=UNKNOWN, key=False)


def test_reschedule_answers(app: Checked) -> None:
    path = "/jobs/{id}/reschedule"
    waiting = app.schedule(handler="echo", delay=3600)
    later = app.call("POST", path, 200, id=waiting["id"], json={"delay": 7200})
    assert later["status"] == "scheduled" and later["due_at"] > waiting["due_at"]
    at = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    assert app.call("POST", path, 200, id=waiting["id"], json={"due_at": at})["due_at"] \
        .startswith(at[:19])
    for body, field_name in [({}, "due_at"), ({"due_at": "tomorrow"}, "due_at"),
                             ({"delay": -1}, "delay"), ({"due_at": at, "delay": 1}, "delay"),
                             ({"delay": None}, "delay"), ({"when": 1}, "when"),
                             ({"delay": 10**9}, "delay")]:
        problem = app.call("POST", path, 400, id=waiting["id"], json=body)
        assert problem["field"] == field_name, (body, problem)
    assert app.call("GET", "/jobs/{id}", 200, id=waiting["id"])["due_at"].startswith(at[:19])
    app.call("POST", path, 413, id=waiting["id"], json={"delay": 1, "pad": "x" * 120_000})
    app.call("POST", path, 415, id=waiting["id"], data=b"delay=1",
             headers={"Content-Type": "text/plain"})
    now = app.call("POST", path, 200, id=waiting["id"], json={"delay": 0})
    assert app.wait_final(now["id"])["status"] == "succeeded"
    conflict = app.call("POST", path, 409, id=waiting["id"], json={"delay": 60})
    assert "succeeded" in conflict["detail"]
    app.call("POST", path, 404, id=UNKNOWN, json={"delay": 60})
    app.call("POST", path, 400, id=MALFORMED, json={"delay": 60})
    app.call("POST", path, 401, id=UNKNOWN, key=False, json={"delay": 60})


def test_update_answers(app: Checked) -> None:
    path = "/jobs/{id}"
    job = app.schedule(handler="echo", payload={"v": 1}, delay=3600,
                       recurrence={"interval_seconds": 7200})
    updated = app.call("PATCH", path, 200, id=job["id"],
                       json={"payload": {"v": 2}, "retry": {"max_attempts": 2},
                             "timeout_seconds": None})
    assert updated["payload"] == {"v": 2} and updated["max_attempts"] == 2
    assert updated["due_at"] == job["due_at"]
    moved = app.call("PATCH", path, 200, id=job["id"],
                     json={"recurrence": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}})
    assert moved["recurrence"]["cron"] == "0 3 * * *" and moved["due_at"] != job["due_at"]
    for body, field_name in [({"handler": "sleep"}, "handler"), ({"recurrence": None},
                                                                  "recurrence"),
                             ({"retry": {"max_attempts": 0}}, "retry"),
                             ({"timeout_seconds": 0}, "timeout_seconds")]:
        problem = app.call("PATCH", path, 400, id=job["id"], json=body)
        assert problem["field"] == field_name, (body, problem)
    app.call("PATCH", path, 400, id=job["id"], json={})
    app.call("PATCH", path, 413, id=job["id"], json={"payload": "x" * 120_000})
    app.call("PATCH", path, 415, id=job["id"], data=b"payload=1",
             headers={"Content-Type": "text/plain"})
    app.call("DELETE", path, 200, id=job["id"])
    app.call("PATCH", path, 409, id=job["id"], json={"payload": 3})
    app.call("PATCH", path, 404, id=UNKNOWN, json={"payload": 3})
    app.call("PATCH", path, 400, id=MALFORMED, json={"payload": 3})
    app.call("PATCH", path, 401, id=UNKNOWN, key=False, json={"payload": 3})


def test_pause_and_resume_answers(app: Checked) -> None:
    schedule = app.schedule(handler="echo", recurrence={"interval_seconds": 3600}, delay=3600)
    paused = app.call("POST", "/jobs/{id}/pause", 200, id=schedule["id"])
    assert paused["status"] == "paused" and paused["due_at"] == schedule["due_at"]
    assert "paused" in app.call("POST", "/jobs/{id}/pause", 409, id=schedule["id"])["detail"]
    app.call("POST", "/jobs/{id}/run", 409, id=schedule["id"])
    listed = app.call("GET", "/jobs", 200, params={"status": "paused", "limit": "500"})
    assert schedule["id"] in {j["id"] for j in listed["jobs"]}
    resumed = app.call("POST", "/jobs/{id}/resume", 200, id=schedule["id"])
    assert resumed["status"] == "scheduled" and resumed["due_at"] == schedule["due_at"]
    app.call("POST", "/jobs/{id}/resume", 409, id=schedule["id"])
    app.call("POST", "/jobs/{id}/pause", 200, id=schedule["id"])
    cancelled = app.call("DELETE", "/jobs/{id}", 200, id=schedule["id"])
    assert cancelled["status"] == "cancelled"
    for path in ("/jobs/{id}/pause", "/jobs/{id}/resume"):
        app.call("POST", path, 404, id=UNKNOWN)
        app.call("POST", path, 400, id=MALFORMED)
        app.call("POST", path, 401, id=UNKNOWN, key=False)


def test_recurrence_policy_answers(app: Checked) -> None:
    job = app.schedule(handler="echo", recurrence={
        "interval_seconds": 3600, "interval_mode": "fixed_rate", "catch_up_max": 5,
        "overlap": "buffer_one"})
    assert (job["recurrence"]["catch_up_max"], job["recurrence"]["overlap"]) == (5, "buffer_one")
    allowed = app.schedule(handler="echo", recurrence={"cron": "0 * * * *", "overlap": "allow"})
    assert allowed["recurrence"]["overlap"] == "allow"
    app.call("DELETE", "/jobs/{id}", 200, id=allowed["id"])
    for recurrence, words in ((
            {"interval_seconds": 60, "overlap": "allow"}, "fixed_delay"),
            ({"interval_seconds": 60, "catch_up_max": 3}, "fixed_delay"),
            ({"cron": "0 * * * *", "catch_up_max": 3, "misfire_grace_seconds": 5}, "one misfire")):
        problem = app.call("POST", "/jobs", 400, json={"handler": "echo",
                                                       "recurrence": recurrence})
        assert problem["field"] == "recurrence" and words in problem["detail"], problem
    app.call("DELETE", "/jobs/{id}", 200, id=job["id"])


def test_label_answers(app: Checked) -> None:
    job = app.schedule(handler="echo", delay=3600, labels={"team": "conf", "tier": "gold"})
    assert job["labels"] == {"team": "conf", "tier": "gold"}
    listed = app.call("GET", "/jobs", 200, params={"label": "team:conf,tier", "limit": "500"})
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    assert app.call("GET", "/jobs", 200, params={"label": "team:nobody"})["jobs"] == []
    for bad in ("bad key", "a:b,", "k:" + "v" * 129):
        assert app.call("GET", "/jobs", 400, params={"label": bad})["field"] == "label"
    changed = app.call("PATCH", "/jobs/{id}", 200, id=job["id"], json={"labels": {"team": "x"}})
    assert changed["labels"] == {"team": "x"}
    assert app.call("PATCH", "/jobs/{id}", 200, id=job["id"], json={"labels": None})["labels"] == {}
    for labels in ({"bad key": "x"}, {"k": 1}, {f"k{i}": "v" for i in range(17)}, ["x"]):
        problem = app.call("POST", "/jobs", 400, json={"handler": "echo", "labels": labels})
        assert problem["field"] == "labels", problem
    app.call("DELETE", "/jobs/{id}", 200, id=job["id"])


def test_retry_answers(app: Checked) -> None:
    job = app.schedule(handler="echo", payload={"again": True}, delay=3600)
    app.call("POST", "/jobs/{id}/retry", 409, id=job["id"])  # waiting: nothing to retry
    app.call("DELETE", "/jobs/{id}", 200, id=job["id"])
    retried = app.call("POST", "/jobs/{id}/retry", 200, id=job["id"])
    assert (retried["status"], retried["runs"], retried["attempts"]) == ("scheduled", 1, 0)
    assert retried["payload"] == {"again": True} and retried["cancel_reason"] is None
    done = app.wait_final(job["id"])
    assert done["status"] == "succeeded" and done["result"] is not None
    kinds = [r["type"] for r in app.call("GET", "/jobs/{id}/history", 200,
                                         id=job["id"])["records"]]
    assert kinds[:3] == ["add", "cancel", "retry"] and kinds[-1] == "ok", kinds
    app.call("POST", "/jobs/{id}/retry", 409, id=job["id"])  # succeeded
    app.call("POST", "/jobs/{id}/retry", 404, id=UNKNOWN)
    app.call("POST", "/jobs/{id}/retry", 400, id=MALFORMED)
    app.call("POST", "/jobs/{id}/retry", 401, id=UNKNOWN, key=False)


def test_history_answers(app: Checked) -> None:
    job = app.schedule(handler="fail_n_times", payload={"n": 1, "key": "h"},
                       retry={"max_attempts": 3, "base_delay": 0.2, "max_delay": 1})
    assert app.wait_final(job["id"])["status"] == "succeeded"
    history = app.call("GET", "/jobs/{id}/history", 200, id=job["id"])
    kinds = [r["type"] for r in history["records"]]
    assert kinds[0] == "add" and "fail" in kinds and kinds[-1] == "ok", kinds
    assert history["job"]["status"] == "succeeded"


def test_shards_and_timeline_answers(app: Checked) -> None:
    app.schedule(handler="echo", delay=3600)
    page = app.call("GET", "/shards", 200, params={"limit": "1"})
    assert len(page["shards"]) == 1
    if page["next_cursor"]:
        app.call("GET", "/shards", 200, params={"limit": "1", "cursor": page["next_cursor"]})
    app.call("GET", "/shards", 200, params={"slot": "0", "bucket_from": "2026-01-01T00:00:00Z",
                                            "bucket_to": "2030-01-01T00:00:00Z"})
    for params in ({"slot": "2"}, {"limit": "501"}, {"cursor": "bogus"},
                   {"bucket_from": "2026-02-01T00:00:00Z", "bucket_to": "2026-01-01T00:00:00Z"}):
        app.call("GET", "/shards", 400, params=params)
    line = app.call("GET", "/timeline", 200, params={"minutes": "5"})
    assert len(line["points"]) >= 5
    app.call("GET", "/timeline", 200)
    for minutes in ("0", "1441", "x"):
        app.call("GET", "/timeline", 400, params={"minutes": minutes})
    app.call("GET", "/shards", 401, key=False)
    app.call("GET", "/timeline", 401, key=False)


def test_scheduler_and_dashboard_answers(app: Checked) -> None:
    started = app.call("POST", "/scheduler/start", 200)
    assert [s["action"] for s in started["slots"]] == ["already running"] * 2
    status = app.call("GET", "/scheduler", 200)
    assert len(status["slots"]) == 2 and "metrics" in status
    app.call("POST", "/scheduler/start", 401, key=False)
    app.call("GET", "/scheduler", 401, key=False)
    page = app.call("GET", "/dashboard", 200, key=False, params={"code": app.api.host.key})
    assert "<html" in page.lower()
    app.call("GET", "/dashboard", 401, key=False)


def test_purge_answers(app: Checked) -> None:
    """Nothing here is older than the retention: the purge deletes nothing."""
    dry = app.call("POST", "/maintenance/purge", 200, json={"dry_run": True,
                                                            "retention_days": 1})
    assert dry["dry_run"] is True and dry["shards"]["shards_deleted"] == 0
    assert app.call("POST", "/maintenance/purge", 200)["shards"]["shards_deleted"] == 0
    for body in ({"retention_days": 0}, {"dry_run": "yes"}, {"bogus": 1}, [1]):
        app.call("POST", "/maintenance/purge", 400, json=body)
    app.call("POST", "/maintenance/purge", 413, json={"dry_run": True, "pad": "x" * 5000})
    app.call("POST", "/maintenance/purge", 415, data=b"dry_run=1",
             headers={"Content-Type": "text/plain"})
    app.call("POST", "/maintenance/purge", 401, key=False)


def test_storage_unavailable_is_the_documented_503(azurite: azurite_helpers.Azurite,
                                                   tmp_path_factory: pytest.TempPathFactory,
                                                   app: Checked) -> None:
    """A host whose storage refuses it (a wrong account key: 403, not retried)."""
    wrong = azurite.connection_string.replace(azurite_helpers.ACCOUNT_KEY,
                                              "d3Jvbmcta2V5LWZvci10ZXN0cw==")
    assert wrong != azurite.connection_string
    root = tmp_path_factory.mktemp("e2e-openapi-503")
    with make_host(azurite, root, JOBS_STORAGE_CONNECTION_STRING=wrong) as host:
        down = Checked(Api(host), app.document)
        down.call("POST", "/jobs", 503, json={"handler": "echo"})
        down.call("POST", "/jobs/batch", 503, json={"jobs": [{"handler": "echo"}]})
        down.call("GET", "/jobs", 503)
        for path in ("/jobs/{id}", "/jobs/{id}/history"):
            down.call("GET", path, 503, id=UNKNOWN)
        down.call("DELETE", "/jobs/{id}", 503, id=UNKNOWN)
        down.call("POST", "/jobs/{id}/run", 503, id=UNKNOWN)
        down.call("POST", "/jobs/{id}/reschedule", 503, id=UNKNOWN, json={"delay": 60})
        down.call("POST", "/jobs/{id}/pause", 503, id=UNKNOWN)
        down.call("PATCH", "/jobs/{id}", 503, id=UNKNOWN, json={"payload": 1})
        down.call("POST", "/jobs/{id}/resume", 503, id=UNKNOWN)
        down.call("POST", "/jobs/{id}/retry", 503, id=UNKNOWN)
        down.call("GET", "/shards", 503)
        down.call("GET", "/timeline", 503)
        down.call("POST", "/maintenance/purge", 503, json={"dry_run": True})
        assert int(down.last.headers["Retry-After"]) >= 1
    app.seen |= down.seen


def test_unknown_routes_and_methods_are_the_hosts(app: Checked) -> None:
    """Outside the document: the host answers an unknown route 404 and a known route with
    another method 405, without a body (as the Functions host does)."""
    r = requests.get(app.api.host.url("/api/nothing"), headers=app.api.host.headers, timeout=30)
    assert r.status_code == 404 and not r.content
    r = requests.put(app.api.host.url("/api/jobs"), headers=app.api.host.headers, timeout=30)
    assert r.status_code == 405 and not r.content


def test_every_documented_operation_and_status_was_met(app: Checked,
                                                       request: pytest.FixtureRequest) -> None:
    """Runs last: every operation answered at least one documented success and 401, and every
    documented status of the job routes was produced for real."""
    selected = {i.name for i in request.session.items if i.module is request.module}
    if not {n for n in dir(request.module) if n.startswith("test_")} <= selected:
        pytest.skip("checks what the whole module did; run the whole module")
    for path, method, op in operations(app.document):
        met = {status for p, m, status in app.seen if (p, m) == (path, method)}
        assert any(200 <= s < 300 for s in met), (path, method, met)
        assert 401 in met, (path, method)
        if not path.startswith(("/scheduler", "/openapi", "/dashboard")):
            documented = {int(s) for s in op["responses"]}
            assert documented <= met, (path, method, sorted(documented - met))
