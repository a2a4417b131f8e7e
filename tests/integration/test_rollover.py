"""Rollover: new jobs go to a shard's next blob once one is sealed, in every process, and a
full blob refuses changes clearly. Run on the in-memory store and on Azurite alike."""

from __future__ import annotations

import asyncio

import pytest

from jobs_core import InMemoryStore, JobRequest, JobStatus, records
from jobs_core.errors import ShardFullError, TransientStoreError
from jobs_core.ids import parse_job_id
from tests.jobs_helpers import Clock, Recorder, drain, make


async def test_rollover_to_the_next_blob_before_the_limit(store: object) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1, seal_blocks=3, commit_linger_ms=0)
    ids = [(await scheduler.schedule(JobRequest("echo", i))).job.id for i in range(8)]
    indexes = [parse_job_id(i).index for i in ids]
    assert indexes == [0, 0, 0, 1, 1, 1, 2, 2]
    await drain(executor, 1)
    assert len(rec.runs) == 8 and rec.duplicates == 0


async def test_changes_to_a_full_blob_are_refused_clearly() -> None:
    clock, rec = Clock(), Recorder()
    store = InMemoryStore(max_blocks=2)
    scheduler, _ = make(store, rec, clock, slots=1, commit_linger_ms=0)
    first = (await scheduler.schedule(JobRequest("echo", delay=60))).job
    second = (await scheduler.schedule(JobRequest("echo", delay=60))).job
    third = (await scheduler.schedule(JobRequest("echo", delay=60))).job  # blob 0 is full
    assert [parse_job_id(j.id).index for j in (first, second, third)] == [0, 0, 1]
    with pytest.raises(ShardFullError, match="is full"):
        await scheduler.cancel(first.id)
    assert (await scheduler.get(first.id)).status is JobStatus.SCHEDULED


async def test_a_new_process_adds_to_the_newest_blob_not_to_a_sealed_one(store: object) -> None:
    """Soak seed 27819: every cold process (a restart, a new instance) began at blob index 0,
    so each one's first add landed in the sealed blob, and with the moves that took those jobs
    out again they used up its headroom; two jobs added at its last two blocks could then
    neither start nor move, and never ran."""
    clock, rec = Clock(), Recorder()
    warm, executor = make(store, rec, clock, slots=1, seal_blocks=3, commit_linger_ms=0)
    first = [(await warm.schedule(JobRequest("echo", i))).job for i in range(3)]
    assert [parse_job_id(j.id).index for j in first] == [0, 0, 0]  # sealed; no blob 1 yet
    sealed = parse_job_id(first[0].id).name
    indexes = []
    for n in range(5):  # five processes that have not written to this shard yet
        cold, _ = make(store, rec, clock, slots=1, seal_blocks=3, commit_linger_ms=0)
        indexes.append(parse_job_id((await cold.schedule(JobRequest("echo", 100 + n))).job.id)
                       .index)
    assert indexes == [1, 1, 1, 2, 2]  # blob 1 is sealed by the third one's add in turn
    assert await _blocks(store, sealed) == 3
    await drain(executor, 1)
    assert len(rec.runs) == 8 and rec.duplicates == 0


async def _blocks(store: object, blob: str) -> int:
    return (await store.stat(blob)).block_count or 0  # type: ignore[attr-defined]


async def test_concurrent_first_adds_share_one_listing_and_past_buckets_are_forgotten() -> None:
    clock, rec = Clock(), Recorder()
    store = InMemoryStore()
    scheduler, _ = make(store, rec, clock, slots=1, commit_linger_ms=5)
    await asyncio.gather(*(scheduler.schedule(JobRequest("echo", i)) for i in range(50)))
    assert store.requests["list"] == 1  # not one per request
    first = scheduler.shards.known()
    clock.advance(3 * 3600)  # three buckets later (60-minute buckets)
    await scheduler.schedule(JobRequest("echo", "later"))
    assert store.requests["list"] == 2
    assert not first & scheduler.shards.known() and len(scheduler.shards.known()) == 1


