"""Moving waiting jobs to another blob, and finding a job that moved.

Why jobs move: a recurring job (or a long retry chain) adds records to its blob at every
occurrence. Pinned to the blob it was created in, it would fill that blob's 50,000 blocks (in
about 17 days at one run a minute) and keep it from ever being purged. So a waiting job moves:
- out of a blob whose bucket ended more than ``JOBS_CARRY_AFTER_HOURS`` ago, once it is not due
  yet (the planner does this): a job lives at most about that long in one blob;
- out of a blob that has ``JOBS_EVACUATE_BLOCKS`` blocks, due or not (the executor does this
  instead of starting it there): the rest of the blob is headroom for the outcomes of jobs
  already running in it.
It moves to the blob of its due time's bucket (or the current one), in the same slot.

The move, in four appends (each group-committed, each idempotent):
1. source: ``move {id, to}``: the job is *moving*; nobody starts or changes it there;
2. destination: ``add`` carrying its whole state (``from``: source);
3. home (the blob its id names), when that is not the source: ``ptr {id, to}`` (also into a
   home past ``JOBS_EVACUATE_BLOCKS``; only a home at the hard block limit takes none);
4. source: ``moved {id, to}``: the job is gone from the source.
A crash between steps leaves the job *moving* in the source, where the planner (which reads
every blob with unfinished jobs) finishes steps 2-4 (``finish``). Replaying a step is harmless:
the first ``add`` of an id in a blob wins, ``ptr`` records only say where, ``moved`` applies once.

Finding a job (``locate``): read the home blob; if the job left it, follow its pointer (the
newest ``ptr``), then ``moved``/``move`` records. Normally one read (never moved) or two (home,
then where it lives); three while a move is half done. GET by id stays O(1) requests. A home
that took no pointer leaves the ``moved`` records, one blob per move: past ``MAX_HOPS`` blobs a
reader raises ``JobUnreachableError`` (the API: 503), never "not found", and retention keeps
the blobs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from . import records
from .errors import BlobNotFoundError, BlockLimitError, JobsError, JobUnreachableError
from .group_commit import GroupCommitter
from .ids import ShardBlob, ShardKey, bucket_of, parse_job_id, parse_shard_name
from .model import Job, JobStatus
from .settings import JobsSettings
from .shard_cache import ShardCache
from .shard_state import ShardState
from .store import JobStore

log = logging.getLogger(__name__)
MAX_HOPS = 32  # blobs followed by locate (a job needs at most 3, unless its home blob was too
# full for a pointer: then it follows the chain of ``moved`` records, one blob per move)
ReadState = Callable[[str], Awaitable[ShardState]]


def shard_metadata(shard: ShardBlob) -> dict[str, str]:
    return {"format": str(records.FORMAT_VERSION), "slot": str(shard.key.slot),
            "bucket": records.ts(shard.key.bucket), "index": str(shard.index),
            "events_at": "0"}  # event_log.py: every event of a new blob is still to send


@dataclass(frozen=True)
class Found:
    """What ``find`` learned of a job: the job as the blob it lives in says, and that blob
    (``None`` and the home when no blob could tell); ``added``: a blob holds the job or a
    record of it leaving, so its add landed. ``added`` without a job: the blob it moved to is
    gone (retention purged it)."""

    job: Job | None
    blob: str
    added: bool


async def find(read: ReadState, job_id: str) -> Found:
    """Follow a job from its home (see the module's docstring). ``read`` returns a blob's
    current state (``BlobNotFoundError`` if absent). Raises ``InvalidJobIdError`` for a
    malformed id, and ``JobUnreachableError`` past ``MAX_HOPS`` blobs (never "not found":
    the job may live on, and retention must not take it for gone)."""
    blob = home = parse_job_id(job_id).name
    seen: set[str] = set()
    added = False
    for _ in range(MAX_HOPS):
        try:
            state = await read(blob)
        except BlobNotFoundError:
            return Found(None, home, added)
        seen.add(blob)
        job = state.jobs.get(job_id)
        target = state.location(job_id)
        added = added or state.knows(job_id)
        if job is not None and job.moving_to is None:
            return Found(job, blob, True)
        if target is None or target in seen:
            return Found(job, blob, added)
        if job is not None:  # moving: the destination has it once step 2 is done
            try:
                there = await read(target)
            except BlobNotFoundError:
                return Found(job, blob, True)
            if job_id not in there.jobs and job_id not in there.moved:
                return Found(job, blob, True)
        blob = target
    log.error("job %s: gave up following its moves after %d blobs", job_id, MAX_HOPS)
    raise JobUnreachableError(job_id, MAX_HOPS)


async def locate(read: ReadState, job_id: str) -> tuple[Job | None, str]:
    """The job as the blob it lives in says, and that blob's name; ``(None, home)`` when no
    blob knows it (``find`` also tells whether it existed)."""
    found = await find(read, job_id)
    return found.job, found.blob


class Mover:
    def __init__(self, store: JobStore, committer: GroupCommitter, cache: ShardCache,
                 settings: JobsSettings, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._committer = committer
        self._cache = cache
        self._settings = settings
        self._clock = clock
        self.moved = 0

    async def move(self, source: str, jobs: list[Job]) -> int:
        """Move waiting ``jobs`` out of ``source``; returns how many moved."""
        shard = parse_shard_name(source)
        if shard is None or not jobs:
            return 0
        now = self._clock()
        dests: dict[str, str] = {}
        for job in jobs:
            key = ShardKey(bucket_of(max(job.due_at, now), self._settings.bucket_minutes),
                           shard.key.slot)
            dests[job.id] = await self._destination(key, source)
        batch = [records.move(job.id, dests[job.id], now) for job in jobs]
        try:
            state = await self._write(source, batch)
        except BlockLimitError:
            log.error("cannot move jobs out of %s: the blob is at the block limit", source)
            return 0
        moving = [state.jobs[j.id] for j in jobs
                  if j.id in state.jobs and state.jobs[j.id].moving_to == dests[j.id]]
        return await self.finish(source, moving)

    async def evacuate(self, source: str, state: ShardState) -> int:
        """Move every waiting job out of ``source`` at once (a blob past its evacuation
        threshold): one round of four appends, whatever the number of jobs, so the blob's
        headroom is spent on outcomes, not on moves."""
        waiting = [j for j in state.jobs.values()
                   if (j.status.is_waiting or j.status is JobStatus.PAUSED)
                   and j.moving_to is None]
        return await self.move(source, waiting)

    async def finish(self, source: str, moving: list[Job]) -> int:
        """Steps 2-4 for jobs that are moving out of ``source`` (idempotent)."""
        if not moving:
            return 0
        now = self._clock()
        by_dest: dict[str, list[Job]] = {}
        for job in moving:
            assert job.moving_to is not None
            by_dest.setdefault(job.moving_to, []).append(job)
        for dest, group in by_dest.items():
            target = parse_shard_name(dest)
            meta = shard_metadata(target) if target is not None else {}
            await self._committer.append(
                dest, [records.carry(replace(j, moving_to=None), source, now) for j in group], meta)
        homes: dict[str, list[Job]] = {}
        for job in moving:
            home = parse_job_id(job.id).name
            if home != source:
                homes.setdefault(home, []).append(job)
        for home, group in homes.items():
            # also into a home past JOBS_EVACUATE_BLOCKS: one block per move round is little
            # of its headroom, and without the pointer GET follows the ``moved`` records, one
            # blob per move; a recurring job's daily carry made that path longer than
            # MAX_HOPS within a month (from review of stop 27)
            try:
                await self._committer.append(
                    home, [records.pointer(j.id, j.moving_to or "", now) for j in group], {})
            except (BlobNotFoundError, BlockLimitError):  # purged, or at the hard limit
                continue
        await self._write(source, [records.moved(j.id, j.moving_to or "", now) for j in moving])
        self.moved += len(moving)
        return len(moving)

    async def _destination(self, key: ShardKey, source: str) -> str:
        """The newest blob of ``key`` with room for new records (never ``source``)."""
        return key.blob(await self.open_index(key, avoid=source))

    async def open_index(self, key: ShardKey, avoid: str | None = None) -> int:
        """The index of the newest blob of ``key`` with room for new records: the newest one
        listed, or the next if that one is sealed (``JOBS_SEAL_BYTES`` from the listing,
        ``JOBS_SEAL_BLOCKS`` from this process's cache, else one HEAD); always past ``avoid``
        (a move's source), listed or not (a listing may not show a blob created just now)."""
        listed = {shard.index: info for info in await self._store.list(key.prefix)
                  if (shard := parse_shard_name(info.name)) is not None and shard.key == key}
        for info in listed.values():  # (an append that fails is looked for after these)
            self._committer.note_size(info.name, info.size)
        index = max(listed, default=0)
        avoided = parse_shard_name(avoid) if avoid is not None else None
        if avoided is not None and avoided.key == key and avoided.index >= index:
            self._committer.note_size(key.blob(avoided.index + 1), 0)
            return avoided.index + 1
        if index not in listed:
            self._committer.note_size(key.blob(index), 0)  # (not there yet: from its start)
            return index
        name = key.blob(index)
        if listed[index].size >= self._settings.seal_bytes:
            return index + 1
        blocks = self._cache.blocks(name)
        cached = self._cache.cached(name)
        if cached is not None and cached.full:
            blocks = self._settings.evacuate_blocks
        if not blocks:
            try:
                blocks = (await self._store.stat(name)).block_count or 0
            except BlobNotFoundError:  # purged since
                blocks = 0
            except JobsError:
                if avoid is not None:  # a move cannot change its destination once written:
                    raise  # never guess one (the next cycle tries again)
                blocks = 0  # for adds it is advisory: the append's block count tells a seal
        return index + 1 if blocks >= self._settings.seal_blocks else index

    async def _write(self, blob: str, batch: Sequence[records.Record]) -> ShardState:
        return await self._committer.write(blob, batch)


def carry_due(bucket: datetime, settings: JobsSettings, now: datetime) -> bool:
    """Whether waiting jobs of a blob of ``bucket`` should move on (the bucket is old)."""
    end = bucket + timedelta(minutes=settings.bucket_minutes)
    return end + timedelta(hours=settings.carry_after_hours) <= now


__all__ = ["Found", "Mover", "ReadState", "carry_due", "find", "locate", "shard_metadata"]
