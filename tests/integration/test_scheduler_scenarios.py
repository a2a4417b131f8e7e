"""Scheduler + executor scenarios, run on the in-memory store and on Azurite alike."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from jobs_core import Executor, HandlerRegistry, JobRequest, JobsSettings, JobStatus, records
from jobs_core.errors import (
    ClaimHeldError,
    IdempotencyConflictError,
    InvalidTransitionError,
    JobValidationError,
)
from jobs_core.ids import parse_job_id
from tests.jobs_helpers import FAST_RETRY, Clock, Recorder, drain, make

LEASE = 91  # an execution's lease: the default 60 s timeout + 30 s grace, and a second


async def test_job_runs_at_its_due_time_and_not_before(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", {"n": 1}, delay=30))).job
    plan, _ = await executor.run_cycle(0)
    assert plan.due == 0 and rec.runs[job.id] == 0
    assert plan.next_wake == job.due_at
    clock.advance(30)
    plan, result = await executor.run_cycle(0)
    assert result.succeeded == 1
    done = await scheduler.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"echo": {"n": 1}, "attempt": 1}
    assert done.started_at is not None and done.started_at >= job.due_at


@pytest.mark.slow
async def test_ten_thousand_jobs_from_concurrent_writers_run_exactly_once(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=4)
    writers = [make(store, rec, clock, slots=4)[0] for _ in range(3)] + [scheduler]

    async def write(k: int) -> list[str]:
        sched = writers[k % len(writers)]
        results = await asyncio.gather(*(sched.schedule(JobRequest("echo", i))
                                         for i in range(k * 250, (k + 1) * 250)))
        return [r.job.id for r in results]

    ids = [i for batch in await asyncio.gather(*(write(k) for k in range(40))) for i in batch]
    assert len(set(ids)) == 10_000
    assert {parse_job_id(i).key.slot for i in ids} == {0, 1, 2, 3}
    await drain(executor, 4)
    assert rec.duplicates == 0
    assert len(rec.runs) == 10_000
    statuses = await asyncio.gather(*(scheduler.get(i) for i in ids[::97]))
    assert {j.status for j in statuses} == {JobStatus.SUCCEEDED}
    page = await scheduler.list(status=JobStatus.SUCCEEDED, limit=10_000)
    assert len(page.jobs) == 10_000


async def test_schedule_many_appends_once_per_shard(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=2)
    results = await scheduler.schedule_many([JobRequest("echo", i) for i in range(500)] +
                                            [JobRequest("nope")])
    assert isinstance(results[-1], Exception) and "nope" in str(results[-1])
    assert scheduler.committer.blocks_written == 2
    await drain(executor, 2)
    assert len(rec.runs) == 500 and rec.duplicates == 0


async def test_idempotency_key_returns_the_same_job(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=4)
    first, *others = await asyncio.gather(*(
        scheduler.schedule(JobRequest("echo", "p", idempotency_key="order-17"))
        for _ in range(5)))
    again = await scheduler.schedule(JobRequest("echo", "p", idempotency_key="order-17"))
    assert {r.job.id for r in [first, *others, again]} == {first.job.id}
    assert sum(r.created for r in [first, *others, again]) == 1
    with pytest.raises(IdempotencyConflictError, match="different"):
        await scheduler.schedule(JobRequest("echo", "other", idempotency_key="order-17"))
    await drain(executor, 4)
    assert rec.runs == {first.job.id: 1}


async def test_cancel_before_due_means_it_never_runs(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", delay=60))).job
    cancelled = await scheduler.cancel(job.id, "changed my mind")
    assert cancelled.status is JobStatus.CANCELLED
    clock.advance(120)
    await drain(executor, 1)
    assert rec.runs[job.id] == 0
    with pytest.raises(InvalidTransitionError, match="was cancelled"):
        await scheduler.cancel(job.id)


async def test_retry_then_succeed_and_final_failure_compensates(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    flaky = (await scheduler.schedule(JobRequest("flaky", {"fail_times": 2},
                                                 retry=FAST_RETRY))).job
    doomed = (await scheduler.schedule(JobRequest("always_fails", retry=FAST_RETRY))).job
    permanent = (await scheduler.schedule(JobRequest("permanent", retry=FAST_RETRY))).job
    await drain(executor, 1)
    ok = await scheduler.get(flaky.id)
    assert (ok.status, ok.attempts, rec.runs[flaky.id]) == (JobStatus.SUCCEEDED, 3, 3)
    bad = await scheduler.get(doomed.id)
    assert (bad.status, bad.attempts) == (JobStatus.FAILED, 3)
    assert bad.last_error is not None and bad.last_error.message == "always"
    assert bad.compensation == "succeeded" and rec.compensations == [doomed.id]
    perm = await scheduler.get(permanent.id)
    assert (perm.status, rec.runs[permanent.id]) == (JobStatus.FAILED, 1)
    assert perm.last_error is not None and perm.last_error.permanent


async def test_recurring_job_runs_each_interval(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", recurrence={"interval_seconds": 60}))).job
    for _ in range(3):
        clock.advance(60)
        await drain(executor, 1)
    current = await scheduler.get(job.id)
    assert rec.runs[job.id] == 3 and current.runs == 3
    assert current.status is JobStatus.SCHEDULED and current.due_at > clock.now


async def test_run_now_pulls_a_future_job_forward(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", delay=3 * 86400))).job
    await drain(executor, 1)
    assert rec.runs[job.id] == 0
    await scheduler.run_now(job.id)
    await drain(executor, 1)
    assert rec.runs[job.id] == 1


async def test_reschedule_moves_a_waiting_job_within_the_limits(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", delay=600))).job
    moved = await scheduler.reschedule(job.id, delay=60)
    assert moved.due_at == clock.now + timedelta(seconds=60) and moved.status.is_waiting
    for bad in ({}, {"delay": -1.0}, {"delay": 10.0**9},
                {"due_at": clock.now - timedelta(days=2)},
                {"due_at": "soon"}, {"due_at": clock.now, "delay": 1.0}):
        with pytest.raises(JobValidationError):
            await scheduler.reschedule(job.id, **bad)  # type: ignore[arg-type]
    assert (await scheduler.get(job.id)).due_at == moved.due_at  # nothing changed
    clock.advance(59)
    await drain(executor, 1)
    assert rec.runs[job.id] == 0  # not before its new due time
    clock.advance(1)
    await drain(executor, 1)
    assert (await scheduler.get(job.id)).status is JobStatus.SUCCEEDED
    with pytest.raises(InvalidTransitionError, match="already succeeded"):
        await scheduler.reschedule(job.id, delay=5)


async def test_a_paused_schedule_stays_paused_as_it_moves_and_resumes_from_now(
        store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", recurrence={"interval_seconds": 600},
                                               delay=600))).job
    clock.advance(600)
    await drain(executor, 1)
    assert rec.runs[job.id] == 1
    paused = await scheduler.pause(job.id)
    assert paused.status is JobStatus.PAUSED and paused.runs == 1
    with pytest.raises(InvalidTransitionError, match="paused"):
        await scheduler.run_now(job.id)
    for _ in range(2 * 24 * 4):  # two days: its blob grows old and the job moves on, paused
        clock.advance(900)
        await executor.run_cycle(0)
    still = await scheduler.get(job.id)
    assert still.status is JobStatus.PAUSED and rec.runs[job.id] == 1
    assert parse_job_id(job.id).name not in await _blobs_holding(scheduler, job.id)
    resumed = await scheduler.resume(job.id)
    assert resumed.status is JobStatus.SCHEDULED
    assert resumed.due_at == clock.now + timedelta(seconds=600)  # missed occurrences skipped
    clock.advance(600)
    await drain(executor, 1)
    assert rec.runs[job.id] == 2
    await scheduler.pause(job.id)
    assert (await scheduler.cancel(job.id)).status is JobStatus.CANCELLED


async def test_an_update_changes_a_waiting_job_and_never_a_running_one(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest(
        "echo", {"v": 1}, recurrence={"interval_seconds": 3600}, delay=60))).job
    for bad in ({}, {"handler": "other"}, {"payload": "x" * 100_000},
                {"retry": {"max_attempts": 0}}, {"recurrence": None},
                {"recurrence": {"cron": "0 0 30 2 *"}}, {"timeout_seconds": -1}):
        with pytest.raises(JobValidationError):
            await scheduler.update(job.id, bad)
    assert (await scheduler.get(job.id)).payload == {"v": 1}  # nothing changed
    updated = await scheduler.update(job.id, {"payload": {"v": 2}, "timeout_seconds": 9,
                                              "retry": {"max_attempts": 2}})
    assert updated.payload == {"v": 2} and updated.timeout_seconds == 9
    assert updated.retry.max_attempts == 2 and updated.retry.base_delay == job.retry.base_delay
    assert updated.due_at == job.due_at  # the occurrence it waits for stays
    clock.advance(60)
    await drain(executor, 1)
    done = await scheduler.get(job.id)
    assert rec.runs[job.id] == 1 and done.result["echo"] == {"v": 2}  # the new payload ran
    faster = await scheduler.update(job.id, {"recurrence": {"interval_seconds": 600}})
    assert faster.due_at == clock.now + timedelta(seconds=600)  # the new one, from now
    one_off = (await scheduler.schedule(JobRequest("echo", delay=60))).job
    with pytest.raises(JobValidationError, match="one-off"):
        await scheduler.update(one_off.id, {"recurrence": {"interval_seconds": 60}})
    await scheduler.cancel(one_off.id)
    with pytest.raises(InvalidTransitionError, match="cancelled"):
        await scheduler.update(one_off.id, {"payload": 1})


async def _blobs_holding(scheduler: object, job_id: str) -> list[str]:
    """The blob the job lives in now (by the scheduler's own lookup)."""
    _, blob = await scheduler._locate(job_id)  # type: ignore[attr-defined]
    return [blob]


async def test_two_claimers_contending_200_times_one_wins_each_time(store: object) -> None:
    clock = Clock()
    rec = Recorder()
    _, a = make(store, rec, clock, owner="a", claim_ttl_seconds=1)
    _, b = make(store, rec, clock, owner="b", claim_ttl_seconds=1)
    wins = {"a": 0, "b": 0}
    for _ in range(200):
        outcomes = await asyncio.gather(a.claims.acquire(0, "a", clock()),
                                        b.claims.acquire(0, "b", clock()),
                                        return_exceptions=True)
        winners = [o.owner for o in outcomes if not isinstance(o, BaseException)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, ClaimHeldError) for o in outcomes
                   if isinstance(o, BaseException))
        wins[winners[0]] += 1
        clock.advance(2)  # let the claim expire for the next round
    assert wins["a"] + wins["b"] == 200


