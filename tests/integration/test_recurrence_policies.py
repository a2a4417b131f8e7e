"""A recurrence's misfire policy run_all (``catch_up_max``) and overlap policy
(``buffer_one``), against the default (missed occurrences skipped), on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs_core import JobContext, JobRequest, JobStatus
from jobs_core.errors import InvalidRecurrenceError, TransientStoreError
from jobs_core.model import Recurrence
from jobs_core.recurrence import after_run, parse_recurrence
from jobs_core.store import JobStore
from tests.jobs_helpers import FAST_RETRY, Clock, Recorder, drain, make


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


class FailingKeys:
    """A store whose next append to the key index fails (a 503)."""

    def __init__(self, store: JobStore) -> None:
        self._store, self.fail = store, 1

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(self, name: str, data: bytes, **kwargs: object) -> object:
        if name.startswith("keys/") and self.fail:
            self.fail -= 1
            raise TransientStoreError(f"{name}: 503 ServerBusy")
        return await self._store.append(name, data, **kwargs)  # type: ignore[arg-type]


async def test_an_occurrence_whose_job_could_not_be_created_is_retried_not_lost(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    flaky = FailingKeys(store)
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
