"""Figures 1-3: storage requests per job, schedule throughput next to the raw append rate,
and the drain rate. Every figure is measured in the same run as its baseline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jobs_core import Executor, JobRequest, JobScheduler, JobStatus
from jobs_core.errors import JobsError

from .common import Env, diff, drain, rate, registry, settings, total

RECORD = b'{"op":"add","id":"' + b"x" * 160 + b'"}\n'  # about the size of one add record


async def lone_job(env: Env) -> dict[str, Any]:
    """One job on a fresh scheduler and executor: schedule, run to success, read it back."""
    store, counter = await env.store("lone")
    reg, cfg = registry(), settings()
    scheduler = JobScheduler(store, reg, cfg)
    executor = Executor(store, reg, cfg, owner="bench-lone")
    try:
        start = time.perf_counter()
        scheduled = await scheduler.schedule(JobRequest("noop"))
        schedule_side = counter.snapshot()
        before = counter.snapshot()
        cycles = 0
        while cycles < 10:
            cycles += 1
            _, result = await executor.run_cycle(scheduled.slot)
            if result.succeeded:
                break
        run_side = diff(counter.snapshot(), before)
        before = counter.snapshot()
        job = await scheduler.get(scheduled.job.id)
        read_back = diff(counter.snapshot(), before)
        elapsed = time.perf_counter() - start
    finally:
        await scheduler.close()
        await store.close()
    all_ops = diff(counter.snapshot(), {})
    return {"jobs": 1, "status": job.status.value, "cycles": cycles, "seconds": elapsed,
            "schedule": schedule_side, "run": run_side, "read_back": read_back,
            "total": all_ops, "requests_total": total(all_ops),
            "requests_per_job": float(total(all_ops))}


async def burst(env: Env, n: int, mode: str) -> dict[str, Any]:
    """``n`` jobs due now, through ``n`` concurrent ``schedule()`` calls (mode ``single``) or
    one ``schedule_many()`` (mode ``bulk``); then drained by a fresh executor."""
    store, counter = await env.store(f"burst-{mode}")
    reg, cfg = registry(), settings()
    scheduler = JobScheduler(store, reg, cfg)
    requests = [JobRequest("noop") for _ in range(n)]
    try:
        start = time.perf_counter()
        if mode == "single":
            scheduled = await asyncio.gather(*(scheduler.schedule(r) for r in requests))
        else:
            answers = await scheduler.schedule_many(requests)
            refused = [a for a in answers if isinstance(a, JobsError)]
            if refused:
                raise refused[0]  # (a benchmark measures a burst that was wholly accepted)
            scheduled = [a for a in answers if not isinstance(a, JobsError)]
        schedule_s = time.perf_counter() - start
        assert len(scheduled) == n, f"{len(scheduled)} of {n} scheduled"
        schedule_side = counter.snapshot()
        executor = Executor(store, reg, cfg, owner=f"bench-{mode}")
        start = time.perf_counter()
        done, rounds = await drain(executor, cfg.slots, n)
        drain_s = time.perf_counter() - start
        run_side = diff(counter.snapshot(), schedule_side)
        last = scheduled[-1]
        assert not isinstance(last, Exception)
        check = await JobScheduler(store, reg, cfg).get(last.job.id)
    finally:
        await scheduler.close()
        await store.close()
    return {
        "jobs": n, "mode": mode,
        "schedule": {"seconds": schedule_s, "jobs_per_s": rate(n, schedule_s),
                     "requests": schedule_side, "requests_total": total(schedule_side),
                     "requests_per_job": total(schedule_side) / n},
        "run": {"seconds": drain_s, "jobs_per_s": rate(done.succeeded, drain_s),
                "succeeded": done.succeeded, "rounds": rounds, "requests": run_side,
                "requests_total": total(run_side), "requests_per_job": total(run_side) / n},
        "requests_per_job_total": (total(schedule_side) + total(run_side)) / n,
        "last_job_status": check.status.value,
        "all_succeeded": done.succeeded == n and check.status is JobStatus.SUCCEEDED,
    }


async def sequential_schedule(env: Env, n: int) -> dict[str, Any]:
    """``n`` ``schedule()`` calls one after the other (each waits until durable)."""
    store, counter = await env.store("seq")
    reg, cfg = registry(), settings()
    scheduler = JobScheduler(store, reg, cfg)
    try:
        start = time.perf_counter()
        for _ in range(n):
            await scheduler.schedule(JobRequest("noop"))
        elapsed = time.perf_counter() - start
    finally:
        await scheduler.close()
        await store.close()
    counts = counter.snapshot()
    return {"jobs": n, "seconds": elapsed, "jobs_per_s": rate(n, elapsed), "requests": counts,
            "requests_total": total(counts), "requests_per_job": total(counts) / n}


async def raw_appends(env: Env, n: int, in_flight: int) -> dict[str, Any]:
    """The raw limit: ``n`` one-record ``append_block`` calls on one blob through
    ``AzureBlobStore.append``, ``in_flight`` at a time (1 = sequential)."""
    store, counter = await env.store(f"raw{in_flight}")
    blob = "raw/one-blob.log"
    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            await store.append(blob, RECORD, create_metadata={})

    try:
        await store.append(blob, RECORD, create_metadata={})  # create it outside the timing
        counter.reset()
        start = time.perf_counter()
        if in_flight == 1:
            for _ in range(n):
                await store.append(blob, RECORD, create_metadata={})
        else:
            await asyncio.gather(*(one() for _ in range(n)))
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    counts = counter.snapshot()
    return {"appends": n, "in_flight": in_flight, "record_bytes": len(RECORD),
            "seconds": elapsed, "records_per_s": rate(n, elapsed), "requests": counts,
            "requests_total": total(counts)}
