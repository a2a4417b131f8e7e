"""The path of a job that moved (from the reviews of stop 27): its home keeps pointing at it,
also past JOBS_EVACUATE_BLOCKS; a path too long to follow is an error, never "not found"; and
a blob the job moved out of may be deleted only when GET finds the job without it."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from jobs_core import JobRequest, JobScheduler, JobStatus
from jobs_core.errors import (
    BlockLimitError,
    JobConflictError,
    JobUnreachableError,
    TransientStoreError,
)
from jobs_core.ids import parse_job_id
from jobs_core.job_history import read_job_history
from jobs_core.moves import MAX_HOPS
from jobs_core.retention import purge_shards
from jobs_core.store import JobStore
from tests.jobs_helpers import Clock, FailingAppend, Recorder, drain, make


class FullBlob:
    """A store in which the blob named ``full`` takes no more blocks (409
    BlockCountExceedsLimit), nor does ``no_moved`` take a block with a ``moved`` record."""

    def __init__(self, store: JobStore) -> None:
        self._store, self.full, self.no_moved = store, "", ""

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(self, name: str, data: bytes, **kwargs: object) -> object:
        if name == self.full or (name == self.no_moved and b'"op":"moved"' in data):
            raise BlockLimitError(f"{name}: 409 BlockCountExceedsLimit")
        return await self._store.append(name, data, **kwargs)  # type: ignore[attr-defined]


async def move_on(scheduler: JobScheduler, job_id: str) -> str:
    """Move the job out of the blob it lives in (as an evacuation does); returns where to."""
    job, blob = await scheduler._locate(job_id)
    assert job is not None
    with contextlib.suppress(BlockLimitError):  # (its source refused the last step: the
        await scheduler.mover.move(blob, [job])  # move is half done)
    return (await scheduler._locate(job_id))[1]


async def test_a_blob_on_the_path_of_a_job_moved_to_an_earlier_bucket_is_kept(
        store: JobStore) -> None:
    """The bypass check took a blob for bypassed when the home's pointer named a later blob,
    as if a job only moved to later buckets. A job run now moves from a future blob to the
    current one: with its home too full for the pointers after that, the purge deleted a blob
    GET needed on the way, and a live job answered 404."""
    clock, rec = Clock(), Recorder()
    wrapped = FullBlob(store)
    scheduler, executor = make(wrapped, rec, clock, slots=1, commit_linger_ms=0)
    t0 = clock.now
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=5 * 3600))).job
    home = parse_job_id(job.id).name

    await move_on(scheduler, job.id)  # out of its home, to the next blob of its bucket
    later = await move_on(scheduler, job.id)  # once more: the home points at it
    wrapped.full = home  # from now on the home takes no pointer: GET follows `moved` records
    await scheduler.run_now(job.id)
    earlier = await move_on(scheduler, job.id)  # run now: to the current bucket, before `later`
    assert earlier < later
    await scheduler.reschedule(job.id, delay=30 * 3600)
    await move_on(scheduler, job.id)  # and on, to the bucket of its new due time
    clock.now = t0 + timedelta(hours=7)  # `earlier` ended 6 hours ago, its touch is spent
    report = await purge_shards(store, executor.settings, clock.now, timedelta(hours=1))
    assert report.shards_kept_unfinished >= 1
    assert (await scheduler.get(job.id)).status is JobStatus.SCHEDULED
    assert [b.name for b in await store.list(earlier)] == [earlier]


async def test_the_destination_of_a_half_done_move_is_kept_after_the_job_left_it(
        store: JobStore) -> None:
    """From review of the fix above: a move whose last step (``moved``, in its source) never
    landed leaves a *moving* copy in the source; GET reads the destination after it. The check
    hid the destination, found the moving copy, and took it for the job: the purge deleted
    the destination, GET answered the stale copy, and the next move-finish re-created the
    destination with it (the job, rescheduled to tomorrow, would run at its old time too)."""
    clock, rec = Clock(), Recorder()
    wrapped = FullBlob(store)
    scheduler, executor = make(wrapped, rec, clock, slots=1, commit_linger_ms=0)
    t0 = clock.now
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=5 * 3600))).job
    source = await move_on(scheduler, job.id)
    wrapped.full = parse_job_id(job.id).name  # from now on the home takes no pointer
    await scheduler.run_now(job.id)
    wrapped.no_moved = source  # its next move stays half done
    dest = await move_on(scheduler, job.id)
    assert dest < source and (await scheduler.get(job.id)).moving_to is None
    await scheduler.reschedule(job.id, delay=30 * 3600)
    await move_on(scheduler, job.id)  # and on, from the destination
    before = await scheduler.get(job.id)
    clock.now = t0 + timedelta(hours=7)
    await purge_shards(store, executor.settings, clock.now, timedelta(hours=1))
    assert [b.name for b in await store.list(dest)] == [dest]
    assert (await scheduler.get(job.id)).due_at == before.due_at
    await executor.run_cycle(0)
    assert rec.runs.get(job.id, 0) == 0


async def test_a_recurring_job_whose_home_passed_the_evacuation_threshold_stays_reachable(
        store: JobStore) -> None:
    """From the hunt of stop 27: a recurring job scheduled far ahead and run now lives in its
    future home until the home passes JOBS_EVACUATE_BLOCKS and evacuates it. Every later move
    skipped the home's pointer (to keep its headroom), so GET followed one ``moved`` record
    per move, and gave up after MAX_HOPS (32): after about a month of daily carries GET,
    cancel and pause answered 404 while the job ran on, and a purge deleted its path."""
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1, bucket_minutes=15,
                               carry_after_hours=1 / 60, seal_blocks=5, evacuate_blocks=10,
                               commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest(
        "echo", "tick", delay=300 * 86400, recurrence={"interval_seconds": 900}))).job
    home = parse_job_id(job.id).name
    await scheduler.run_now(job.id)
    for _ in range(40 * 8):  # ~27 hours of 5-minute steps: over 100 carries
        await drain(executor, 1)
        clock.advance(300)
    assert rec.runs[job.id] > 60
    state = await scheduler.cache.refresh(home)
    assert job.id in state.moved and job.id in state.pointers
    assert (await scheduler.get(job.id)).status is JobStatus.SCHEDULED
    assert (await scheduler.cancel(job.id)).status is JobStatus.CANCELLED


async def test_a_path_too_long_to_follow_is_an_error_and_retention_keeps_it(
        store: JobStore) -> None:
    """A home at the hard block limit takes no pointer: past MAX_HOPS moves GET answers an
    error (the API: 503), not 404, and the purge keeps every blob it could not decide on."""
    clock, rec = Clock(), Recorder()
    wrapped = FullBlob(store)
    scheduler, executor = make(wrapped, rec, clock, slots=1, commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=3600))).job
    await move_on(scheduler, job.id)
    wrapped.full = parse_job_id(job.id).name
    for _ in range(MAX_HOPS - 2):  # the job is in the last blob a reader follows
        await move_on(scheduler, job.id)
    last, where = await scheduler._locate(job.id)
    assert last is not None and await scheduler.mover.move(where, [last]) == 1  # one more
    with pytest.raises(JobUnreachableError):
        await scheduler.get(job.id)
    with pytest.raises(JobUnreachableError):  # its history too (it answered an old state)
        await read_job_history(store, job.id)
    blobs = len(await store.list("shards/"))
    clock.advance(30 * 86400)
    report = await purge_shards(store, executor.settings, clock.now, timedelta(hours=1))
    assert report.error_count >= 1 and len(await store.list("shards/")) == blobs


class BeforeDelete:
    """A store that runs ``before`` once, just before the delete of blob ``name`` (a request
    landing between a purge's judgement of that blob and its conditional delete)."""

    def __init__(self, store: JobStore) -> None:
        self._store, self.name = store, ""
        self.before: Callable[[], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def delete(self, name: str, **kwargs: object) -> object:
        if name == self.name and self.before is not None:
            before, self.before = self.before, None
            await before()
        return await self._store.delete(name, **kwargs)  # type: ignore[attr-defined]


async def test_a_job_retried_while_a_purge_deletes_its_home_stays_reachable(
        store: JobStore) -> None:
    """From the hunt of stop 27: the purge judged a home by reading the blob its moved-out job
    lives in (final, old), then deleted the home on the home's ETag only. A retry between the
    two lands where the job lives, not in the home: the retry answered 200 and the job ran,
    but GET (and every control) answered 404 for it. The retry now points the home at it."""
    clock, rec = Clock(), Recorder()
    wrapped = BeforeDelete(store)
    scheduler, executor = make(wrapped, rec, clock, slots=1, commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=600))).job
    home = parse_job_id(job.id).name
    await scheduler.reschedule(job.id, delay=5 * 3600)
    await move_on(scheduler, job.id)  # to its due time's bucket (as a carry does)
    await scheduler.cancel(job.id)
    clock.advance(3 * 3600)
    retried = []

    async def retry() -> None:
        retried.append(await scheduler.retry(job.id))

    wrapped.name, wrapped.before = home, retry
    await purge_shards(wrapped, executor.settings, clock.now,  # type: ignore[arg-type]
                       timedelta(hours=1))
    assert retried and retried[0].status is JobStatus.SCHEDULED  # answered 200
    await drain(executor, 1)
    assert rec.runs[job.id] == 1
    assert (await scheduler.get(job.id)).status is JobStatus.SUCCEEDED


