"""Retention purge on Azurite: request counts, and the conditional delete against real ETags."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from jobs_core import JobScheduler, JobStatus, records
from jobs_core.blob_store import AzureBlobStore
from jobs_core.errors import JobNotFoundError
from jobs_core.ids import ShardBlob, ShardKey, new_job_id
from jobs_core.model import Job
from jobs_core.retention import purge_shards
from jobs_core.settings import JobsSettings
from jobs_core.store import ReadResult
from tests.jobs_helpers import T0, Clock, Recorder

pytestmark = pytest.mark.azurite
SETTINGS = JobsSettings(slots=4)
NOW = T0 + timedelta(days=30)
WEEK = timedelta(days=7)


async def write_shard(store: AzureBlobStore, slot: int, hours_after_t0: int, jobs: int,
                      *, unfinished: bool = False) -> tuple[str, list[str]]:
    """A shard blob written in one block: ``jobs`` jobs that succeeded (plus one still
    scheduled if ``unfinished``), in the log format every reader replays."""
    shard = ShardBlob(ShardKey(T0 + timedelta(hours=hours_after_t0), slot), 0)
    at = shard.key.bucket
    batch: list[records.Record] = []
    ids = []
    for i in range(jobs + unfinished):
        job = Job(id=new_job_id(shard), handler="echo", due_at=at, created_at=at, payload=i)
        ids.append(job.id)
        batch.append(records.add(job))
        if i < jobs:
            batch += [records.start(job.id, 1, 1, at), records.ok(job.id, 1, 1, at, {"i": i}, None)]
    await store.append(shard.name, records.encode_block(batch), create_metadata={"slot": str(slot)})
    return shard.name, ids


async def test_purge_of_n_shards_costs_one_list_plus_a_read_and_a_delete_each(
        azurite_store: AzureBlobStore) -> None:
    store = azurite_store
    n = 100
    for i in range(n):
        await write_shard(store, i % 4, i // 4, 10)
    live = [await write_shard(store, slot, 100, 5, unfinished=True) for slot in range(2)]
    recent = await write_shard(store, 0, 30 * 24 - 2, 5)  # bucket ended 1 h ago
    assert store.counter is not None
    store.counter.reset()
    started = time.perf_counter()
    report = await purge_shards(store, SETTINGS, NOW, WEEK)
    elapsed = time.perf_counter() - started
    requests = store.counter.snapshot()
    print(f"purge of {n} deletable + 3 kept shards on Azurite: {requests}, {elapsed:.2f} s")
    assert (report.shards_scanned, report.shards_deleted, report.jobs_deleted) == (n + 3, n, 10 * n)
    assert (report.shards_kept_unfinished, report.shards_kept_recent) == (2, 1)
    assert report.error_count == 0
    assert requests == {"list": 1, "read": n + 2, "delete": n}
    left = [b.name for b in await store.list("shards/")]
    assert left == sorted([live[0][0], live[1][0], recent[0]])
    scheduler = JobScheduler(store, Recorder().registry, SETTINGS, clock=Clock(NOW))
    assert (await scheduler.get(live[0][1][-1])).status is JobStatus.SCHEDULED
    assert (await scheduler.get(live[0][1][0])).status is JobStatus.SUCCEEDED
    with pytest.raises(JobNotFoundError):
        await scheduler.get(new_job_id(ShardBlob(ShardKey(T0, 0), 0)))


async def test_append_between_read_and_delete_keeps_the_blob_on_azurite(
        azurite_store: AzureBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store = azurite_store
    name, ids = await write_shard(store, 0, 0, 3)
    read = store.read

    async def read_then_someone_appends(blob: str, offset: int = 0) -> ReadResult:
        result = await read(blob, offset)
        cancel = records.cancel(ids[0], NOW)
        await store.append(blob, records.encode_block([cancel]), create_metadata={})
        return result

    monkeypatch.setattr(store, "read", read_then_someone_appends)
    report = await purge_shards(store, SETTINGS, NOW, WEEK)
    assert (report.shards_kept_changed, report.shards_deleted) == (1, 0)
    assert [b.name for b in await store.list("shards/")] == [name]
    monkeypatch.undo()
    # the stray cancel did not apply (the job had succeeded): the next run deletes the blob
    assert (await purge_shards(store, SETTINGS, NOW, WEEK)).shards_deleted == 1


async def test_summary_write_between_read_and_delete_still_deletes_on_azurite(
        azurite_store: AzureBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store = azurite_store
    await write_shard(store, 0, 0, 3)
    read = store.read

    async def read_then_planner_writes_summary(blob: str, offset: int = 0) -> ReadResult:
        result = await read(blob, offset)
        await store.set_metadata(blob, {"slot": "0", "pending": "0"})
        return result

    monkeypatch.setattr(store, "read", read_then_planner_writes_summary)
    assert store.counter is not None
    store.counter.reset()
    report = await purge_shards(store, SETTINGS, NOW, WEEK)
    assert (report.shards_deleted, report.jobs_deleted) == (1, 3)
    # list, read, metadata write (the "planner"), 412 delete, list again, delete
    assert store.counter.snapshot() == {"list": 2, "read": 1, "set_metadata": 1, "delete": 2}
    assert await store.list("shards/") == []
