"""Regression tests for four defects of issue #12 (fixed in 0eefd1c/94d9635), all about writes
whose answer is lost or that the replay discards, on the in-memory store with injected faults:

- 11c: a ``start`` committed but answered with an error used up an attempt that never ran;
- 11d: state-change events were sent for outcomes the replay discarded (a fenced outcome);
- 11e: run-now's touch hint always went to index 0 of the current bucket, even when full;
- 11f: adds whose answer was lost and whose retry met the block limit were added again, at
  the next index under new ids (duplicate jobs).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jobs_core import (
    Executor,
    InMemoryStore,
    JobRequest,
    JobScheduler,
    JobsSettings,
    JobStatus,
    records,
)
from jobs_core.errors import BlockLimitError, StoreError, TransientStoreError
from jobs_core.event_log import LogPublisher
from jobs_core.events import EventPublisher, MemoryEventSink
from jobs_core.ids import ShardBlob, parse_job_id
from tests.jobs_helpers import Clock, Recorder, make

QUEUE = "job-events"
LEASE = 91  # an execution's lease: the default 60 s timeout + 30 s grace, and a second


class WrittenThenLost:
    """The first append to a ``shards/`` blob whose data holds ``marker`` is written, then
    answered with ``error`` (a timeout after the service wrote the block, or an SDK retry of it
    that met the block limit the first try reached). Every other call goes to ``store``."""

    def __init__(self, store: InMemoryStore, marker: bytes, error: StoreError) -> None:
        self._store, self.marker, self.error, self.lost = store, marker, error, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(self, name: str, data: bytes, **kwargs: Any) -> object:
        result = await self._store.append(name, data, **kwargs)
        if not self.lost and name.startswith("shards/") and self.marker in data:
            self.lost += 1
            raise self.error
        return result


async def blob_records(store: InMemoryStore, blob: str) -> list[records.Record]:
    """Every readable record of ``blob``, in log order."""
    data = (await store.read(blob)).data
    return [records.decode(json.loads(line)) for line in data.split(b"\n") if line.strip()]


async def test_11c_a_start_committed_but_answered_failed_still_runs_its_attempt() -> None:
    """#12 defect 11c: a start committed but reported failed used up an attempt that never
    ran. The executor's ``start`` append is written and its answer lost (a 503 after the
    write): the executor reads the block back, finds it committed and runs the handler, so
    attempt 1 is the one that ran, once, and the log holds exactly one start for it."""
    clock, rec, inner = Clock(), Recorder(), InMemoryStore()
    store = WrittenThenLost(inner, b'"op":"start"',
                            TransientStoreError("start: timeout (the block was committed)"))
    scheduler, executor = make(store, rec, clock, slots=1, commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest("echo", {"n": 1}))).job
    _, result = await executor.run_cycle(0)
    assert store.lost == 1
    assert rec.runs == {job.id: 1} and result.started == 1
    done = await scheduler.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert done.result == {"echo": {"n": 1}, "attempt": 1}
    log = [r for r in await blob_records(inner, parse_job_id(job.id).name)
           if getattr(r, "id", None) == job.id]
    assert [type(r).__name__ for r in log] == ["Add", "Start", "Ok"]
    start = log[1]
    assert isinstance(start, records.Start) and start.attempt == 1
    assert executor.committer.verified_after_error == 1  # (found by its read-back)


def with_events(store: InMemoryStore, rec: Recorder, clock: Clock, sink: MemoryEventSink,
                owner: str) -> tuple[JobScheduler, Executor]:
    cfg = JobsSettings(slots=1, claim_ttl_seconds=5)
    events = EventPublisher(sink, QUEUE)
    return (JobScheduler(store, rec.registry, cfg, clock=clock, events=events),
            Executor(store, rec.registry, cfg, owner=owner, clock=clock, events=events))


async def test_11d_a_fenced_outcome_sends_no_event() -> None:
    """#12 defect 11d: outcome events were sent for outcomes the replay discarded. Executor
    ``a`` starts a job whose handler hangs; its lease passes and ``b`` records the attempt as
    lost (retrying). Then ``a``'s handler returns: its ``ok`` is appended but fenced (its
    execution is no longer the job's current one), so neither ``a``'s eager send nor the log
    publisher sends a ``succeeded`` event for it."""
    clock, rec, store, sink = Clock(), Recorder(), InMemoryStore(), MemoryEventSink()
    scheduler, a = with_events(store, rec, clock, sink, "a")
    _, b = with_events(store, rec, clock, sink, "b")
    job = (await scheduler.schedule(JobRequest("hang"))).job
    plan_a = await a.plan(0)
    run_a = asyncio.create_task(a.execute(plan_a.batches[0]))
    while (await scheduler.get(job.id)).status is not JobStatus.RUNNING:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    clock.advance(LEASE)  # a's execution's lease passes: b abandons it
    plan_b = await b.plan(0)
    assert (await b.execute(plan_b.batches[0])).abandoned == 1
    rec.hang.set()  # a's handler returns now: its outcome is fenced
    await run_a
    blob = parse_job_id(job.id).name
    oks = [r for r in await blob_records(store, blob) if isinstance(r, records.Ok)]
    assert len(oks) == 1  # the discarded outcome is in the log ...
    assert (await scheduler.get(job.id)).status is JobStatus.RETRYING  # ... and did not apply
    eager = [e["state"] for e in sink.events(QUEUE) if e["job_id"] == job.id]
    assert eager == ["scheduled", "started", "retrying"], eager
    from_log = MemoryEventSink()
    report = await LogPublisher(store, from_log, QUEUE, clock=clock).publish(0)
    assert not report.errors
    logged = [e["state"] for e in from_log.events(QUEUE) if e["job_id"] == job.id]
    assert logged == ["scheduled", "started", "retrying"], logged


async def test_11e_run_now_touches_a_blob_with_room_when_index_0_is_full() -> None:
    """#12 defect 11e: run-now's touch always wrote to index 0 of the current bucket, even
    when it was full. Index 0 of the current bucket is at the store's block limit; a job of a
    bucket two hours ahead is run now by a cold process: the run-now succeeds, its touch hint
    lands in the next index (a blob with room), and the planner runs the job at once."""
    clock, rec = Clock(), Recorder()
    inner = InMemoryStore(max_blocks=4)
    filler, _ = make(inner, rec, clock, slots=1, seal_blocks=2, evacuate_blocks=3,
                     commit_linger_ms=0)
    # (due later in the bucket: no batch of the full blob is planned, which would try to
    # write its ``full`` record past the limit)
    first = (await filler.schedule(JobRequest("echo", {"n": 0}, delay=1800))).job
    full = parse_job_id(first.id)
    assert full.index == 0 and full.key.bucket <= clock.now
    await filler.schedule(JobRequest("echo", {"n": 1}, delay=1800))  # 2 blocks: sealed
    for _ in range(2):  # (another process's blocks) up to the limit
        await inner.append(full.name, b"\n", create_metadata={})
    assert (await inner.stat(full.name)).block_count == inner.max_blocks
    scheduler, executor = make(inner, rec, clock, slots=1, seal_blocks=2, evacuate_blocks=3,
                               commit_linger_ms=0)
    later = (await scheduler.schedule(JobRequest("echo", {"n": 2}, delay=7200))).job
    assert parse_job_id(later.id).key.bucket > full.key.bucket
    ran = await asyncio.wait_for(scheduler.run_now(later.id), timeout=10)
    assert ran.status is JobStatus.SCHEDULED and ran.due_at <= clock.now
    assert (await inner.stat(full.name)).block_count == inner.max_blocks
    target = parse_job_id(later.id).name
    touched = []
    for info in await inner.list(full.key.prefix):
        if any(isinstance(r, records.Touch) and r.shard == target
               for r in await blob_records(inner, info.name)):
            touched.append(info.name)
    assert touched == [ShardBlob(full.key, 1).name]
    room = (await inner.stat(touched[0])).block_count
    assert room is not None and room < inner.max_blocks  # it has room
    plan = await executor.plan(0)
    assert plan.due == 1
    for batch in plan.batches:
        await executor.execute(batch)
    assert rec.runs[later.id] == 1
    assert (await scheduler.get(later.id)).status is JobStatus.SUCCEEDED


async def test_11f_adds_whose_retry_met_the_block_limit_are_not_added_again() -> None:
    """#12 defect 11f: a lost-response retry that met ``BlockLimitError`` re-added the jobs at
    the next index under new ids. The batch's add is the blob's last block (the store's
    limit): it is written, and the answer the caller sees is the block-limit error of an SDK
    retry. The block is read back and found, so each request is one job, with the id it was
    answered with, in the blob the lost answer was for."""
    clock, rec = Clock(), Recorder()
    inner = InMemoryStore(max_blocks=3)
    store = WrittenThenLost(inner, b"lost-then-limit",
                            BlockLimitError("retry: 409 BlockCountExceedsLimit"))
    scheduler, _ = make(store, rec, clock, slots=1, seal_blocks=10, evacuate_blocks=20,
                        commit_linger_ms=0)
    for n in range(2):  # blocks 1 and 2 of 3
        await scheduler.schedule(JobRequest("echo", {"n": n}))
    answers = await scheduler.schedule_many(
        [JobRequest("echo", {"tag": "lost-then-limit", "i": i}) for i in range(3)])
    assert store.lost == 1
    ids = []
    for answer in answers:
        assert not isinstance(answer, BaseException), answer
        ids.append(answer.job.id)
    reader, _ = make(inner, Recorder(), clock, slots=1)
    page = await reader.list(slot=0)
    tagged = sorted(j.id for j in page.jobs
                    if isinstance(j.payload, dict) and j.payload.get("tag") == "lost-then-limit")
    assert tagged == sorted(ids)
    assert {parse_job_id(i).index for i in ids} == {0}  # where the lost answer was for
    adds = [r for b in await inner.list("shards/") for r in await blob_records(inner, b.name)
            if isinstance(r, records.Add)]
    assert len(adds) == 5  # two fillers and the three jobs: nothing added twice
