"""End to end with the app in two worker processes (``--workers 2``), as when it is scaled out:
consecutive requests land in different processes, each with its own caches and group commit,
and the slots' activities run in both. Prints the throughput it saw (figures live in bench/)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, make_host

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.slow]
JOBS = 300


@pytest.fixture(scope="module")
def api(azurite: azurite_helpers.Azurite,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("e2e-scale-out")
    host = make_host(azurite, root, workers=2, JOBS_MAX_SLEEP_SECONDS="5",
                     JOBS_MIN_SLEEP_SECONDS="0.2")
    with host:
        client = Api(host)
        client.start()
        yield client
    print(host.logs()[-6000:])


def worker_invocations(api: Api) -> list[int]:
    status = requests.get(api.host.url("/admin/host/status"), timeout=5).json()
    return [int(w["invocations"]) for w in status["workers"]]


def test_what_one_process_wrote_every_other_reads_at_once(api: Api) -> None:
    for i in range(10):  # round-robin: the GET, the cancel and the retry change process
        job = api.schedule(handler="echo", payload={"i": i}, delay=3600,
                           idempotency_key=f"scale-out-{i}")
        assert api.get(job["id"])["status"] == "scheduled"
        again = api.request("POST", "/api/jobs", json={"handler": "echo", "payload": {"i": i},
                                                        "delay": 3600,
                                                        "idempotency_key": f"scale-out-{i}"})
        assert again.status_code == 200 and again.json()["id"] == job["id"]
        cancel = api.request("DELETE", f"/api/jobs/{job['id']}")
        assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
        assert api.get(job["id"])["status"] == "cancelled"
    assert all(n > 0 for n in worker_invocations(api))


def test_single_job_posts_from_many_clients_each_run_once(api: Api) -> None:
    before = worker_invocations(api)

    def post(i: int) -> str:
        return str(api.schedule(handler="echo", payload={"n": i})["id"])

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(post, range(JOBS)))
    accepted = time.monotonic() - began
    final: dict[str, dict[str, Any]] = {}
    for job_id in ids:
        final[job_id] = api.wait_final(job_id, timeout=180)
    done = time.monotonic() - began
    statuses = Counter(j["status"] for j in final.values())
    attempts = Counter(j["attempts"] for j in final.values())
    served = [b - a for a, b in zip(before, worker_invocations(api), strict=True)]
    print(f"{JOBS} single-job POSTs from 16 clients over 2 workers: accepted in "
          f"{accepted:.1f} s ({JOBS / accepted:.0f}/s), all final {done:.1f} s after the first; "
          f"invocations per worker {served}")
    assert statuses == {"succeeded": JOBS}, statuses
    assert attempts == {1: JOBS}, attempts  # no crash, no timeout: no job ran twice
    assert all(n >= JOBS // 4 for n in served), served  # both processes took a share
