"""End to end: SIGKILL the host mid-cycle, restart it: every accepted job completes. The app
runs in two worker processes (``--workers 2``), as it does scaled out: they die with the host."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import azurite as azurite_helpers
from tests.e2e.helpers import FINAL, Api, make_host, poll

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.slow]


def test_sigkill_mid_cycle_loses_no_job(azurite: azurite_helpers.Azurite,
                                       tmp_path: Path) -> None:
    host = make_host(azurite, tmp_path, workers=2, JOBS_JOB_TIMEOUT_SECONDS="5",
                     JOBS_ABANDON_GRACE_SECONDS="1", JOBS_MAX_SLEEP_SECONDS="3")
    with host:
        api = Api(host)
        api.start()
        jobs = [{"handler": "sleep", "payload": {"seconds": 1.5}, "delay": 1 + i % 3,
                 "retry": {"max_attempts": 5, "base_delay": 0.2, "max_delay": 1}}
                for i in range(60)]
        r = api.request("POST", "/api/jobs/batch", json={"jobs": jobs})
        assert r.status_code == 200, r.text
        ids = [x["job"]["id"] for x in r.json()["results"]]
        # kill while handlers run: some jobs are started and have not reported back
        poll(lambda: api.request("GET", "/api/jobs",
                                 params={"status": "running", "limit": "500"}).json()["jobs"],
             lambda running: len(running) > 0, timeout=60, interval=0.05)
        host.kill()
        killed_at = time.monotonic()
        # accepted while the host is down? no: but a job accepted right after restart must too
        host.start()
        api.start()
        late = api.schedule(handler="echo", payload="after restart")
        ids.append(late["id"])
        final = {}
        for job_id in ids:
            final[job_id] = api.wait_final(job_id, timeout=120)
        statuses = {j["status"] for j in final.values()}
        assert statuses == {"succeeded"}, {k: v for k, v in final.items()
                                           if v["status"] != "succeeded"}
        rerun = [j for j in final.values() if j["attempts"] > 1]
        print(f"{len(ids)} jobs done {time.monotonic() - killed_at:.1f} s after the kill; "
              f"{len(rerun)} ran more than once (at-least-once after the crash)")
        assert all(j["status"] in FINAL for j in final.values())