async def test_a_retry_whose_home_pointer_fails_changes_nothing(store: JobStore) -> None:
    """From review of the fix above: the pointer came after the retry record, so a purge that
    deleted the home between the two, with the pointer's append failing (or the process
    crashing), left the job running where nothing finds it. The pointer now comes first."""
    clock, rec = Clock(), Recorder()
    wrapped = BeforeDelete(store)
    scheduler, executor = make(FailingAppend(wrapped, "shards/", b'"op":"ptr"'), rec, clock,
                               slots=1, commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=600))).job
    home = parse_job_id(job.id).name
    await scheduler.reschedule(job.id, delay=5 * 3600)
    await move_on(scheduler, job.id)
    await scheduler.cancel(job.id)
    clock.advance(3 * 3600)
    errors: list[Exception] = []

    async def retry() -> None:
        try:
            await scheduler.retry(job.id)
        except TransientStoreError as exc:  # (the API: 503, retry later)
            errors.append(exc)

    wrapped.name, wrapped.before = home, retry
    await purge_shards(wrapped, executor.settings, clock.now,  # type: ignore[arg-type]
                       timedelta(hours=1))
    assert errors
    await drain(executor, 1)
    assert rec.runs.get(job.id) is None  # the job stayed cancelled (and then purged)


async def test_a_retry_whose_home_is_at_the_hard_limit_is_refused(store: JobStore) -> None:
    """From review of the fix above: a home at the hard block limit refused the pointer, the
    retry went on without it, and the purge deleted the home: the retry answered 200 and the
    job ran where GET could not find it. Such a retry is now a 409 and changes nothing."""
    clock, rec = Clock(), Recorder()
    wrapped = FullBlob(store)
    scheduler, executor = make(wrapped, rec, clock, slots=1, commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=600))).job
    await scheduler.reschedule(job.id, delay=5 * 3600)
    await move_on(scheduler, job.id)
    await scheduler.cancel(job.id)
    wrapped.full = parse_job_id(job.id).name
    with pytest.raises(JobConflictError, match="block limit"):
        await scheduler.retry(job.id)
    await drain(executor, 1)
    assert rec.runs.get(job.id) is None
    assert (await scheduler.get(job.id)).status is JobStatus.CANCELLED