class StaleList(InMemoryStore):
    """A listing that misses the blobs in ``hide`` (created in the last moments, as the
    simulation's stale listings do)."""

    def __init__(self) -> None:
        super().__init__()
        self.hide: set[str] = set()

    async def list(self, prefix):  # type: ignore[no-untyped-def]
        return [b for b in await super().list(prefix) if b.name not in self.hide]


async def test_a_move_never_goes_to_its_own_source_even_on_a_stale_listing() -> None:
    """From review: a move out of the newest blob, on a listing that did not show it yet, chose
    that blob itself; ``moved`` then removed the job from it, and it was gone (404)."""
    clock, rec = Clock(), Recorder()
    store = StaleList()
    scheduler, executor = make(store, rec, clock, slots=1, seal_blocks=3, evacuate_blocks=4,
                               commit_linger_ms=0)
    for i in range(3):  # blob 0: three blocks, sealed
        await scheduler.schedule(JobRequest("echo", i, delay=600))
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=600))).job
    source = parse_job_id(job.id)
    assert source.index == 1
    store.hide = {source.name}
    assert await scheduler.mover.open_index(source.key, avoid=source.name) == 2
    assert await scheduler.mover.move(source.name, [job]) == 1  # (as an evacuation does)
    moved = await scheduler.get(job.id)
    assert moved.status is JobStatus.SCHEDULED
    clock.advance(600)
    await drain(executor, 1)
    assert rec.runs[job.id] == 1


class StatFails(InMemoryStore):
    async def stat(self, name):  # type: ignore[no-untyped-def]
        raise TransientStoreError(f"{name}: 503")


async def test_a_failed_head_does_not_fail_a_new_process_schedule() -> None:
    """The HEAD that tells whether the newest blob is sealed is advisory: without it, the
    append's block count tells the seal (from review)."""
    clock, rec = Clock(), Recorder()
    store = StatFails()
    warm, _ = make(store, rec, clock, slots=1)
    first = (await warm.schedule(JobRequest("echo", 1))).job
    cold, _ = make(store, rec, clock, slots=1)
    second = (await cold.schedule(JobRequest("echo", 2))).job
    assert parse_job_id(second.id).name == parse_job_id(first.id).name


async def test_the_replay_ignores_a_move_to_the_blob_the_job_is_in() -> None:
    clock, rec = Clock(), Recorder()
    store = InMemoryStore()
    scheduler, executor = make(store, rec, clock, slots=1, commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=60))).job
    blob = parse_job_id(job.id).name
    for record in (records.move(job.id, blob, clock.now), records.moved(job.id, blob, clock.now)):
        await store.append(blob, records.encode_line(record), create_metadata={})
    fresh, _ = make(store, rec, clock, slots=1)
    assert (await fresh.get(job.id)).moving_to is None
    clock.advance(60)
    await drain(executor, 1)
    assert rec.runs[job.id] == 1


class FlakyStat(InMemoryStore):
    def __init__(self) -> None:
        super().__init__(max_blocks=6)
        self.fail_stat = False

    async def stat(self, name):  # type: ignore[no-untyped-def]
        if self.fail_stat:
            raise TransientStoreError(f"{name}: 503")
        return await super().stat(name)


async def test_a_failed_head_never_sends_a_move_to_a_blob_at_the_block_limit() -> None:
    """From review: with the HEAD advisory for moves too, a move chose the newest blob at the
    hard limit; its carry could never be written, and the job stayed `moving` for good."""
    clock, rec = Clock(), Recorder()
    store = FlakyStat()
    scheduler, _ = make(store, rec, clock, slots=1, seal_blocks=3, evacuate_blocks=4,
                        commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=600))).job
    source = parse_job_id(job.id)
    full = source.key.blob(source.index + 1)  # the key's newest blob, at the hard limit
    line = records.encode_line(records.touch(source.name, clock.now))
    for _ in range(6):
        await store.append(full, line, create_metadata={})
    cold, _ = make(store, rec, clock, slots=1, seal_blocks=3, evacuate_blocks=4,
                   commit_linger_ms=0)
    store.fail_stat = True
    with pytest.raises(TransientStoreError):
        await cold.mover.move(source.name, [job])
    store.fail_stat = False
    assert (await cold.get(job.id)).moving_to is None  # nothing written: tried again later
    assert await cold.mover.open_index(source.key, avoid=source.name) == source.index + 2

