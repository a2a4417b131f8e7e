"""End to end: state-change events are never lost. The queue service refuses every message
while jobs run (the eager sends fail and wait in the process's memory), the host is killed
with SIGKILL (that memory is gone), and is started again with the queue service back: every
change of every job arrives, published from the job log (jobs_core/event_log.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, drain_queue, make_host, poll, states_by_job

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.slow]
FAST = {"max_attempts": 2, "base_delay": 0.1, "max_delay": 0.1, "jitter": 0}


def test_events_refused_then_lost_with_the_process_arrive_from_the_log(
        azurite: azurite_helpers.Azurite, tmp_path: Path) -> None:
    assert azurite.queue_endpoint, "Azurite's queue service is needed"
    events_queue = f"ev-{azurite_helpers.unique_container()}"
    notify_queue = f"nt-{azurite_helpers.unique_container()}"
    dead_port = azurite_helpers._free_ports(1)[0]  # nothing listens: connection refused
    refusing = azurite_helpers.connection_string(
        azurite.blob_endpoint, f"http://127.0.0.1:{dead_port}/devstoreaccount1")
    host = make_host(azurite, tmp_path, JOBS_EVENTS_QUEUE=events_queue,
                     JOBS_STORAGE_CONNECTION_STRING=refusing)
    with host:
        api = Api(host)
        api.start()
        ok = api.schedule(handler="echo", payload={"n": 1}, notify=notify_queue)
        flaky = api.schedule(handler="fail_n_times", payload={"n": 1, "key": "log"},
                             retry=FAST)
        later = api.schedule(handler="echo", delay=3600)
        assert api.request("DELETE", f"/api/jobs/{later['id']}").status_code == 200
        for job in (ok, flaky):
            api.wait_final(job["id"])
        status = api.request("GET", "/api/scheduler").json()
        assert drain_queue(azurite, events_queue, missing_ok=True) == []  # nothing got through
        host.kill()  # the eager sends still waiting for a retry die with the process

        host.env["JOBS_STORAGE_CONNECTION_STRING"] = azurite.connection_string
        host.start()
        api.start()
        began = time.monotonic()
        want = {
            ok["id"]: ["scheduled", "started", "succeeded"],
            flaky["id"]: ["scheduled", "started", "retrying", "started", "succeeded"],
            later["id"]: ["scheduled", "cancelled"],
        }
        seen: list[dict[str, Any]] = []

        def arrived() -> dict[str, list[str]]:
            seen.extend(drain_queue(azurite, events_queue, missing_ok=True))
            return states_by_job(seen)

        # a slot whose activity died with the process waits out the cycle deadline (60 s:
        # devhost models the 5-minute visibility timeout of the lost activity's message)
        got = poll(arrived, lambda by_job: all(by_job.get(k) == v for k, v in want.items()),
                   timeout=150)
        assert {k: got[k] for k in want} == want
        notified = poll(lambda: drain_queue(azurite, notify_queue, missing_ok=True),
                        lambda evs: len(evs) >= 3, timeout=30)
        assert [e["state"] for e in notified] == ["scheduled", "started", "succeeded"]
        duplicates = len(seen) - len({e["id"] for e in seen})
        print(f"all {len(want)} jobs' events arrived {time.monotonic() - began:.1f} s after "
              f"the restart; {duplicates} duplicate(s); before the kill: "
              f"{json.dumps(status.get('events') or {})[:300]}")
