"""Retention and the path of a job that moved: a blob the job moved out of may be deleted only
when GET finds the job without it (from review of stop 27)."""

from __future__ import annotations

from datetime import timedelta

from jobs_core import JobRequest, JobStatus
from jobs_core.errors import BlockLimitError
from jobs_core.ids import parse_job_id
from jobs_core.retention import purge_shards
from jobs_core.store import JobStore
from tests.jobs_helpers import Clock, Recorder, make


class FullBlob:
    """A store in which the blob named ``full`` takes no more blocks (409
    BlockCountExceedsLimit)."""

    def __init__(self, store: JobStore) -> None:
        self._store, self.full = store, ""

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(self, name: str, data: bytes, **kwargs: object) -> object:
        if name == self.full:
            raise BlockLimitError(f"{name}: 409 BlockCountExceedsLimit")
        return await self._store.append(name, data, **kwargs)  # type: ignore[attr-defined]


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

    async def move_on(job_id: str) -> str:
        job, blob = await scheduler._locate(job_id)
        assert job is not None and await scheduler.mover.move(blob, [job]) == 1
        return (await scheduler._locate(job_id))[1]

    await move_on(job.id)  # out of its home, to the next blob of its bucket
    later = await move_on(job.id)  # once more: the home points at it
    wrapped.full = home  # from now on the home takes no pointer: GET follows `moved` records
    await scheduler.run_now(job.id)
    earlier = await move_on(job.id)  # run now: to the current bucket, before `later`
    assert earlier < later
    await scheduler.reschedule(job.id, delay=30 * 3600)
    await move_on(job.id)  # and on, to the bucket of its new due time
    clock.now = t0 + timedelta(hours=7)  # `earlier` ended 6 hours ago, its touch is spent
    report = await purge_shards(store, executor.settings, clock.now, timedelta(hours=1))
    assert report.shards_kept_unfinished >= 1
    assert (await scheduler.get(job.id)).status is JobStatus.SCHEDULED
    assert [b.name for b in await store.list(earlier)] == [earlier]
