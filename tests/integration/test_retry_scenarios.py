"""Retrying a failed or cancelled job (``POST /api/jobs/{id}/retry``), on both stores."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from jobs_core import JobRequest, JobStatus
from jobs_core.errors import InvalidTransitionError, JobConflictError
from jobs_core.job_history import read_job_history
from jobs_core.store import JobStore
from tests.jobs_helpers import FAST_RETRY, Clock, Recorder, drain, make


async def test_a_failed_job_runs_again_as_a_new_run_with_its_history_kept(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("first_run_fails", {"n": 1},
                                               retry=FAST_RETRY))).job
    await drain(executor, 1)
    failed = await scheduler.get(job.id)
    assert (failed.status, failed.runs, rec.compensations) == (JobStatus.FAILED, 0, [job.id])
    clock.advance(5)
    retried = await scheduler.retry(job.id)
    assert (retried.status, retried.attempts, retried.runs) == (JobStatus.SCHEDULED, 0, 1)
    assert retried.due_at == clock.now and retried.last_error is None
    assert retried.compensation is None and retried.payload == {"n": 1}
    await drain(executor, 1)  # the executor had dropped the finished job: the record revives it
    done = await scheduler.get(job.id)
    assert (done.status, done.result, done.runs) == (JobStatus.SUCCEEDED, "ok on run 1", 2)
    assert rec.runs[job.id] == 2 and rec.compensations == [job.id]
    ops = [r.type for r in (await read_job_history(store, job.id)).records]
    assert ops == ["add", "start", "fail", "retry", "start", "ok"]
    with pytest.raises(InvalidTransitionError, match="already succeeded"):
        await scheduler.retry(job.id)


async def test_a_cancelled_job_can_be_retried_and_a_waiting_one_cannot(store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", delay=600))).job
    with pytest.raises(InvalidTransitionError, match="retry"):
        await scheduler.retry(job.id)  # waiting: nothing to retry, nothing written
    assert len((await read_job_history(store, job.id)).records) == 1
    await scheduler.cancel(job.id, "not yet")
    retried = await scheduler.retry(job.id)
    assert retried.status is JobStatus.SCHEDULED and retried.cancel_reason is None
    await drain(executor, 1)
    assert (await scheduler.get(job.id)).status is JobStatus.SUCCEEDED
    assert rec.runs[job.id] == 1


async def test_a_job_that_failed_days_ago_runs_within_a_cycle_of_its_retry(
        store: JobStore) -> None:
    # its blob is of a past day whose blobs are all done, which the planner no longer lists
    # between full listings: the retry's hint makes the next cycle read it
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("first_run_fails", retry=FAST_RETRY))).job
    await drain(executor, 1)
    for _ in range(3 * 24):
        clock.advance(3600)
        await executor.run_cycle(0)  # the blob is summarised as done, its day dropped
    full = executor.listing.full_listings
    await scheduler.retry(job.id)
    clock.advance(1)
    _, result = await executor.run_cycle(0)
    assert executor.listing.full_listings == full  # found through the hint, not a listing
    assert result.succeeded == 1 and rec.runs[job.id] == 2


async def test_two_retries_at_once_one_wins_the_other_is_told_the_truth(store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    other = make(store, rec, clock, slots=1)[0]
    job = (await scheduler.schedule(JobRequest("first_run_fails", retry=FAST_RETRY))).job
    await drain(executor, 1)
    await other.get(job.id)  # both processes have read it failed
    answers = await asyncio.gather(scheduler.retry(job.id), other.retry(job.id),
                                   return_exceptions=True)
    wins = [a for a in answers if not isinstance(a, BaseException)]
    losses = [a for a in answers if isinstance(a, BaseException)]
    assert len(wins) == 1 and len(losses) == 1, answers
    assert isinstance(losses[0], InvalidTransitionError | JobConflictError)
    await drain(executor, 1)
    assert rec.runs[job.id] == 2  # one run for the retry, not two
    assert (await scheduler.get(job.id)).runs == 2


async def test_a_retried_recurring_schedule_carries_on(store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", recurrence={"interval_seconds": 60}))).job
    clock.advance(60)
    await drain(executor, 1)
    await scheduler.cancel(job.id)
    clock.advance(600)
    await drain(executor, 1)
    assert rec.runs[job.id] == 1
    retried = await scheduler.retry(job.id)
    assert retried.due_at == clock.now
    await drain(executor, 1)
    after = await scheduler.get(job.id)
    assert after.status is JobStatus.SCHEDULED and rec.runs[job.id] == 2
    assert after.due_at == clock.now + timedelta(seconds=60)
