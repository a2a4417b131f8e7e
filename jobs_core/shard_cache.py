"""Cached shard states kept current by incremental tail reads.

A shard blob is downloaded once; afterwards only the bytes past the remembered offset are read
(one small ranged GET, whatever the blob's size). Appends this process made itself are applied
without reading when nothing else was appended in between.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from . import records
from .errors import BlobNotFoundError, JobsError
from .model import Job
from .shard_state import ShardState
from .store import AppendResult, JobStore


@dataclass(frozen=True)
class Made:
    """What a record with a request id did (``ShardCache.as_made``): whether it applied, and
    the job as it left it (None when that cannot be read back now)."""

    applied: bool
    job: Job | None = None


@dataclass
class _View:
    state: ShardState
    offset: int = 0  # bytes replayed so far (always at a line boundary)
    blocks: int = 0  # highest committed block count an append of ours reported (0: unknown)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ShardCache:
    def __init__(self, store: JobStore, *, keep_finished: bool = True,
                 max_blobs: int = 256) -> None:
        self._store = store
        self._keep_finished = keep_finished
        self._max_blobs = max_blobs
        self._views: OrderedDict[str, _View] = OrderedDict()


    def __len__(self) -> int:
        """Blobs whose state this cache holds."""
        return len(self._views)

    def _view(self, name: str) -> _View:
        view = self._views.get(name)
        if view is None:
            view = _View(ShardState(name, keep_finished=self._keep_finished))
            self._views[name] = view
            while len(self._views) > self._max_blobs:
                self._views.popitem(last=False)
        else:
            self._views.move_to_end(name)
        return view

    def known_size(self, name: str) -> int | None:
        view = self._views.get(name)
        return None if view is None else view.offset

    def blocks(self, name: str) -> int:
        """The blob's block count as last reported to this process (0 if unknown)."""
        view = self._views.get(name)
        return 0 if view is None else view.blocks

    def note_blocks(self, name: str, blocks: int) -> None:
        view = self._views.get(name)
        if view is not None:
            view.blocks = max(view.blocks, blocks)

    def cached(self, name: str) -> ShardState | None:
        view = self._views.get(name)
        return None if view is None else view.state

    async def refresh(self, name: str, *, if_size_differs: int | None = None,
                      at_least: int | None = None) -> ShardState:
        """Bring the cached state of ``name`` up to date (one ranged read of the new bytes).
        With ``if_size_differs`` (a size from a listing) no read is made when nothing is new;
        with ``at_least`` (the end of a block just appended) none is made when the state
        already reaches it: of many writers whose blocks landed while one read was in flight,
        that read serves them all (one read each would serialise them behind this view's lock
        and starve group commit). Raises ``BlobNotFoundError`` for a blob that does not
        exist."""
        view = self._view(name)
        async with view.lock:
            if if_size_differs is not None and if_size_differs == view.offset and view.offset:
                return view.state
            if at_least is not None and view.offset >= at_least:
                return view.state
            result = await self._store.read(name, view.offset)
            if result.block_count is not None:  # (a GET of an append blob says it: no HEAD)
                view.blocks = max(view.blocks, result.block_count)
            data = result.data
            end = data.rfind(b"\n") + 1  # replay whole lines only; a torn tail waits
            if end:
                view.state.feed_lines(data[:end].split(b"\n"))
                view.offset += end
            return view.state

    async def refresh_listed(self, name: str, size: int) -> ShardState | None:
        """``refresh`` of a blob a listing showed at ``size``; None when it has been deleted
        since (retention purged it): the cache forgets it."""
        try:
            return await self.refresh(name, if_size_differs=size)
        except BlobNotFoundError:
            self.forget(name)
            return None

    def apply_own(self, name: str, result: AppendResult, batch: list[records.Record]) -> bool:
        """Apply records this process just appended, if the cache had seen everything before
        them. Returns False when someone else appended in between (the caller must refresh)."""
        view = self._views.get(name)
        if view is not None:
            view.blocks = max(view.blocks, result.block_count)
        if view is None or view.offset != result.offset or view.lock.locked():
            return False
        for record in batch:
            view.state.apply(record)
        view.offset = result.size
        return True

    def watch(self, name: str, rid: str) -> None:
        """Keep the job as the record with request id ``rid`` leaves it, for ``as_made``
        (call before writing the record; ``unwatch`` after). Only a blob this cache holds:
        an empty view would make the write read the whole blob; ``as_made`` does without."""
        view = self._views.get(name)
        if view is not None:
            view.state.watched[rid] = None

    def unwatch(self, name: str, rid: str) -> None:
        view = self._views.get(name)
        if view is not None:
            view.state.watched.pop(rid, None)

    async def as_made(self, name: str, state: ShardState, rid: str, job_id: str) -> Made:
        """Whether the record with request id ``rid`` applied in ``state`` (the cached state
        of ``name``), and the job as that record left it. A control answers, and announces,
        the state its own change made, not a later one: a start (or another change)
        committed right after it may already be in ``state`` (soak seed 31191: an update was
        announced as `scheduled` with the attempt of the start that followed it, an event the
        log does not hold). So a caller ``watch``es its request id before writing: the replay
        keeps that job state. Without it (this process's view of the blob was dropped
        meanwhile) the version the record made is compared with the job's, and, if a later
        record changed the job, the blob is replayed afresh up to that record (one read of it
        whole). Never raises: if that read fails, the state is unknown (``Made.job`` None),
        and the log publisher announces the change."""
        watched = state.watched.get(rid)
        if watched is not None:
            return Made(applied=True, job=watched)
        version = state.rids.get(rid)
        if not version:
            return Made(applied=False)
        job = state.jobs.get(job_id)  # (None: it finished or moved on since)
        if job is not None and job.version == version:
            return Made(applied=True, job=job)
        made: list[Job] = []

        def observe(record: records.Record, before: Job | None, after: Job | None) -> None:
            if after is not None and not made and getattr(record, "rid", None) == rid:
                made.append(after)

        fresh = ShardState(name, keep_finished=self._keep_finished)
        fresh.observer = observe
        try:
            data = (await self._store.read(name)).data
            fresh.feed_lines(data[:data.rfind(b"\n") + 1].split(b"\n"))
        except JobsError:
            return Made(applied=True)
        return Made(applied=True, job=made[0] if made else None)

    def forget(self, name: str) -> None:
        self._views.pop(name, None)

    def names(self) -> list[str]:
        return list(self._views)
