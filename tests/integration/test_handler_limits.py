"""Per-handler limits (``max_concurrency``, ``max_per_second``) enforced through storage, on
both stores: across executors, through crashes, at a measured request cost."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta

import pytest

from jobs_core import JobContext, JobRequest, JobStatus, RetryPolicy, records
from jobs_core.errors import TransientStoreError
from jobs_core.handler_limits import HandlerLimit, HandlerPermits, parse_limit_overrides
from jobs_core.ids import parse_job_id
from jobs_core.settings import JobsSettings, SettingsError
from jobs_core.store import JobStore
from tests.jobs_helpers import Clock, Recorder, make


class Gate:
    """A handler that holds each attempt until released, and tracks how many overlap."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.open = asyncio.Event()

    async def __call__(self, ctx: JobContext) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.open.wait()
        finally:
            self.running -= 1
        return "done"


def limited(rec: Recorder, **limits: object) -> Gate:
    gate = Gate()
    rec.registry.handler("limited", **limits)(gate)  # type: ignore[arg-type]
    return gate


async def test_at_most_max_concurrency_run_across_two_executors(store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    gate = limited(rec, max_concurrency=2)
    scheduler, first = make(store, rec, clock, slots=2, owner="proc-a")
    _, second = make(store, rec, clock, slots=2, owner="proc-b")
    ids = [(await scheduler.schedule(JobRequest("limited", i))).job.id for i in range(8)]
    cycles = [asyncio.create_task(first.run_cycle(0)), asyncio.create_task(second.run_cycle(1))]
    for _ in range(200):
        await asyncio.sleep(0.01)
        if gate.running == 2:
            break
    await asyncio.sleep(0.05)
    assert gate.running == 2  # the others were refused a permit
    assert await first.permits.in_use("limited") == 2
    gate.open.set()
    results = [r for _, r in await asyncio.gather(*cycles)]
    assert sum(r.started for r in results) == 2
    assert sum(r.throttled for r in results) == 6
    statuses = [(await scheduler.get(i)).status for i in ids]
    assert statuses.count(JobStatus.SUCCEEDED) == 2
    assert statuses.count(JobStatus.SCHEDULED) == 6  # throttled jobs just wait
    for _ in range(10):  # the rest, two at a time
        await asyncio.gather(first.run_cycle(0), second.run_cycle(1))
    assert {(await scheduler.get(i)).status for i in ids} == {JobStatus.SUCCEEDED}
    assert gate.most == 2 and await first.permits.in_use("limited") == 0


async def test_max_per_second_spreads_the_starts(store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    gate = limited(rec, max_per_second=2)
    gate.open.set()
    scheduler, executor = make(store, rec, clock, slots=1)
    for i in range(5):
        await scheduler.schedule(JobRequest("limited", i))
    started = []
    for _ in range(3):
        _, result = await executor.run_cycle(0)
        started.append(result.started)
        clock.advance(1)
    assert started == [2, 2, 1]


async def test_a_crashed_holder_frees_its_permits_when_their_leases_end(store: JobStore) -> None:
    clock = Clock()
    limits = {"h": HandlerLimit(max_concurrency=1)}
    crashed = HandlerPermits(store, limits, clock)
    other = HandlerPermits(store, limits, clock)
    lease = clock.now + timedelta(seconds=90)
    assert await crashed.acquire("h", "aaaa", lease)  # ... and never gives it back
    assert not await other.acquire("h", "bbbb", clock.now + timedelta(seconds=90))
    clock.advance(90)
    assert await other.acquire("h", "bbbb", clock.now + timedelta(seconds=90))


async def test_asks_at_once_share_one_read_and_one_write(store: JobStore) -> None:
    clock = Clock()
    permits = HandlerPermits(store, {"h": HandlerLimit(max_concurrency=50)}, clock)
    lease = clock.now + timedelta(seconds=90)
    granted = await asyncio.gather(*(permits.acquire("h", f"t{i:02d}", lease)
                                     for i in range(60)))
    assert granted.count(True) == 50 and granted[:50] == [True] * 50
    assert permits.requests <= 4  # one round (read + write), perhaps a second for the tail
    before = permits.requests
    await asyncio.gather(*(permits.release("h", f"t{i:02d}") for i in range(50)))
    assert permits.requests - before <= 4 and await permits.in_use("h") == 0


def test_limits_come_from_registration_or_the_setting_and_are_checked() -> None:
    rec = Recorder()
    rec.registry.handler("a", max_concurrency=3)(lambda ctx: None)
    rec.registry.handler("b")(lambda ctx: None)
    limits = rec.registry.limits('{"b": {"max_per_second": 5}, "unknown": {}}')
    assert limits == {"a": HandlerLimit(3, None), "b": HandlerLimit(None, 5)}
    assert rec.registry.limits('{"a": {"max_concurrency": null}}') == {}
    for bad in ("[1]", "{", '{"a": {"max_concurrency": 0}}', '{"a": {"rate": 1}}',
                '{"a": {"max_per_second": 5000}}'):
        with pytest.raises(SettingsError, match="JOBS_HANDLER_LIMITS"):
            parse_limit_overrides(bad)
    with pytest.raises(SettingsError):
        JobsSettings(handler_limits='{"a": {"max_concurrency": 101}}')
    with pytest.raises(SettingsError):
        rec.registry.handler("c", max_concurrency=0)


async def test_a_sync_handler_past_its_timeout_keeps_its_permit_until_its_thread_returns(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    running, most = 0, 0
    lock = threading.Lock()

    def slow(ctx: JobContext) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.8)  # well past its 0.2 s timeout: the thread runs on regardless
        with lock:
            running -= 1
        return "late"

    rec.registry.handler("slow", max_concurrency=1, timeout_seconds=0.2)(slow)
    scheduler, executor = make(store, rec, clock, slots=1)
    for i in range(2):
        await scheduler.schedule(JobRequest("slow", i, retry=RetryPolicy(max_attempts=1)))
    _, first = await executor.run_cycle(0)
    _, second = await executor.run_cycle(0)  # the first thread still runs: no permit
    assert (first.started, first.failed, second.started) == (1, 1, 0)
    await asyncio.sleep(1.0)  # the thread returns; its permit is given back
    _, third = await executor.run_cycle(0)
    assert third.started == 1 and most == 1
    await asyncio.sleep(1.0)


def undoable(rec: Recorder) -> list[int]:
    """Registers ``undoable`` (limit 1, timeout 0.2 s): it fails at once, and its sync
    compensation runs 0.8 s, past its timeout. Returns the payloads of the attempts that started
    while a compensation still ran (none, if the limit holds)."""
    compensating = threading.Event()
    started_while_compensating: list[int] = []

    def fail(ctx: JobContext) -> str:
        if compensating.is_set():
            started_while_compensating.append(ctx.payload)
        raise RuntimeError("no")

    def undo(ctx: JobContext) -> None:
        compensating.set()
        time.sleep(0.8)  # well past its 0.2 s timeout: the thread runs on regardless
        compensating.clear()

    rec.registry.handler("undoable", max_concurrency=1, timeout_seconds=0.2,
                         compensate=undo)(fail)
    return started_while_compensating


async def test_a_sync_compensation_past_its_timeout_keeps_the_permit_until_it_returns(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    started_while_compensating = undoable(rec)
    scheduler, executor = make(store, rec, clock, slots=1)
    for i in range(2):
        await scheduler.schedule(JobRequest("undoable", i, retry=RetryPolicy(max_attempts=1)))
    _, first = await executor.run_cycle(0)
    _, second = await executor.run_cycle(0)  # the compensation still runs: no permit
    assert (first.started, first.failed, second.started) == (1, 1, 0)
    await asyncio.sleep(1.0)  # the compensation's thread returns; the permit is given back
    _, third = await executor.run_cycle(0)
    assert third.started == 1 and started_while_compensating == []
    await asyncio.sleep(1.0)


async def lose_attempt(store: JobStore, job_id: str, attempt: int, now: datetime) -> None:
    """Another process started ``attempt`` of the job (lease 5 s) and vanished."""
    await store.append(parse_job_id(job_id).name, records.encode_block(
        [records.start(job_id, attempt, 1, now, token=f"lost{attempt:04d}", run=0,
                       lease=now + timedelta(seconds=5))]), create_metadata={})


async def test_the_compensation_of_an_abandoned_attempt_runs_under_a_permit(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    started_while_compensating = undoable(rec)
    scheduler, executor = make(store, rec, clock, slots=1)
    once = RetryPolicy(max_attempts=1)
    lost = (await scheduler.schedule(JobRequest("undoable", 0, retry=once))).job
    # another process started the only attempt and vanished: its lease passes
    await lose_attempt(store, lost.id, 1, clock.now)
    await scheduler.schedule(JobRequest("undoable", 1, retry=once))
    clock.advance(60)
    _, first = await executor.run_cycle(0)  # the abandon (and its compensation) or the start
    for _ in range(20):
        if first.abandoned == 1 and executor.overrunning == {}:
            break
        await asyncio.sleep(0.2)
        _, more = await executor.run_cycle(0)
        first.add(more)
    assert first.abandoned == 1 and first.compensated == 0  # (it timed out)
    assert started_while_compensating == []
    await asyncio.sleep(1.0)
    assert executor.overrunning == {}  # nothing kept for an execution that is gone


async def test_an_abandoned_attempt_that_will_be_retried_takes_no_permit(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    undoable(rec)
    scheduler, executor = make(store, rec, clock, slots=1)
    twice = RetryPolicy(max_attempts=2, base_delay=600, max_delay=600, jitter=0)
    lost = (await scheduler.schedule(JobRequest("undoable", 0, retry=twice))).job
    await lose_attempt(store, lost.id, 1, clock.now)
    clock.advance(60)
    _, result = await executor.run_cycle(0)
    assert (result.abandoned, result.retried, result.compensated) == (1, 1, 0)
    assert executor.permits.requests == 0  # no compensation runs: no permit to take
    job = await scheduler.get(lost.id)
    assert job.status is JobStatus.RETRYING and job.due_at == clock.now + timedelta(seconds=600)
    # attempt 2 of 2 is lost too: that abandonment is final, compensates, and takes a permit
    clock.advance(600)
    await lose_attempt(store, lost.id, 2, clock.now)
    clock.advance(60)
    _, final = await executor.run_cycle(0)
    assert (final.abandoned, final.retried, final.failed) == (1, 0, 1)
    assert executor.permits.requests > 0
    assert (await scheduler.get(lost.id)).status is JobStatus.FAILED
    await asyncio.sleep(1.0)  # (the compensation's thread returns)


class LostAnswer:
    """A store whose next permit write lands but answers with an error."""

    def __init__(self, store: JobStore) -> None:
        self._store, self.lose = store, 1

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def write_claim(self, name: str, metadata: dict[str, str], *,
                          etag: str | None) -> str:
        etag = await self._store.write_claim(name, metadata, etag=etag)
        if self.lose:
            self.lose -= 1
            raise TransientStoreError(f"{name}: the answer was lost")
        return etag


async def test_a_permit_whose_write_answer_was_lost_is_given_back_next_round(
        store: JobStore) -> None:
    clock = Clock()
    lossy = LostAnswer(store)
    permits = HandlerPermits(lossy, {"h": HandlerLimit(max_concurrency=1)}, clock)  # type: ignore[arg-type]
    lease = clock.now + timedelta(seconds=90)
    assert not await permits.acquire("h", "lost", lease)  # written, but we can't tell
    assert await permits.acquire("h", "next", lease)  # the ghost is given back first
    assert await permits.in_use("h") == 1


class GatedReads:
    """A store whose permit reads each wait for their own gate (the n-th read the n-th)."""

    def __init__(self, store: JobStore, gates: int) -> None:
        self._store = store
        self.gates = [asyncio.Event() for _ in range(gates)]
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def read_claim(self, name: str) -> object:
        self.reads += 1
        if self.reads <= len(self.gates):
            await self.gates[self.reads - 1].wait()
        return await self._store.read_claim(name)


async def test_a_cancelled_round_still_answers_the_others(store: JobStore) -> None:
    clock = Clock()
    gated = GatedReads(store, 2)
    permits = HandlerPermits(gated, {"h": HandlerLimit(max_concurrency=5)}, clock)  # type: ignore[arg-type]
    lease = clock.now + timedelta(seconds=90)
    giving = asyncio.create_task(permits.release("h", "x"))  # holds the round's lock
    await asyncio.sleep(0.01)
    first = asyncio.create_task(permits.acquire("h", "a", lease))
    second = asyncio.create_task(permits.acquire("h", "b", lease))
    await asyncio.sleep(0.01)  # both asks wait for the lock
    gated.gates[0].set()
    await asyncio.sleep(0.05)  # the next round (first's task) takes both asks and reads
    first.cancel()  # ... and goes away mid-read
    gated.gates[1].set()
    answers = await asyncio.gather(giving, first, second, return_exceptions=True)
    assert isinstance(answers[1], asyncio.CancelledError), answers
    assert answers[2] is False or answers[2] is True, answers  # an answer, not an error
