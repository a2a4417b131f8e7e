"""A recurrence's misfire policy run_all (``catch_up_max``) and overlap policy
(``buffer_one``), against the default (missed occurrences skipped), on both stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs_core import JobContext, JobRequest
from jobs_core.errors import InvalidRecurrenceError
from jobs_core.store import JobStore
from tests.jobs_helpers import Clock, Recorder, drain, make


async def test_run_all_runs_the_latest_missed_occurrences_back_to_back(store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    start = clock.now
    job = (await scheduler.schedule(JobRequest("echo", recurrence={
        "interval_seconds": 60, "interval_mode": "fixed_rate", "catch_up_max": 3},
        delay=60))).job
    skipping = (await scheduler.schedule(JobRequest("echo", recurrence={
        "interval_seconds": 60, "interval_mode": "fixed_rate"}, delay=60))).job
    clock.advance(60)
    await drain(executor, 1)
    assert rec.runs[job.id] == 1
    clock.advance(600)  # ten minutes down: occurrences +120 s ... +660 s are missed
    await drain(executor, 1)
    assert rec.runs[job.id] == 1 + 1 + 3  # the late one, then the latest three missed
    assert rec.runs[skipping.id] == 1 + 1  # the late one; the missed ones skipped
    after = await scheduler.get(job.id)
    assert after.due_at == start + timedelta(seconds=720) and after.runs == 5
    assert (await scheduler.get(skipping.id)).due_at == start + timedelta(seconds=720)


async def test_buffer_one_runs_the_first_occurrence_that_came_due_during_a_run(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()

    @rec.registry.handler("takes_150s")
    async def takes_150s(ctx: JobContext) -> str:
        clock.advance(150)  # (the test's clock: the attempt lasts 150 s)
        return "done"

    scheduler, executor = make(store, rec, clock, slots=1)
    start = clock.now
    jobs = {policy: (await scheduler.schedule(JobRequest("takes_150s", recurrence={
        "interval_seconds": 60, "interval_mode": "fixed_rate", "overlap": policy},
        delay=60))).job for policy in ("buffer_one", "skip")}
    clock.advance(60)
    await executor.run_cycle(0)  # both run from +60 s; each makes the clock move 150 s
    buffered = await scheduler.get(jobs["buffer_one"].id)
    skipped = await scheduler.get(jobs["skip"].id)
    assert buffered.due_at == start + timedelta(seconds=120)  # came due while it ran
    assert skipped.due_at > clock.now and (skipped.due_at - start).total_seconds() % 60 == 0


@pytest.mark.parametrize("recurrence", [
    {"interval_seconds": 60, "overlap": "allow"},
    {"cron": "0 * * * *", "overlap": "allow"},
    {"cron": "0 * * * *", "overlap": "sometimes"},
    {"interval_seconds": 60, "catch_up_max": 3},  # fixed_delay never misses one
    {"cron": "0 * * * *", "catch_up_max": 0},
    {"cron": "0 * * * *", "catch_up_max": 3, "misfire_grace_seconds": 30},
])
async def test_policies_that_do_not_fit_are_a_400(store: JobStore,
                                                  recurrence: dict[str, object]) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, _ = make(store, rec, clock, slots=1)
    with pytest.raises(InvalidRecurrenceError):
        await scheduler.schedule(JobRequest("echo", recurrence=recurrence))
