"""Figure 6: memory of an executor draining many jobs (in-memory store).

Run in its own process (``python -m bench.memory --jobs N``, prints JSON) so the RSS is the
executor's and not the rest of the benchmark's. The store's bytes are reported next to the RSS
(the in-memory store lives in the same process and grows with every record), and so is
``RSS - store bytes``, the part the executor could be blamed for.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from typing import Any

import psutil

from jobs_core import Executor, InMemoryStore, JobRequest, JobScheduler

from .common import registry, settings

SLOTS = 10  # one cycle of a slot finishes up to 10,000 jobs: a checkpoint every ~jobs/10
CHUNK = 5_000


def _store_bytes(store: InMemoryStore) -> int:
    return sum(len(b.data) for b in store._blobs.values())  # a benchmark probe


async def run(jobs: int) -> dict[str, Any]:
    proc = psutil.Process()
    store = InMemoryStore()
    reg, cfg = registry(), settings(slots=SLOTS)
    rss_start = proc.memory_info().rss
    scheduler = JobScheduler(store, reg, cfg)
    for i in range(0, jobs, CHUNK):
        await scheduler.schedule_many([JobRequest("noop") for _ in range(min(CHUNK, jobs - i))])
    await scheduler.close()
    del scheduler
    gc.collect()
    rss_scheduled = proc.memory_info().rss
    executor = Executor(store, reg, cfg, owner="bench-memory")
    finished = 0
    checkpoints: list[dict[str, Any]] = []
    start = time.perf_counter()
    for slot in range(SLOTS):
        while True:
            plan, result = await executor.run_cycle(slot)
            finished += result.succeeded
            if plan.due == 0 or not plan.batches:
                break
        gc.collect()
        rss = proc.memory_info().rss
        held = _store_bytes(store)
        checkpoints.append({"finished": finished, "rss_mb": rss / 2**20,
                            "store_mb": held / 2**20, "rss_minus_store_mb": (rss - held) / 2**20,
                            "cached_blobs": len(executor.cache.names())})
    elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"jobs": jobs, "finished": finished, "seconds": elapsed,
            "jobs_per_s": finished / elapsed if elapsed else 0.0,
            "store": "memory", "rss_start_mb": rss_start / 2**20,
            "rss_after_scheduling_mb": rss_scheduled / 2**20, "peak_rss_mb": peak_kb / 1024,
            "checkpoints": checkpoints}


def pick(checkpoints: list[dict[str, Any]], jobs: int, fractions: tuple[float, ...] = (
        0.1, 0.5, 1.0)) -> list[dict[str, Any]]:
    """The checkpoint nearest to each fraction of the jobs."""
    return [min(checkpoints, key=lambda c: abs(c["finished"] - f * jobs)) for f in fractions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.jobs))
    result["at"] = pick(result["checkpoints"], args.jobs)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
