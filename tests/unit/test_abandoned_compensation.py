"""The compensation of an attempt whose executor was lost (I3: at-least-once, and a duplicate
only with a cause)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from jobs_core import (
    Executor,
    JobContext,
    JobRequest,
    JobScheduler,
    JobStatus,
    RetryPolicy,
    records,
)
from jobs_core.errors import TransientStoreError
from jobs_core.ids import parse_job_id
from jobs_core.memory_store import InMemoryStore
from jobs_core.model import Job
from jobs_core.shard_state import ShardState
from jobs_core.store import AppendResult
from tests.jobs_helpers import T0, Clock, Recorder, make

ONE = RetryPolicy(max_attempts=1, base_delay=0, max_delay=0, jitter=0)
BLOB = "shards/s000/20261122T1400-0000.jsonl"
JOB_ID = "j20261122T1400-s000-0000-00000000000000aa"


async def crash_while(executor: Executor, busy: Callable[[], bool]) -> None:
    """Run a cycle's batch on ``executor`` and kill its process once ``busy()`` holds."""
    task = asyncio.create_task(executor.execute((await executor.plan(0)).batches[0]))
    while not busy():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def a_lost_attempt(store: InMemoryStore, clock: Clock, rec: Recorder,
                         undo: Callable[[JobContext], Awaitable[None]],
                         owners: str = "ab") -> tuple[JobScheduler, list[Executor], Job]:
    """A job of a handler with compensation ``undo`` and a single attempt, whose executor
    (the first of ``owners``) died running it; the executors of the other owners, and the
    job. The lost attempt's lease has not passed yet."""
    @rec.registry.handler("undoable", compensate=undo, timeout_seconds=300)
    async def undoable(ctx: JobContext) -> None:
        rec.runs[ctx.job_id] += 1
        await rec.hang.wait()

    scheduler, first = make(store, rec, clock, owner=owners[0], slots=1, claim_ttl_seconds=5)
    others = [make(store, rec, clock, owner=o, slots=1, claim_ttl_seconds=5)[1]
              for o in owners[1:]]
    job = (await scheduler.schedule(JobRequest("undoable", {}, retry=ONE))).job
    await crash_while(first, lambda: rec.runs[job.id] > 0)
    return scheduler, others, job


async def test_the_compensation_of_an_abandoned_attempt_runs_once() -> None:
    """From the hunt of stop 27: the executor that records a lost execution runs its
    compensation before writing the fail record, and nothing marked the job as taken: it
    stayed running with its expired lease while the compensation ran. The next cycle (the
    orchestrator plans again after JOBS_CYCLE_DEADLINE_SECONDS, 60 s, while the activity
    still runs) found the same abandoned job and compensated it again, with no crash
    anywhere. The executor now takes the job over first (a ``take_over`` record: its token
    and a new lease)."""
    store, clock, rec = InMemoryStore(), Clock(), Recorder()
    gate, started = asyncio.Event(), []

    async def undo(ctx: JobContext) -> None:
        started.append(ctx.job_id)
        await gate.wait()  # a compensation that takes a while (within its timeout)

    scheduler, [b], job = await a_lost_attempt(store, clock, rec, undo)
    clock.advance(300 + 300 + 30 + 1)  # its lease ends
    first = asyncio.create_task(b.execute((await b.plan(0)).batches[0]))  # cycle 1: abandon
    while not started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    clock.advance(61)  # cycle deadline: the orchestrator plans cycle 2 meanwhile
    plan2 = await b.plan(0)
    second = asyncio.create_task(b.execute(plan2.batches[0])) if plan2.batches else None
    for _ in range(50):
        await asyncio.sleep(0.01)
    gate.set()
    await first
    if second is not None:
        await second
    assert (await scheduler.get(job.id)).status is JobStatus.FAILED
    assert started == [job.id], f"compensation ran {len(started)} times without any crash"


async def test_a_take_over_whose_executor_is_lost_is_taken_over_again() -> None:
    """At-least-once: the executor compensating a lost attempt is lost too; once its own lease
    has passed, another executor takes the job over (from it) and compensates again. That
    duplicate has a cause: the crash."""
    store, clock, rec = InMemoryStore(), Clock(), Recorder()
    gate, started = asyncio.Event(), []

    async def undo(ctx: JobContext) -> None:
        started.append(ctx.job_id)
        await gate.wait()

    scheduler, [b, c], job = await a_lost_attempt(store, clock, rec, undo, "abc")
    for lost in (None, b):  # a died running the attempt, b dies compensating it
        if lost is not None:
            await crash_while(lost, lambda: bool(started))
        taken = await scheduler.get(job.id)
        assert taken.status is JobStatus.RUNNING
        clock.now = max(clock.now, taken.lease_until or clock.now) + timedelta(seconds=1)
    gate.set()
    await c.execute((await c.plan(0)).batches[0])
    final = await scheduler.get(job.id)
    assert final.status is JobStatus.FAILED and final.compensation is not None
    assert started == [job.id, job.id]


