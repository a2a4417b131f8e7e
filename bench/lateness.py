"""Figure 4: lateness (handler start minus due time) with jobs due at a steady rate.

A producer task schedules, every tick, the jobs falling due ``LEAD_S`` later (concurrent
``schedule()`` calls, as API requests would); one executor loop per slot runs a cycle and then
sleeps until the plan's ``next_wake``, capped at ``cap_s``. The ``late`` handler records the
lateness of every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs_core import Executor, JobRequest, JobScheduler

from .common import Env, Lateness, percentiles, rate, registry, settings, steady_ticks, total

LEAD_S = 1.0  # jobs are scheduled this long before they are due
TICK_S = 0.05


async def _produce(scheduler: JobScheduler, first_due: datetime, per_s: float,
                   count: int) -> float:
    """Schedule ``count`` jobs due at ``first_due + i / per_s``; returns the seconds spent
    waiting for ``schedule()`` calls (the producer's own lateness is not job lateness)."""
    busy = 0.0
    async for batch in steady_ticks(first_due, per_s, count, LEAD_S, TICK_S):
        start = time.perf_counter()
        await asyncio.gather(*(scheduler.schedule(JobRequest("late", due_at=due))
                               for _, due in batch))
        busy += time.perf_counter() - start
    return busy


async def _slot_loop(executor: Executor, slot: int, stop: asyncio.Event, cap_s: float,
                     cycles: list[int]) -> None:
    while not stop.is_set():
        plan, _ = await executor.run_cycle(slot)
        cycles[slot] += 1
        wait = (plan.next_wake - datetime.now(UTC)).total_seconds()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(max(wait, 0.0), cap_s))


async def steady(env: Env, per_s: float, window_s: float, cap_s: float) -> dict[str, Any]:
    store, counter = await env.store(f"late{int(per_s)}")
    count = int(per_s * window_s)
    lateness = Lateness(expected=count)
    reg, cfg = registry(lateness), settings()
    scheduler = JobScheduler(store, reg, cfg)
    executor = Executor(store, reg, cfg, owner=f"bench-late-{int(per_s)}")
    stop = asyncio.Event()
    cycles = [0] * cfg.slots
    loops = [asyncio.create_task(_slot_loop(executor, s, stop, cap_s, cycles))
             for s in range(cfg.slots)]
    first_due = datetime.now(UTC) + timedelta(seconds=LEAD_S)
    start = time.perf_counter()
    try:
        producer_busy = await _produce(scheduler, first_due, per_s, count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lateness.all_ran.wait(), 60)
        elapsed = time.perf_counter() - start
    finally:
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
        await scheduler.close()
        await store.close()
    counts = counter.snapshot()
    return {"rate_per_s": per_s, "window_s": window_s, "sleep_cap_s": cap_s, "jobs": count,
            "ran": len(lateness.samples), "seconds": elapsed,
            "producer_busy_s": producer_busy, "cycles": sum(cycles),
            "lateness_s": percentiles(lateness.samples), "requests": counts,
            "requests_total": total(counts), "requests_per_job": total(counts) / count,
            "requests_per_s": rate(total(counts), elapsed),
            "samples": [round(x, 4) for x in lateness.samples]}
