"""End to end: state-change events on Azurite queues and the operator figures of
GET /api/scheduler, with the app on devhost (one host for the module)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, drain_queue, make_host, poll, states_by_job

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
FAST = {"max_attempts": 2, "base_delay": 0.1, "max_delay": 0.1, "jitter": 0}


@pytest.fixture(scope="module")
def events_queue() -> str:
    return f"ev-{azurite_helpers.unique_container()}"


@pytest.fixture(scope="module")
def api(azurite: azurite_helpers.Azurite, events_queue: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("e2e-events")
    host = make_host(azurite, root, JOBS_EVENTS_QUEUE=events_queue)
    with host:
        client = Api(host)
        client.start()
        yield client
    print(host.logs()[-4000:])


def test_every_transition_arrives_on_the_events_and_notify_queues(
        api: Api, azurite: azurite_helpers.Azurite, events_queue: str) -> None:
    ok = api.schedule(handler="echo", payload={"n": 1}, notify="e2e-billing")
    flaky = api.schedule(handler="fail_n_times", payload={"n": 1, "key": "k"}, retry=FAST)
    doomed = api.schedule(handler="reserve", payload={"fail": True}, retry=FAST)
    later = api.schedule(handler="echo", delay=3600)
    assert api.request("DELETE", f"/api/jobs/{later['id']}").status_code == 200
    for job in (ok, flaky, doomed):
        api.wait_final(job["id"])
    want = {
        ok["id"]: ["scheduled", "started", "succeeded"],
        flaky["id"]: ["scheduled", "started", "retrying", "started", "succeeded"],
        doomed["id"]: ["scheduled", "started", "failed"],
        later["id"]: ["scheduled", "cancelled"],
    }
    seen: list[dict[str, Any]] = []

    def arrived() -> dict[str, list[str]]:  # each change once (by event id), in order
        seen.extend(drain_queue(azurite, events_queue))
        return states_by_job(seen)

    got = poll(arrived, lambda by_job: all(by_job.get(k) == v for k, v in want.items()),
               timeout=30)
    assert {k: got[k] for k in want} == want
    # at-least-once: the eager send and the publisher reading the log both deliver most
    # changes (the same event id each time); counted, not asserted
    copies = Counter(e["id"] for e in seen)
    print(f"{len(copies)} events, {sum(copies.values()) - len(copies)} extra copies")
    failed = next(e for e in seen if e["job_id"] == doomed["id"] and e["state"] == "failed")
    assert failed["error"]["type"] == "PermanentJobError" and failed["handler"] == "reserve"
    done = next(e for e in seen if e["job_id"] == ok["id"] and e["state"] == "succeeded")
    assert done["result"] == {"n": 1}
    notified: dict[str, dict[str, Any]] = {}
    poll(lambda: notified.update({e["id"]: e for e in drain_queue(azurite, "e2e-billing")}),
         lambda _: len(notified) >= 3, timeout=30)
    assert [e["state"] for e in sorted(notified.values(), key=lambda e: e["at"])] == [
        "scheduled", "started", "succeeded"]
    assert {e["job_id"] for e in notified.values()} == {ok["id"]}


def test_scheduler_reports_the_operator_figures(api: Api) -> None:
    jobs = [api.schedule(handler="echo", payload={"i": i}) for i in range(5)]
    for job in jobs:
        api.wait_final(job["id"])

    def report() -> dict[str, Any]:
        r = api.request("GET", "/api/scheduler")
        assert r.status_code == 200, r.text
        return dict(r.json())

    body = poll(report, lambda b: b["metrics"]["jobs"]["succeeded"] >= 5, timeout=30)
    metrics = body["metrics"]
    slots = [s["custom_status"] for s in body["slots"] if s["custom_status"]]
    # the aggregate is the sum of what each slot reports
    for name in ("started", "succeeded", "retried", "failed"):
        assert metrics["jobs"][name] == sum(s["totals"][name] for s in slots), name
    assert metrics["lateness_ms"]["count"] == metrics["jobs"]["started"]
    assert metrics["lateness_ms"]["p50"] is not None and metrics["lateness_ms"]["max"] >= 0
    assert metrics["storage_requests_per_minute"] > 0
    assert metrics["events"]["messages_sent"] > 0 and metrics["events"]["dropped"] == 0
    for status in slots:
        assert status["metrics"]["claim_ms"] is not None and status["metrics"]["claim_ms"] >= 0