async def test_superseded_execution_cannot_record_its_outcome(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, a = make(store, rec, clock, owner="a", slots=1, claim_ttl_seconds=5)
    _, b = make(store, rec, clock, owner="b", slots=1, claim_ttl_seconds=5)
    job = (await scheduler.schedule(JobRequest("hang"))).job
    plan_a = await a.plan(0)
    run_a = asyncio.create_task(a.execute(plan_a.batches[0]))
    while (await scheduler.get(job.id)).status is not JobStatus.RUNNING:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    with pytest.raises(ClaimHeldError):
        await b.plan(0)
    clock.advance(LEASE)  # a's claim and its execution's lease expire; b takes over
    plan_b = await b.plan(0)
    assert plan_b.epoch == plan_a.epoch + 1 and plan_b.due == 1  # the abandoned attempt
    abandoned = await b.execute(plan_b.batches[0])  # b records attempt 1 as lost
    assert abandoned.abandoned == 1
    rec.hang.set()  # now a's attempt finishes and reports: its execution token is no longer
    # the job's current one, so its outcome does not apply
    await run_a
    assert (await scheduler.get(job.id)).status is JobStatus.RETRYING
    clock.advance(3600)
    await drain(b, 1)
    final = await scheduler.get(job.id)
    assert final.status is JobStatus.SUCCEEDED and final.epoch == plan_b.epoch
    assert rec.runs[job.id] == 2  # at-least-once: the duplicate is counted, not hidden


async def test_crash_mid_batch_is_finished_by_another_executor(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, a = make(store, rec, clock, owner="a", slots=1, claim_ttl_seconds=5)
    _, b = make(store, rec, clock, owner="b", slots=1, claim_ttl_seconds=5)
    jobs = [r.job for r in await asyncio.gather(*(scheduler.schedule(JobRequest("hang", i))
                                                  for i in range(20)))]
    plan = await a.plan(0)
    crashed = asyncio.create_task(a.execute(plan.batches[0]))
    while sum(rec.runs.values()) < 20:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    crashed.cancel()  # the executor dies mid-batch: attempts started, no outcome recorded
    with pytest.raises(asyncio.CancelledError):
        await crashed
    rec.hang.set()
    clock.advance(LEASE)
    await drain(b, 1)  # abandon attempt 1 (retry with backoff), then run attempt 2
    clock.advance(3600)
    await drain(b, 1)
    states = await asyncio.gather(*(scheduler.get(j.id) for j in jobs))
    assert {s.status for s in states} == {JobStatus.SUCCEEDED}
    assert all(s.attempts == 2 for s in states)
    assert rec.duplicates == 20  # every started attempt ran again: counted


async def test_poison_job_fails_alone_without_blocking_its_shard(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1, job_timeout_seconds=1,
                               abandon_grace_seconds=1)
    poison = (await scheduler.schedule(JobRequest("hang", retry=FAST_RETRY))).job
    healthy = (await scheduler.schedule(JobRequest("echo"))).job
    for _ in range(4):  # every attempt of the poison job times out
        clock.advance(5)
        await drain(executor, 1)
    assert (await scheduler.get(healthy.id)).status is JobStatus.SUCCEEDED
    dead = await scheduler.get(poison.id)
    assert dead.status is JobStatus.FAILED and dead.attempts == 3


async def test_a_job_whose_handler_an_older_release_lacks_waits_for_one_that_has_it(
        store: object) -> None:
    """From the hunt of stop 28: during a rolling deployment an instance of the release
    before a handler's ran the slot's batch and failed the job for good (UnknownHandlerError
    is permanent), although an instance that knows the handler had accepted it with 201."""
    clock, rec = Clock(), Recorder()
    scheduler, new = make(store, rec, clock, slots=1, owner="new-release")
    job = (await scheduler.schedule(JobRequest("echo", {"n": 1}))).job
    old = Executor(store, HandlerRegistry(), JobsSettings(slots=1),  # type: ignore[arg-type]
                   owner="old-release", clock=clock)
    for _ in range(3):
        _, result = await old.run_cycle(0)
        assert (result.throttled, result.started) == (1, 0)
        waiting = await scheduler.get(job.id)
        assert (waiting.status, waiting.attempts) == (JobStatus.SCHEDULED, 0)
        clock.advance(10)
    clock.advance(LEASE + 120)  # the old release's claim on the slot has expired
    await drain(new, 1)
    done = await scheduler.get(job.id)
    assert (done.status, done.attempts, rec.runs[job.id]) == (JobStatus.SUCCEEDED, 1, 1)


async def test_an_older_release_neither_fires_nor_compensates_what_it_has_no_handler_for(
        store: object) -> None:
    """From review of the fix above: an overlap-``allow`` schedule's occurrence (created by
    the attempt, through the handler's validation) still failed for good on the old release,
    and a lost last attempt was failed there with its compensation silently skipped."""
    clock, rec = Clock(), Recorder()
    scheduler, new = make(store, rec, clock, slots=1, owner="new-release")
    schedule = (await scheduler.schedule(JobRequest("echo", {}, due_at=clock.now, recurrence={
        "interval_seconds": 3600, "interval_mode": "fixed_rate", "overlap": "allow",
        "max_runs": 1}))).job
    doomed = (await scheduler.schedule(JobRequest(
        "always_fails", {}, retry={"max_attempts": 1}))).job
    plan = await new.plan(0)
    await new.committer.write(parse_job_id(doomed.id).name, [records.start(
        doomed.id, 1, plan.epoch, clock.now, token="lost0001", run=0,
        lease=clock.now + timedelta(seconds=60))])  # its instance is recycled mid-attempt
    clock.advance(600)  # the lease and the new release's claim have passed
    old = Executor(store, HandlerRegistry(), JobsSettings(slots=1),  # type: ignore[arg-type]
                   owner="old-release", clock=clock)
    _, result = await old.run_cycle(0)
    assert (result.started, result.abandoned, result.throttled) == (0, 0, 2), result
    waiting = await scheduler.get(schedule.id)
    assert (waiting.status, waiting.runs, waiting.last_error) == (JobStatus.SCHEDULED, 0, None)
    assert (await scheduler.get(doomed.id)).status is JobStatus.RUNNING
    clock.advance(LEASE + 120)
    await drain(new, 1)
    failed = await scheduler.get(doomed.id)
    assert (failed.status, rec.compensations) == (JobStatus.FAILED, [doomed.id])
    assert (await scheduler.get(schedule.id)).runs == 1
