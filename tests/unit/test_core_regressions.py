"""Focused regression tests for the core defects the simulation does not pin to one seed
(the others are named by seed in tests/sim/test_sim.py's range and in the closing note)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest

from jobs_core import (
    InMemoryStore,
    JobRequest,
    JobScheduler,
    JobStatus,
    records,
)
from jobs_core.errors import TransientStoreError
from jobs_core.handlers import JobContext
from jobs_core.ids import parse_job_id
from jobs_core.retention import purge_shards
from tests.jobs_helpers import Clock, Recorder, drain, make


class FailingOnce(InMemoryStore):
    """Fails the first append whose block contains ``marker``: before or after writing it."""

    def __init__(self, marker: bytes, *, after: bool) -> None:
        super().__init__()
        self.marker = marker
        self.after = after
        self.failed = 0

    async def append(self, name, data, *, create_metadata):  # type: ignore[no-untyped-def]
        if self.marker in data and not self.failed:
            self.failed += 1
            if self.after:
                await super().append(name, data, create_metadata=create_metadata)
            raise TransientStoreError("injected 503")
        return await super().append(name, data, create_metadata=create_metadata)


async def test_a_handlers_registered_timeout_is_used() -> None:  # defect 9
    clock, recorder = Clock(), Recorder()
    scheduler, executor = make(InMemoryStore(), recorder, clock, slots=1)

    @recorder.registry.handler("slow_ok", timeout_seconds=0.05)
    async def slow_ok(ctx: object) -> str:
        await asyncio.sleep(1)
        return "too late"

    job = (await scheduler.schedule(JobRequest("slow_ok",
                                               retry={"max_attempts": 1}))).job
    await executor.run_cycle(0)
    done = await scheduler.get(job.id)
    assert done.status is JobStatus.FAILED and done.last_error is not None
    assert done.last_error.type == "Timeout" and "0.05" in done.last_error.message


async def test_a_handler_reads_its_remaining_time_on_the_executors_clock() -> None:
    clock, recorder = Clock(), Recorder()  # (a clock of its own, far from the real one)
    scheduler, executor = make(InMemoryStore(), recorder, clock, slots=1)
    seen: list[float] = []

    @recorder.registry.handler("timed", timeout_seconds=30)
    async def timed(ctx: JobContext) -> None:
        seen.append(ctx.remaining_seconds())
        clock.advance(12)
        seen.append(ctx.remaining_seconds())

    await scheduler.schedule(JobRequest("timed"))
    await executor.run_cycle(0)
    assert seen == [30.0, 18.0]


async def test_a_seeded_scheduler_spreads_a_first_occurrence_the_same_way() -> None:
    # the jitter of a computed first occurrence comes from the scheduler's generator (it came
    # from an unseeded one: two runs of one simulation seed differed)
    dues = []
    for _ in range(2):
        clock, recorder = Clock(), Recorder()
        scheduler = JobScheduler(InMemoryStore(), recorder.registry, clock=clock,
                                 rng=random.Random(42))
        job = (await scheduler.schedule(JobRequest("echo", recurrence={
            "interval_seconds": 60, "jitter_seconds": 30}))).job
        dues.append(job.due_at)
    assert dues[0] == dues[1] != clock.now + timedelta(seconds=60)


async def test_one_failed_outcome_append_does_not_undo_a_success() -> None:  # defect 3
    clock, recorder = Clock(), Recorder()
    store = FailingOnce(b'"op":"ok"', after=False)
    scheduler, executor = make(store, recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("always_fails", retry={"max_attempts": 1})))
    charge = (await scheduler.schedule(JobRequest("echo", {"charge": 1}))).job
    await executor.run_cycle(0)
    assert store.failed == 1
    assert (await scheduler.get(charge.id)).status is JobStatus.SUCCEEDED
    assert recorder.runs[charge.id] == 1 and recorder.compensations == [job.job.id]


async def test_an_add_that_failed_after_writing_is_answered_201_once() -> None:  # defect 11
    clock, recorder = Clock(), Recorder()
    store = FailingOnce(b'"op":"add"', after=True)
    scheduler, executor = make(store, recorder, clock, slots=1)
    scheduled = await scheduler.schedule(JobRequest("echo", {"n": 1}))
    assert scheduled.created and store.failed == 1
    assert scheduler.committer.verified_after_error == 1
    await drain(executor, 1)
    assert recorder.runs == {scheduled.job.id: 1}


async def test_a_block_committed_twice_cannot_run_the_next_occurrence_now() -> None:  # 10
    clock, recorder = Clock(), Recorder()
    store = InMemoryStore()
    scheduler, executor = make(store, recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", recurrence={"interval_seconds": 3600},
                                               delay=600))).job
    await scheduler.run_now(job.id)
    blob = parse_job_id(job.id).name
    data = (await store.read(blob)).data
    run_now_line = next(line for line in data.split(b"\n") if b'"op":"run_now"' in line)
    await drain(executor, 1)  # occurrence 0 runs now
    assert recorder.runs[job.id] == 1
    await store.append(blob, b"\n" + run_now_line + b"\n", create_metadata={})  # SDK retry
    await drain(executor, 1)
    after = await scheduler.get(job.id)
    assert recorder.runs[job.id] == 1 and after.runs == 1
    assert after.due_at > clock.now + timedelta(minutes=50)


async def test_an_execution_longer_than_the_claim_ttl_keeps_its_job() -> None:  # defect 12
    clock, recorder = Clock(), Recorder()
    store = InMemoryStore()
    scheduler, a = make(store, recorder, clock, owner="a", slots=1, claim_ttl_seconds=5,
                        job_timeout_seconds=600)
    _, b = make(store, recorder, clock, owner="b", slots=1, claim_ttl_seconds=5,
                job_timeout_seconds=600)
    job = (await scheduler.schedule(JobRequest("hang"))).job
    plan = await a.plan(0)
    running = asyncio.create_task(a.execute(plan.batches[0]))
    while recorder.runs[job.id] == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    clock.advance(300)  # a's claim is long gone; the execution's lease (600 + 30 s) is not
    plan_b = await b.plan(0)
    assert plan_b.epoch == plan.epoch + 1 and plan_b.due == 0
    recorder.hang.set()
    await running
    done = await scheduler.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and recorder.runs[job.id] == 1


async def test_a_job_rescheduled_earlier_is_found_by_a_cold_planner() -> None:  # defect 7
    clock, recorder = Clock(), Recorder()
    store = InMemoryStore()
    scheduler, executor = make(store, recorder, clock, slots=1, retention_days=1 / 24)
    other = (await scheduler.schedule(JobRequest("echo"))).job  # the current bucket's blob
    later = (await scheduler.schedule(JobRequest("echo", delay=10 * 3600))).job
    await drain(executor, 1)
    await scheduler.reschedule(later.id, clock.now + timedelta(hours=3))
    clock.advance(2 * 3600)  # the hint's blob is finished and summarised: a cold planner
    await executor.run_cycle(0)  # skips it, and must still learn the hint from its summary
    assert recorder.runs[later.id] == 0
    clock.advance(1.5 * 3600)
    hint_blob = [i for i in await store.list("shards/") if i.name == parse_job_id(other.id).name]
    assert hint_blob[0].metadata.get("touch") == parse_job_id(later.id).name
    assert "done_size" not in hint_blob[0].metadata
    _, cold = make(store, recorder, clock, slots=1)
    await drain(cold, 1)
    assert recorder.runs[later.id] == 1
    # retention keeps the blob while the hint points at a bucket that has not begun
    report = await purge_shards(store, executor.settings, clock.now + timedelta(days=30),
                                timedelta(hours=1))
    assert report.shards_deleted >= 1


def test_records_name_their_occurrence_and_execution() -> None:
    start = records.start("j", 1, 1, clock_now(), token="x1", run=3, lease=clock_now()).encode()
    assert (start["x"], start["run"]) == ("x1", 3) and "lease" in start
    assert records.cancel("j", clock_now(), rid="r", run=2).encode()["rid"] == "r"


def clock_now():  # type: ignore[no-untyped-def]
    return Clock().now


class RacingStart(InMemoryStore):
    """Runs ``before_start`` (another process's write) just before the first start record."""

    def __init__(self) -> None:
        super().__init__()
        self.before_start = None

    async def append(self, name, data, *, create_metadata):  # type: ignore[no-untyped-def]
        if b'"op":"start"' in data and self.before_start is not None:
            race, self.before_start = self.before_start, None
            await race()
        return await super().append(name, data, create_metadata=create_metadata)


async def test_a_start_that_lost_the_race_to_a_reschedule_is_void() -> None:  # seed 2616
    clock, recorder = Clock(), Recorder()
    store = RacingStart()
    _, executor = make(store, recorder, clock, owner="a", slots=1)
    api, _ = make(store, recorder, clock, owner="b", slots=1)
    job = (await api.schedule(JobRequest("echo"))).job
    later = clock.now + timedelta(hours=1)
    store.before_start = lambda: api.reschedule(job.id, later)  # committed first
    await drain(executor, 1)
    assert recorder.runs[job.id] == 0
    after = await api.get(job.id)
    assert after.status is JobStatus.SCHEDULED and after.due_at == later
    clock.advance(3600)
    await drain(executor, 1)
    assert recorder.runs[job.id] == 1
    assert (await api.get(job.id)).status is JobStatus.SUCCEEDED


async def test_a_reschedule_earlier_never_lands_without_its_hint() -> None:  # seed 4870
    clock, recorder = Clock(), Recorder()
    store = FailingOnce(b'"op":"touch"', after=False)  # the hint's append fails
    scheduler, executor = make(store, recorder, clock, slots=1)
    await scheduler.schedule(JobRequest("echo"))  # the current bucket's blob exists
    await drain(executor, 1)
    later = (await scheduler.schedule(JobRequest("echo", delay=10 * 3600))).job
    soon = clock.now + timedelta(minutes=30)
    with pytest.raises(TransientStoreError):  # answered as failed: then nothing changed
        await scheduler.reschedule(later.id, soon)
    assert store.failed == 1
    assert (await scheduler.get(later.id)).due_at == later.due_at  # the truth: not changed
    await scheduler.reschedule(later.id, soon)  # the client retries; the hint goes first
    clock.advance(31 * 60)
    await drain(executor, 1)
    assert recorder.runs[later.id] == 1  # on time, not at its old bucket


async def test_a_hint_whose_change_failed_costs_reads_not_runs() -> None:
    clock, recorder = Clock(), Recorder()
    store = FailingOnce(b'"op":"reschedule"', after=False)
    scheduler, executor = make(store, recorder, clock, slots=1)
    await scheduler.schedule(JobRequest("echo"))
    later = (await scheduler.schedule(JobRequest("echo", delay=10 * 3600))).job
    with pytest.raises(TransientStoreError):
        await scheduler.reschedule(later.id, clock.now + timedelta(minutes=30))
    clock.advance(31 * 60)
    await drain(executor, 1)  # the planner reads the hinted blob and finds nothing due
    assert recorder.runs[later.id] == 0
    assert (await scheduler.get(later.id)).status is JobStatus.SCHEDULED


async def test_an_error_message_utf8_cannot_carry_is_recorded_not_lost() -> None:
    """A handler's error naming a file decoded with ``surrogateescape`` holds a lone
    surrogate: writing its ``fail`` record raised, so every cycle where the job failed raised
    (its batch with it) and the attempt ended as ``ExecutorLost``, the real error lost
    (review of stop 31, Azure adapters)."""
    clock, recorder = Clock(), Recorder()
    scheduler, executor = make(InMemoryStore(), recorder, clock, slots=1)

    name = b"r\xe9sum\xe9.txt".decode("utf-8", "surrogateescape")

    async def remove_it(ctx: object) -> None:
        raise PermissionError(f"cannot remove {name}")

    @recorder.registry.handler("reads_a_file", compensate=remove_it)
    async def reads_a_file(ctx: object) -> None:
        raise FileNotFoundError(f"no such file: {name}")

    job = (await scheduler.schedule(JobRequest("reads_a_file",
                                               retry={"max_attempts": 1}))).job
    await executor.run_cycle(0)  # it raised UnicodeEncodeError
    done = await scheduler.get(job.id)
    assert done.status is JobStatus.FAILED and done.last_error is not None
    assert done.last_error.type == "FileNotFoundError"
    assert done.last_error.message == "no such file: r\\udce9sum\\udce9.txt"
    assert done.compensation == "failed: PermissionError: cannot remove r\\udce9sum\\udce9.txt"
