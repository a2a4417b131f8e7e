"""A recurrence's limits (``max_runs``, ``until``), its modes (fixed rate, jitter), its misfire
policies (the default skips missed occurrences; ``misfire_grace_seconds``; run_all with
``catch_up_max``) and overlap policy (``buffer_one``), on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs_core import JobContext, JobRequest, JobStatus
from jobs_core.errors import (
    InvalidRecurrenceError,
    InvalidTransitionError,
    JobValidationError,
)
from jobs_core.job_history import read_job_history
from jobs_core.model import Recurrence
from jobs_core.recurrence import after_run, parse_recurrence
from jobs_core.store import JobStore
from tests.jobs_helpers import FAST_RETRY, Clock, FailingAppend, Recorder, drain, make


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


async def test_allow_runs_each_occurrence_as_a_job_of_its_own_so_they_overlap(
        store: JobStore) -> None:
    # each occurrence lasts 150 s and comes every 60 s: under "skip" the schedule would wait
    # for each to finish; under "allow" it only creates the occurrence's job and moves on
    clock, rec = Clock(), Recorder()

    @rec.registry.handler("takes_150s")
    async def takes_150s(ctx: JobContext) -> str:
        clock.advance(150)
        return "done"

    scheduler, executor = make(store, rec, clock, slots=1)
    schedule = (await scheduler.schedule(JobRequest("takes_150s", {"n": 1}, recurrence={
        "interval_seconds": 60, "interval_mode": "fixed_rate", "overlap": "allow"},
        delay=60, labels={"team": "x"}))).job
    for _ in range(3):
        clock.advance(60)
        await executor.run_cycle(0)
    fired = (await scheduler.list(labels={"schedule_id": schedule.id})).jobs
    assert len(fired) >= 3 and all(j.recurrence is None and j.payload == {"n": 1}
                                   for j in fired)
    assert all(j.labels == {"team": "x", "schedule_id": schedule.id} for j in fired)
    parent = await scheduler.get(schedule.id)
    assert parent.runs == len(fired) and parent.status is JobStatus.SCHEDULED
    assert parent.result["occurrence_job"] in {j.id for j in fired}
    assert rec.runs == {}  # (the Recorder's handlers: not these)


async def test_an_occurrence_fired_twice_is_one_job(store: JobStore) -> None:
    # a crash after the occurrence's job was created and before the outcome was recorded
    # re-runs the attempt: the idempotency key makes it the same job
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    schedule = (await scheduler.schedule(JobRequest("echo", recurrence={
        "cron": "* * * * *", "overlap": "allow"}))).job
    first = await executor._fire(schedule)
    again = await executor._fire(schedule)
    assert first == again and first["run"] == 0


@pytest.mark.parametrize("recurrence", [
    {"interval_seconds": 60, "overlap": "allow"},  # fixed_delay never overlaps
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


async def test_an_occurrence_whose_job_could_not_be_created_is_retried_not_lost(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    flaky = FailingAppend(store, "keys/")  # (its next append to the key index: a 503)
    scheduler, executor = make(flaky, rec, clock, slots=1)
    schedule = (await scheduler.schedule(JobRequest("always_fails", recurrence={
        "cron": "* * * * *", "overlap": "allow"}, retry=FAST_RETRY))).job
    clock.advance(60)
    await drain(executor, 1)
    after = await scheduler.get(schedule.id)
    assert after.runs == 1 and after.last_error is None  # retried, then created
    assert (await scheduler.list(labels={"schedule_id": schedule.id})).jobs
    assert rec.compensations.count(schedule.id) == 0  # its handler never ran: no compensation


def test_catch_up_runs_the_missed_occurrences_before_until() -> None:
    start = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    recurrence = Recurrence(cron="0 * * * *", catch_up_max=3,
                            until=start + timedelta(hours=5))
    nxt = after_run(recurrence, start, start, start + timedelta(hours=10, minutes=30))
    assert nxt == start + timedelta(hours=3)  # 03:00, 04:00, 05:00: the last three before until
    with pytest.raises(InvalidRecurrenceError, match="jitter"):
        parse_recurrence({"cron": "* * * * *", "catch_up_max": 3, "jitter_seconds": 5})


async def test_a_recurrence_ends_at_max_runs_or_until(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    counted = (await scheduler.schedule(JobRequest(
        "echo", recurrence={"interval_seconds": 60, "max_runs": 3}))).job
    until = clock.now + timedelta(seconds=150)
    dated = (await scheduler.schedule(JobRequest(
        "echo", recurrence={"interval_seconds": 60, "until": until.isoformat()}))).job
    assert counted.recurrence is not None and counted.recurrence.max_runs == 3
    for _ in range(6):
        clock.advance(60)
        await drain(executor, 1)
    done, ended = await scheduler.get(counted.id), await scheduler.get(dated.id)
    assert rec.runs[counted.id] == 3 and done.status is JobStatus.SUCCEEDED and done.runs == 3
    assert rec.runs[dated.id] == 2 and ended.status is JobStatus.SUCCEEDED  # at +60 s, +120 s
    assert ended.recurrence is not None and ended.recurrence.until == until
    bounded = (await scheduler.schedule(JobRequest(
        "echo", recurrence={"interval_seconds": 600,
                            "until": (clock.now + timedelta(hours=1)).isoformat()}))).job
    with pytest.raises(JobValidationError, match="until"):
        await scheduler.reschedule(bounded.id, delay=7200)  # past its until
    await scheduler.pause(bounded.id)
    clock.advance(7200)
    with pytest.raises(InvalidTransitionError, match="ended"):
        await scheduler.resume(bounded.id)  # its until passed while it was paused
    for bad in ({"interval_seconds": 60, "max_runs": 0},
                {"interval_seconds": 60, "max_runs": 1.5},
                {"interval_seconds": 60, "until": "tomorrow"},
                {"interval_seconds": 60, "until": "2026-01-01T00:00:00"},
                {"interval_seconds": 60, "until": (clock.now - timedelta(hours=1)).isoformat()}):
        with pytest.raises(JobValidationError):
            await scheduler.schedule(JobRequest("echo", recurrence=bad))


async def test_fixed_rate_keeps_its_grid_and_jitter_only_delays(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    rate = (await scheduler.schedule(JobRequest(
        "echo", {"seconds": 0}, recurrence={"interval_seconds": 60,
                                             "interval_mode": "fixed_rate"}))).job
    delay = (await scheduler.schedule(JobRequest(
        "echo", recurrence={"interval_seconds": 60}))).job
    assert rate.recurrence is not None and rate.recurrence.anchor == rate.due_at
    first = rate.due_at
    clock.advance(75)  # both run 15 s late
    await drain(executor, 1)
    assert (await scheduler.get(rate.id)).due_at == first + timedelta(seconds=60)  # on grid
    assert (await scheduler.get(delay.id)).due_at == clock.now + timedelta(seconds=60)  # drift
    clock.advance(3600)  # missed occurrences are skipped, not run in a burst
    await drain(executor, 1)
    assert rec.runs[rate.id] == 2
    assert ((await scheduler.get(rate.id)).due_at - first) % timedelta(seconds=60) == \
        timedelta(0)
    spread = (await scheduler.schedule(JobRequest(
        "echo", recurrence={"interval_seconds": 600, "jitter_seconds": 30}))).job
    nominal = clock.now + timedelta(seconds=600)
    assert nominal <= spread.due_at <= nominal + timedelta(seconds=30)
    for bad in ({"cron": "0 2 * * *", "interval_mode": "fixed_rate"},
                {"interval_seconds": 60, "interval_mode": "sometimes"},
                {"interval_seconds": 60, "anchor": clock.now.isoformat()},
                {"interval_seconds": 60, "jitter_seconds": -1},
                {"interval_seconds": 60, "jitter_seconds": 7200}):
        with pytest.raises(JobValidationError):
            await scheduler.schedule(JobRequest("echo", recurrence=bad))


async def test_a_misfired_occurrence_is_skipped_within_its_grace_it_runs(
        store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest(
        "echo", recurrence={"interval_seconds": 600, "misfire_grace_seconds": 30}))).job
    first = job.due_at
    clock.advance(600 + 20)  # 20 s late: within its grace, it runs
    await drain(executor, 1)
    assert rec.runs[job.id] == 1
    due = (await scheduler.get(job.id)).due_at
    clock.now = due + timedelta(seconds=300)  # down for 5 minutes: too late, skipped
    await drain(executor, 1)
    skipped = await scheduler.get(job.id)
    assert rec.runs[job.id] == 1 and skipped.runs == 1 and skipped.status.is_waiting
    assert skipped.due_at == clock.now + timedelta(seconds=600)  # the next one after now
    clock.now = skipped.due_at
    await drain(executor, 1)
    assert rec.runs[job.id] == 2 and first < due
    history = [r.type for r in (await read_job_history(store, job.id)).records]
    assert history.count("misfire") == 1, history
    last = (await scheduler.schedule(JobRequest("echo", recurrence={
        "interval_seconds": 600, "misfire_grace_seconds": 30,
        "until": (clock.now + timedelta(seconds=1250)).isoformat()}))).job
    clock.advance(600)
    await drain(executor, 1)
    clock.advance(900)  # the occurrence due at +1200 is 300 s late, and the recurrence's last
    await drain(executor, 1)
    assert rec.runs[last.id] == 2  # so it runs late rather than never
    assert (await scheduler.get(last.id)).status is JobStatus.SUCCEEDED
    with pytest.raises(JobValidationError):
        await scheduler.schedule(JobRequest(
            "echo", recurrence={"interval_seconds": 60, "misfire_grace_seconds": -1}))
