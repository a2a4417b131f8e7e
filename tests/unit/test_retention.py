"""Retention purge of shard blobs on the in-memory store, with an injected clock."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from jobs_core import InMemoryStore, JobRequest, JobScheduler, JobStatus, records
from jobs_core.errors import JobNotFoundError
from jobs_core.ids import parse_job_id
from jobs_core.retention import PurgeReport, purge_shards
from jobs_core.settings import JobsSettings
from jobs_core.store import BlobInfo, ReadResult
from tests.jobs_helpers import Clock, Recorder, drain, make

WEEK = timedelta(days=7)


def shard_of(job_id: str) -> str:
    return parse_job_id(job_id).name


async def shards(store: InMemoryStore) -> list[str]:
    return [b.name for b in await store.list("shards/")]


async def purge(store: InMemoryStore, clock: Clock, *, dry_run: bool = False,
                retention: timedelta = WEEK) -> PurgeReport:
    return await purge_shards(store, JobsSettings(slots=1), clock.now, retention,
                              dry_run=dry_run)


async def finished_shard(store: InMemoryStore, clock: Clock, n: int = 3) -> list[str]:
    """n echo jobs due at T0 in one shard (one slot), all run to success at T0."""
    recorder = Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    ids = [(await scheduler.schedule(JobRequest("echo", {"i": i}))).job.id for i in range(n)]
    await drain(executor, 1)
    for job_id in ids:
        assert (await scheduler.get(job_id)).status is JobStatus.SUCCEEDED
    return ids


def fresh_scheduler(store: InMemoryStore, clock: Clock) -> JobScheduler:
    """A scheduler with an empty cache (like another process)."""
    return make(store, Recorder(), clock, slots=1)[0]


async def test_old_shard_with_only_finished_jobs_is_deleted_and_claims_are_kept() -> None:
    store, clock = InMemoryStore(), Clock()
    ids = await finished_shard(store, clock)
    size = (await store.read(shard_of(ids[0]))).size
    clock.advance(WEEK.total_seconds() + 2 * 3600)  # bucket end + 7 days is past
    store.requests.clear()
    report = await purge(store, clock)
    assert (report.shards_scanned, report.shards_read, report.shards_deleted) == (1, 1, 1)
    assert (report.jobs_deleted, report.bytes_deleted) == (3, size)
    assert report.error_count == 0
    assert store.requests == {"list": 1, "read": 1, "delete": 1}
    assert await shards(store) == []
    assert [b.name for b in await store.list("claims/")] == ["claims/s000"]
    with pytest.raises(JobNotFoundError):
        await fresh_scheduler(store, clock).get(ids[0])
    json.dumps(report.to_dict())  # the HTTP layer sends it as JSON


async def test_requests_per_purge_are_one_list_plus_a_read_and_a_delete_per_shard() -> None:
    store, clock = InMemoryStore(), Clock()
    for _ in range(5):  # five buckets: five shard blobs
        await finished_shard(store, clock, n=2)
        clock.advance(3600)
    clock.advance(WEEK.total_seconds() + 3600)
    store.requests.clear()
    report = await purge(store, clock)
    assert (report.shards_deleted, report.jobs_deleted) == (5, 10)
    assert store.requests == {"list": 1, "read": 5, "delete": 5}


async def test_dry_run_reports_but_deletes_nothing() -> None:
    store, clock = InMemoryStore(), Clock()
    ids = await finished_shard(store, clock)
    clock.advance(30 * 86400)
    report = await purge(store, clock, dry_run=True)
    assert report.dry_run and (report.shards_deleted, report.jobs_deleted) == (1, 3)
    assert "delete" not in store.requests
    assert await shards(store) == [shard_of(ids[0])]
    assert (await fresh_scheduler(store, clock).get(ids[0])).status is JobStatus.SUCCEEDED


async def test_shard_whose_bucket_is_within_retention_is_kept_unread() -> None:
    store, clock = InMemoryStore(), Clock()
    await finished_shard(store, clock)
    clock.advance(WEEK.total_seconds())  # bucket ended 7 days - 1 h ago
    report = await purge(store, clock)
    assert (report.shards_kept_recent, report.shards_read, report.shards_deleted) == (1, 0, 0)


async def test_old_bucket_whose_jobs_finished_recently_is_kept() -> None:
    store, clock = InMemoryStore(), Clock()
    recorder = Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", {}))).job
    clock.advance(10 * 86400)  # the job runs 10 days late (no executor ran meanwhile)
    await drain(executor, 1)
    assert (await scheduler.get(job.id)).status is JobStatus.SUCCEEDED
    clock.advance(3600)
    report = await purge(store, clock)
    assert (report.shards_read, report.shards_kept_recent, report.shards_deleted) == (1, 1, 0)
    clock.advance(WEEK.total_seconds())
    assert (await purge(store, clock)).shards_deleted == 1


@pytest.mark.parametrize("status", ["scheduled", "running", "retrying"])
async def test_shard_with_an_unfinished_job_is_never_deleted(status: str) -> None:
    store, clock = InMemoryStore(), Clock()
    recorder = Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    done = (await scheduler.schedule(JobRequest("echo", {}))).job
    if status == "retrying":
        live = (await scheduler.schedule(JobRequest("flaky", {"fail_times": 1}))).job
        await drain(executor, 1)  # echo succeeds, flaky fails once and waits for its retry
    else:
        await drain(executor, 1)
        live = (await scheduler.schedule(JobRequest("echo", {}))).job  # same shard
        if status == "running":  # an executor started it and vanished
            await store.append(shard_of(live.id), records.encode_block(
                [records.start(live.id, 1, 1, clock.now)]), create_metadata={})
    assert shard_of(live.id) == shard_of(done.id)
    assert (await fresh_scheduler(store, clock).get(live.id)).status.value == status
    clock.advance(1000 * 86400)
    report = await purge(store, clock)
    assert (report.shards_kept_unfinished, report.shards_deleted) == (1, 0)
    assert await shards(store) == [shard_of(live.id)]
    assert (await fresh_scheduler(store, clock).get(done.id)).status is JobStatus.SUCCEEDED


async def test_live_summary_skips_the_read_but_never_decides_a_delete() -> None:
    store, clock = InMemoryStore(), Clock()
    scheduler, executor = make(store, Recorder(), clock, slots=1)
    live = (await scheduler.schedule(JobRequest("echo", {}, delay=1800))).job  # same bucket
    await executor.plan(0)  # writes the summary: pending=1 at the current size
    clock.advance(1000 * 86400)
    report = await purge(store, clock)
    assert (report.shards_kept_unfinished, report.shards_read) == (1, 0)
    # a stale summary (the blob grew since) is not trusted either way: the log is read
    await store.append(shard_of(live.id), records.encode_block(
        [records.cancel(live.id, clock.now)]), create_metadata={})
    meta = (await store.list(shard_of(live.id)))[0].metadata
    assert meta["pending"] == "1"
    report = await purge(store, clock)
    assert (report.shards_read, report.shards_kept_recent) == (1, 1)  # cancelled just now
    clock.advance(WEEK.total_seconds() + 1)
    assert (await purge(store, clock)).shards_deleted == 1


async def test_recurring_job_keeps_its_blob_until_cancelled() -> None:
    store, clock = InMemoryStore(), Clock()
    scheduler, executor = make(store, Recorder(), clock, slots=1)
    job = (await scheduler.schedule(JobRequest(
        "echo", {}, recurrence={"interval_seconds": 86400}))).job
    for _ in range(3):  # first due after one interval: two occurrences run, each returns
        await drain(executor, 1)  # to scheduled in the job's first blob
        clock.advance(86400)
    after = await scheduler.get(job.id)
    assert (after.status, after.runs) == (JobStatus.SCHEDULED, 2)
    clock.advance(100 * 86400)
    report = await purge(store, clock)
    assert (report.shards_kept_unfinished, report.shards_deleted) == (1, 0)
    await scheduler.cancel(job.id)
    clock.advance(WEEK.total_seconds() - 60)
    assert (await purge(store, clock)).shards_kept_recent == 1
    clock.advance(120)
    assert (await purge(store, clock)).shards_deleted == 1


class HookedStore(InMemoryStore):
    """Runs ``after_read`` once, right after the first read of a blob (the race window)."""

    def __init__(self) -> None:
        super().__init__()
        self.after_read: Callable[[str], Awaitable[None]] | None = None

    async def read(self, name: str, offset: int = 0) -> ReadResult:
        result = await super().read(name, offset)
        hook, self.after_read = self.after_read, None
        if hook is not None:
            await hook(name)
        return result


async def test_append_between_read_and_delete_keeps_the_blob() -> None:
    store, clock = HookedStore(), Clock()
    ids = await finished_shard(store, clock)
    clock.advance(30 * 86400)
    late = (await fresh_scheduler(store, clock).schedule(JobRequest("echo", {}))).job

    async def append_control_record(name: str) -> None:
        # e.g. a touch, a late add from a skewed clock, a stray cancel: any append
        touch = records.touch(shard_of(late.id), clock.now)
        await store.append(name, records.encode_block([touch]), create_metadata={})

    store.after_read = append_control_record
    report = await purge(store, clock)
    assert (report.shards_kept_changed, report.shards_deleted) == (1, 0)
    assert shard_of(ids[0]) in await shards(store)
    assert (await fresh_scheduler(store, clock).get(ids[0])).status is JobStatus.SUCCEEDED
    assert (await purge(store, clock)).shards_deleted == 1  # the next run decides anew


async def test_metadata_write_between_read_and_delete_does_not_block_the_delete() -> None:
    store, clock = HookedStore(), Clock()
    ids = await finished_shard(store, clock)
    clock.advance(30 * 86400)

    async def write_summary(name: str) -> None:
        await store.set_metadata(name, {"done_size": "x"})  # new ETag, same bytes

    store.after_read = write_summary
    report = await purge(store, clock)
    assert (report.shards_deleted, report.jobs_deleted) == (1, 3)
    assert shard_of(ids[0]) not in await shards(store)


async def test_blob_deleted_by_a_concurrent_purge_counts_as_vanished() -> None:
    store, clock = HookedStore(), Clock()
    await finished_shard(store, clock)
    clock.advance(30 * 86400)

    async def other_purge(name: str) -> None:
        assert await store.delete(name)

    store.after_read = other_purge
    report = await purge(store, clock)
    assert (report.shards_vanished, report.shards_deleted) == (1, 0)


async def test_record_of_a_newer_format_is_reported_and_the_blob_kept() -> None:
    store, clock = InMemoryStore(), Clock()
    ids = await finished_shard(store, clock)
    future = {"v": records.FORMAT_VERSION + 1, "op": "add", "id": "x"}
    await store.append(shard_of(ids[0]), records.encode_block([future]), create_metadata={})
    clock.advance(30 * 86400)
    report = await purge(store, clock)
    assert (report.error_count, report.shards_deleted) == (1, 0)
    assert "upgrade" in report.errors[0]
    assert await shards(store) == [shard_of(ids[0])]


async def test_blobs_that_are_not_shards_are_ignored() -> None:
    store, clock = InMemoryStore(), Clock()
    await store.append("shards/readme.txt", b"not a shard", create_metadata={})
    clock.advance(30 * 86400)
    report = await purge(store, clock)
    assert report.shards_scanned == 0
    assert await shards(store) == ["shards/readme.txt"]


async def test_retention_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        await purge(InMemoryStore(), Clock(), retention=timedelta(0))


class StaleListing(InMemoryStore):
    """A store whose listing still names blobs deleted since (a purge racing a reader)."""

    def __init__(self) -> None:
        super().__init__()
        self.ghosts: list[BlobInfo] = []

    async def list(self, prefix: str) -> list[BlobInfo]:
        live = await super().list(prefix)
        return sorted(live + [g for g in self.ghosts if g.name.startswith(prefix)],
                      key=lambda info: info.name)


async def test_readers_skip_a_blob_purged_after_their_listing() -> None:
    store = StaleListing()
    clock, recorder = Clock(), Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    gone = (await scheduler.schedule(JobRequest("echo", idempotency_key="k1"))).job
    await drain(executor, 1)
    blob = parse_job_id(gone.id).name
    [info] = [i for i in await store.list("shards/") if i.name == blob]
    await store.delete(blob)
    store.ghosts.append(info)
    fresh_scheduler, fresh_executor = make(store, recorder, clock, slots=1)
    assert (await fresh_scheduler.list()).jobs == []  # no 503: the ghost is skipped
    plan = await fresh_executor.plan(0)
    assert plan.errors == [] and plan.due == 0
    again = await fresh_scheduler.schedule(JobRequest("echo", idempotency_key="k1"))
    # the key index still holds the key (for JOBS_RETENTION_DAYS): a claim this recent whose
    # job is missing lost its add, so the request adds it again under the key's job id
    assert again.job.id == gone.id and not again.created
