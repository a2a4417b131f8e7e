"""Jobs due and jobs finished per minute over the last minutes (``GET /api/timeline``).

A point per minute, oldest first, zeros included; the last point is the current minute, up to
now. ``due`` counts jobs whose ``due_at`` falls in the minute (whatever their status now, and
only up to now); ``finished`` counts jobs whose ``finished_at`` does (succeeded, failed,
cancelled, and a recurring job's latest occurrence).

Which blobs are read: a job lives in the blob of the bucket it was first due in (or of the
moment it was scheduled, if that was later). So the reader takes the blobs of every bucket the
window touches, plus the bucket before the window (a retry or a late start just after a bucket
edge), plus the blobs named by ``touch`` records in those (a job of a later bucket that was run
now or rescheduled earlier). Everything else is not read, which is what keeps this cheap.

Cost in storage requests: one List Blobs of ``shards/`` per 5,000 blobs, then for each blob
read (about ``slots * (minutes / JOBS_BUCKET_MINUTES + 2)``): the whole blob the first time
(one GET per 4 MiB), afterwards none when its listed size did not change and one ranged GET of
the new bytes when it did. The replayed blobs stay cached (finished jobs included) in this
object, up to ``cache_blobs`` of them; a window that needs more re-reads them every call.

Caveats (the figures come from each job's current state, not from its history):
- a job whose blob's bucket starts more than one bucket before the window is not counted:
  a job due long before the window but finishing inside it (a long backlog, a long retry
  chain), or rescheduled from an old bucket into the window;
- a recurring job keeps its first blob: once that is older than the window's reach, its
  occurrences are not counted; and only its latest occurrence is ever visible;
- a job of a later bucket that is cancelled (or rescheduled later) is not counted: nothing
  points to its blob from the window's buckets (a run-now or an earlier reschedule does);
- a retried job counts once, at the due time of its latest attempt (earlier attempts' due
  times are overwritten); a job run now counts at the time it was made due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from .clock import Clock, utcnow
from .errors import JobValidationError, UnsupportedRecordVersionError
from .ids import SHARD_PREFIX, bucket_of, parse_shard_name
from .model import Job
from .settings import JobsSettings
from .shard_cache import ShardCache
from .shard_overview import gather_bounded
from .shard_state import ShardState
from .store import BlobInfo, JobStore

MAX_MINUTES = 1440
POINT_SECONDS = 60
CONCURRENT_READS = 8


@dataclass(frozen=True)
class TimelinePoint:
    at: datetime  # start of the minute
    due: int
    finished: int


@dataclass(frozen=True)
class Timeline:
    start: datetime  # the first point's minute
    end: datetime  # now
    points: list[TimelinePoint]
    jobs_scanned: int
    shards_read: int
    errors: list[str]
    bucket_seconds: int = POINT_SECONDS


class TimelineReader:
    """Keep one per process: it caches the replayed blobs between calls."""

    def __init__(self, store: JobStore, settings: JobsSettings | None = None, *,
                 clock: Clock = utcnow, cache_blobs: int = 512) -> None:
        self._store = store
        self._settings = settings or JobsSettings()
        self._clock = clock
        self.cache = ShardCache(store, keep_finished=True, max_blobs=cache_blobs)

    async def timeline(self, minutes: int = 60) -> Timeline:
        if not 1 <= minutes <= MAX_MINUTES:
            raise JobValidationError(f"minutes must be an integer 1..{MAX_MINUTES}",
                                     field="minutes")
        now = self._clock()
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
        span = timedelta(minutes=self._settings.bucket_minutes)
        first, last = bucket_of(start, self._settings.bucket_minutes) - span, now
        listed = {info.name: info for info in await self._store.list(SHARD_PREFIX)}
        chosen = [info for name, info in listed.items()
                  if (shard := parse_shard_name(name)) is not None
                  and first <= shard.key.bucket <= last]
        errors: list[str] = []
        states = await self._read(chosen, errors)
        taken = {info.name for info in chosen}
        touched = {name for state in states for name in state.touched}
        extra = [listed[name] for name in sorted(touched - taken) if name in listed]
        states += await self._read(extra, errors)
        due = [0] * minutes
        finished = [0] * minutes
        jobs = _each_job_once(states)
        for job in jobs:
            if start <= job.due_at <= now:
                due[_minute(job.due_at, start)] += 1
            if job.finished_at is not None and start <= job.finished_at <= now:
                finished[_minute(job.finished_at, start)] += 1
        points = [TimelinePoint(start + timedelta(minutes=i), due[i], finished[i])
                  for i in range(minutes)]
        return Timeline(start, now, points, len(jobs), len(states), errors)

    async def _read(self, blobs: list[BlobInfo], errors: list[str]) -> list[ShardState]:
        found = await gather_bounded([partial(self._refresh, info, errors) for info in blobs],
                                     CONCURRENT_READS)
        return [state for state in found if state is not None]

    async def _refresh(self, info: BlobInfo, errors: list[str]) -> ShardState | None:
        try:
            return await self.cache.refresh_listed(info.name, info.size)
        except UnsupportedRecordVersionError as exc:
            self.cache.forget(info.name)
            errors.append(str(exc))
        return None


def _each_job_once(states: list[ShardState]) -> list[Job]:
    """The jobs of the blobs read, each once. While a move is half done (its ``add`` in the
    destination, not yet its ``moved`` in the source: an evacuation moves every waiting job of
    a blob at once, and a failed last step waits for the planner's next cycle) both blobs hold
    the job; the copy that is not *moving* is the job (the moving one is stale: the job may
    have run from the destination since)."""
    jobs: dict[str, Job] = {}
    for state in states:
        for job in state.jobs.values():
            held = jobs.get(job.id)
            if held is None or (held.moving_to is not None and job.moving_to is None):
                jobs[job.id] = job
    return list(jobs.values())


def _minute(moment: datetime, start: datetime) -> int:
    return int((moment - start) // timedelta(seconds=POINT_SECONDS))
