"""End to end: the Functions app on devhost + Azurite, over real HTTP (one host per module)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, make_host, poll, started_api

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


@pytest.fixture(scope="module")
def api(azurite: azurite_helpers.Azurite,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from started_api(azurite, tmp_path_factory, "e2e-api")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_job_runs_at_its_due_time_and_succeeds(api: Api) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    job = api.schedule(handler="echo", payload={"hello": "world"}, due_at=iso(due))
    assert job["status"] == "scheduled"
    done = api.wait_final(job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"hello": "world"}
    started = datetime.fromisoformat(done["started_at"].replace("Z", "+00:00"))
    assert started >= due
    assert (started - due).total_seconds() < 10  # loaded CI: generous


def problem_of(r: object) -> dict:  # type: ignore[type-arg]
    resp = r  # requests.Response
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.text  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == resp.status_code  # type: ignore[attr-defined]
    return dict(body)


def list_all(api: Api) -> list[str]:
    r = api.request("GET", "/api/jobs", params={"limit": "500"})
    assert r.status_code == 200, r.text
    return [j["id"] for j in r.json()["jobs"]]


def test_bad_input_is_a_4xx_problem_and_writes_nothing(api: Api) -> None:
    before = list_all(api)
    cases = [
        ({"json": {"handler": "nope"}}, 400, "handler"),
        ({"json": {"handler": "echo", "due_at": "tomorrow"}}, 400, "due_at"),
        ({"json": {"handler": "echo", "due_at": "2026-01-01T10:00:00"}}, 400, "due_at"),
        ({"json": {"handler": "echo", "payload": "x" * 70_000}}, 413, "payload"),
        ({"data": b"{not json", "headers": {"content-type": "application/json"}}, 400, None),
        ({"data": b"handler=echo", "headers": {"content-type": "text/plain"}}, 415, None),
        ({"json": {"handler": "echo", "bogus": 1}}, 400, "bogus"),
        ({"json": [1, 2]}, 400, None),
        # a key twice (json.loads would keep the last), and NaN, which is not JSON
        ({"data": b'{"handler": "echo", "handler": "sleep"}',
          "headers": {"content-type": "application/json"}}, 400, None),
        ({"data": b'{"handler": "echo", "payload": {"x": NaN}}',
          "headers": {"content-type": "application/json"}}, 400, None),
        ({"json": {"handler": "echo"}, "params": {"wait": "nan"}}, 400, "wait"),
        ({"json": {"handler": "echo"}, "params": {"wait": "inf"}}, 400, "wait"),
        ({"json": {"handler": "echo", "notify": "jobshub-control-00"}}, 400, "notify"),
        ({"json": {"handler": "echo", "notify": "not-allowed"}}, 400, "notify"),
    ]
    for kwargs, status, field in cases:
        r = api.request("POST", "/api/jobs", **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        body = problem_of(r)
        if field:
            assert body.get("field") == field, body
        if kwargs.get("data", b"").count(b'"handler"') == 2:
            assert "'handler' appears twice" in body["detail"], body
    unknown = "j20261122T1400-s001-0000-1a2b3c4d5e6f7a8b"
    for method in ("GET", "DELETE"):
        r = api.request(method, f"/api/jobs/{unknown}")
        assert r.status_code == 404, r.text
        problem_of(r)
        r = api.request(method, "/api/jobs/not-a-job-id")
        assert r.status_code == 400, r.text
        problem_of(r)
    r = api.request("POST", f"/api/jobs/{unknown}/run")
    assert r.status_code == 404
    r = api.request("POST", "/api/jobs", key=False, json={"handler": "echo"})
    assert r.status_code == 401
    assert list_all(api) == before


def test_wait_answers_200_when_done_and_202_when_not(api: Api) -> None:
    r = api.request("POST", "/api/jobs", params={"wait": "20"},
                    json={"handler": "echo", "payload": 7})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded" and r.json()["result"] == 7
    assert r.headers["Location"] == f"/api/jobs/{r.json()['id']}"
    r = api.request("POST", "/api/jobs", headers={"Prefer": "wait=1"},
                    json={"handler": "echo", "payload": 8, "delay": 4})
    assert r.status_code == 202, r.text
    assert int(r.headers["Retry-After"]) >= 1
    job_id = r.json()["id"]
    assert r.headers["Location"] == f"/api/jobs/{job_id}"
    assert api.wait_final(job_id)["status"] == "succeeded"  # never dropped


def test_cancelled_job_never_runs(api: Api) -> None:
    job = api.schedule(handler="echo", payload=1, delay=3)
    r = api.request("DELETE", f"/api/jobs/{job['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    r = api.request("DELETE", f"/api/jobs/{job['id']}")
    assert r.status_code == 409
    problem_of(r)
    r = api.request("POST", f"/api/jobs/{job['id']}/run")
    assert r.status_code == 409
    # a later job on the same host runs: the slot went past the cancelled one's due time
    later = api.schedule(handler="echo", payload=2, delay=4)
    assert api.wait_final(later["id"])["status"] == "succeeded"
    final = api.get(job["id"])
    assert final["status"] == "cancelled" and final["attempts"] == 0 and final["started_at"] is None


def test_parallel_starters_leave_exactly_one_instance_per_slot(api: Api) -> None:
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.request("POST", "/api/scheduler/start"),
                                range(10)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    r = api.request("GET", "/runtime/webhooks/durabletask/instances",
                    params={"instanceIdPrefix": "jobs-slot-"})
    assert r.status_code == 200, r.text
    running = [i for i in r.json() if i["runtimeStatus"] in ("Running", "Pending")]
    assert sorted(i["instanceId"] for i in running) == ["jobs-slot-0", "jobs-slot-1"]
    status = api.request("GET", "/api/scheduler").json()["slots"]
    assert [s["runtime_status"] for s in status] == ["Running", "Running"] or \
        all(s["runtime_status"] in ("Running", "Pending") for s in status)


def test_retry_then_succeed_and_compensation_after_final_failure(api: Api) -> None:
    flaky = api.schedule(handler="fail_n_times", payload={"n": 2, "key": "k1"},
                         retry={"max_attempts": 5, "base_delay": 0.2, "max_delay": 1})
    refused = api.schedule(handler="reserve", payload={"fail": True, "item": "seat"})
    exhausted = api.schedule(handler="fail_n_times", payload={"n": 9, "key": "k2"},
                             retry={"max_attempts": 2, "base_delay": 0.2, "max_delay": 1})
    done = api.wait_final(flaky["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 3, done
    assert done["result"] == {"key": "k1", "attempt": 3}
    failed = api.wait_final(refused["id"])
    assert failed["status"] == "failed" and failed["compensation"] == "succeeded", failed
    last = api.wait_final(exhausted["id"])
    assert last["status"] == "failed" and last["attempts"] == 2, last


def test_batch_of_1000(api: Api) -> None:
    jobs = [{"handler": "echo", "payload": i} for i in range(1000)]
    jobs[500] = {"handler": "nope"}
    start = time.monotonic()
    r = api.request("POST", "/api/jobs/batch", json={"jobs": jobs})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 1000
    assert results[500]["status"] == 400 and results[500]["problem"]["field"] == "handler"
    ids = [x["job"]["id"] for i, x in enumerate(results) if i != 500]
    assert all(x["status"] == 201 for i, x in enumerate(results) if i != 500)
    assert len(set(ids)) == 999
    print(f"batch of 1000 accepted in {time.monotonic() - start:.2f} s")

    def succeeded() -> int:
        total, cursor = 0, None
        while True:
            params = {"limit": "500", "status": "succeeded", "handler": "echo"}
            if cursor:
                params["cursor"] = cursor
            page = api.request("GET", "/api/jobs", params=params).json()
            total += sum(1 for j in page["jobs"] if j["id"] in wanted)
            cursor = page["next_cursor"]
            if not cursor:
                return total

    wanted = set(ids)
    poll(succeeded, lambda n: n == 999, timeout=120, interval=0.5)


def test_a_redeploy_with_fewer_slots_answers_503_and_keeps_the_jobs(
        api: Api, azurite: azurite_helpers.Azurite, tmp_path: Path) -> None:
    """From the hunt of stop 28: the app redeployed with fewer slots on the same container
    left the jobs of the removed slots to orchestrators nothing kept alive. The container
    records its layout; a deployment that would misread it answers every request 503, naming
    the setting, and touches no job (jobs_core/layout.py)."""
    job = api.schedule(handler="echo", payload={"n": 1}, delay=3600)
    for n in range(40):  # a job in slot 1, the slot the redeploy drops
        if job["id"].split("-")[1] == "s001":
            break
        job = api.schedule(handler="echo", payload={"n": n}, delay=3600)
    assert job["id"].split("-")[1] == "s001"
    before = set(list_all(api))
    fewer = make_host(azurite, tmp_path, JOBS_CONTAINER=api.host.env["JOBS_CONTAINER"],
                      JOBS_SLOTS="1")
    with fewer:
        r = Api(fewer).request("GET", f"/api/jobs/{job['id']}")
        body = problem_of(r)
        assert (r.status_code, body["type"].rsplit("/", 1)[-1]) == (503, "misconfigured"), body
        assert "JOBS_SLOTS is 1, but slot 1 holds jobs" in body["detail"], body
        r = Api(fewer).request("POST", "/api/jobs", json={"handler": "echo"})
        assert r.status_code == 503 and problem_of(r)["type"].endswith("/misconfigured")
    assert api.get(job["id"])["status"] == "scheduled"
    assert set(list_all(api)) == before  # the refused POST wrote nothing
