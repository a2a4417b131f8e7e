"""Figure 8: a planning cycle's cost with a year of pending work (issue #13 item 7).

For each size: a fresh container on the bench's Azurite, one slot, ``N`` jobs due evenly over
the next 364 days (hourly buckets: up to 8,736 blobs), scheduled with ``schedule_many``. Then
three cycles of a fresh executor, nothing due: the first (a process's first cycle) and a
forced one list the whole slot, as every cycle did before ``jobs_core/slot_listing.py``; the
warm one lists today's blobs and the busy past days. Each row gives storage requests, blobs
listed and time; the executor's RSS after the cycles shows it does not read future blobs.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from jobs_core import Executor, JobRequest, JobScheduler

from .common import Env, diff, registry, settings, total

SPAN_S = 364 * 86_400
CHUNK = 10_000


async def _cycle(executor: Executor, counter: Any) -> dict[str, Any]:
    before = counter.snapshot()
    start = time.perf_counter()
    plan, _ = await executor.run_cycle(0)
    seconds = time.perf_counter() - start
    ops = diff(counter.snapshot(), before)
    return {"requests": total(ops), "by_op": ops, "seconds": round(seconds, 4),
            "due": plan.due, "shards_read": plan.shards_read}


async def cycle_cost(env: Env, jobs: int) -> dict[str, Any]:
    store, counter = await env.store(f"pending{jobs}")
    reg, cfg = registry(), settings(slots=1)
    scheduler = JobScheduler(store, reg, cfg)
    try:
        start = time.perf_counter()
        for first in range(0, jobs, CHUNK):
            count = min(CHUNK, jobs - first)
            await scheduler.schedule_many([
                JobRequest("noop", {"i": i}, delay=120 + i * SPAN_S // jobs)
                for i in range(first, first + count)])
        scheduled_s = time.perf_counter() - start
        blobs = len(await store.list("shards/s000/"))
        executor = Executor(store, reg, cfg, owner="bench-pending")
        cold = await _cycle(executor, counter)  # a process's first cycle: the whole slot
        warm = await _cycle(executor, counter)  # today and the busy past days
        executor.listing.forget(0)
        full = await _cycle(executor, counter)  # as every cycle did before
        return {"jobs": jobs, "blobs": blobs, "schedule_s": round(scheduled_s, 1),
                "cold": cold, "warm": warm, "full_listing": full,
                "listed_full": executor.listing.full_listings,
                "executor_cache_blobs": len(executor.cache),
                "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    finally:
        await scheduler.close()
        await store.close()