class FailRecordRefusedOnce(InMemoryStore):
    """The first append holding a ``fail`` record is refused (a 503: not written)."""

    failed = False

    async def append(self, name: str, data: bytes, *,
                     create_metadata: dict[str, str]) -> AppendResult:
        if not self.failed and b'"op":"fail"' in data:
            self.failed = True
            raise TransientStoreError(f"{name}: 503 ServerBusy (not written)")
        return await super().append(name, data, create_metadata=create_metadata)


async def test_a_failed_write_of_the_taken_over_outcome_is_retried_not_compensated_again(
        ) -> None:
    """From review of the take-over: its ``fail`` was written once; a 503 left the job running
    on the take-over's lease, and the next executor took it over and compensated again, with
    no crash. The outcome is now retried until that lease ends, as any execution's is."""
    store, clock, rec = FailRecordRefusedOnce(), Clock(), Recorder()
    compensations: list[str] = []

    async def undo(ctx: JobContext) -> None:
        compensations.append(ctx.job_id)

    scheduler, [b], job = await a_lost_attempt(store, clock, rec, undo)
    clock.advance(300 + 300 + 30 + 1)
    await b.execute((await b.plan(0)).batches[0])  # takes over, compensates, retries the fail
    assert store.failed and compensations == [job.id]
    assert (await scheduler.get(job.id)).status is JobStatus.FAILED


def test_a_job_started_by_a_version_1_record_is_taken_over_once() -> None:
    """From review of the take-over: with no token on either side (a version-1 start), a
    second executor's take-over applied too, and both compensated."""
    t0, later = T0, T0 + timedelta(hours=1)
    state = ShardState(BLOB)
    state.apply(records.add(Job(id=JOB_ID, handler="h", payload={}, due_at=t0, created_at=t0)))
    state.apply({"op": "start", "v": 1, "id": JOB_ID, "a": 1, "e": 1, "at": records.ts(t0)})
    assert state.jobs[JOB_ID].token is None
    for token, rid in (("T1", "r1"), ("T2", "r2")):
        state.apply(records.take_over(JOB_ID, 1, later, token=token, prev=None,
                                      lease=later + timedelta(hours=1), rid=rid))
    state.apply(records.take_over(JOB_ID, 1, later, token="T3", prev="T1",
                                  lease=later + timedelta(hours=1), rid="r3"))
    assert [bool(state.rids[r]) for r in ("r1", "r2", "r3")] == [True, False, True]
    assert state.jobs[JOB_ID].token == "T3"


async def test_the_lost_executions_overrunning_thread_holds_the_take_overs_permit() -> None:
    """From review: the take-over changes the job's token; the lost execution's sync thread
    still running in this process (under its own token) keeps the handler's permit until it
    returns, as before the take-over."""
    store, clock, rec = InMemoryStore(), Clock(), Recorder()

    async def undo(ctx: JobContext) -> None:
        return None

    @rec.registry.handler("lim", max_concurrency=1, timeout_seconds=0.5, compensate=undo)
    async def lim(ctx: JobContext) -> None:
        rec.runs[ctx.job_id] += 1

    scheduler, ex = make(store, rec, clock, slots=1, abandon_grace_seconds=1)
    lost = (await scheduler.schedule(JobRequest("lim", 0, retry=ONE))).job
    await store.append(parse_job_id(lost.id).name, records.encode_block(
        [records.start(lost.id, 1, 1, clock.now, token="lost0001", run=0,
                       lease=clock.now + timedelta(seconds=5))]), create_metadata={})
    ended = threading.Event()  # the lost execution's sync thread, still running here
    ex.overrunning["lost0001"] = [ended]
    clock.advance(60)
    _, first = await ex.run_cycle(0)
    assert first.abandoned == 1 and ex.overrunning == {}
    other = (await scheduler.schedule(JobRequest("lim", 1))).job
    _, second = await ex.run_cycle(0)
    assert second.started == 0 and second.throttled == 1  # the permit waits for the thread
    ended.set()
    for _ in range(100):  # (the permit is given back by a task once the thread has returned)
        await asyncio.sleep(0.01)
        _, third = await ex.run_cycle(0)
        if third.started:
            break
    assert rec.runs[other.id] == 1
