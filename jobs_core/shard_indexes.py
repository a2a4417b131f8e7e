"""Which blob of each shard this process's new records go to (rollover).

A shard's blobs are numbered: new records go to the newest one with room, and a process moves
on to the next when its own append finds the blob sealed (``JOBS_SEAL_BLOCKS`` or
``JOBS_SEAL_BYTES``) or full. ``ShardIndexes`` is that per-process knowledge: it only ever
moves forward, is learned from the store on a process's first add to a shard, and forgets past
buckets (new records never go to one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from .errors import ShardFullError
from .ids import MAX_INDEX, ShardBlob, ShardKey, bucket_of
from .moves import Mover


class ShardIndexes:
    def __init__(self, mover: Mover, clock: Callable[[], datetime], bucket_minutes: int) -> None:
        self._mover = mover
        self._clock = clock
        self._bucket_minutes = bucket_minutes
        self._index: dict[ShardKey, int] = {}  # blob index new records of a shard go to
        self._learning: dict[ShardKey, asyncio.Future[int]] = {}  # shards being listed
        self._pruned_to = datetime.min.replace(tzinfo=UTC)  # no bucket before this is held

    def known(self) -> set[ShardKey]:
        """The shards whose current blob this process knows."""
        return set(self._index)

    def advance(self, key: ShardKey, index: int) -> None:
        """Blob ``index`` of ``key`` is sealed or full: new records go past it."""
        if index >= MAX_INDEX:
            raise ShardFullError(f"shard {key.prefix} has no blob index left")
        self._index[key] = max(self._index.get(key, 0), index + 1)

    async def current(self, key: ShardKey) -> ShardBlob:
        """The blob of ``key`` that this process's new records go to. A process that has not
        written to ``key`` yet starts at its newest blob with room (``Mover.open_index``: a
        listing, and a HEAD of the newest blob if there is one), not at index 0: else every
        cold process (a restart, a new instance) would add to a sealed blob, and those adds,
        with the moves that take them out again, would use up the blob's headroom (soak seed
        27819: two jobs added at blocks 199 and 200 of 200 could then neither start nor
        move). A process learns of a seal from its own append's block count, so an add lands
        in a sealed blob in at most one block per process and seal."""
        index = self._index.get(key)
        if index is None:
            listing = self._learning.get(key)
            if listing is None:  # concurrent first adds to ``key`` share one listing
                listing = self._learning[key] = asyncio.ensure_future(self._newest(key))
                listing.add_done_callback(
                    lambda done: self._learning.pop(key) if self._learning.get(key) is done
                    else None)
            index = await asyncio.shield(listing)
        return ShardBlob(key, index)

    async def _newest(self, key: ShardKey) -> int:
        current = bucket_of(self._clock(), self._bucket_minutes)
        if current > self._pruned_to:
            # new records never go to a past bucket (a job's is that of max(due, now)): what
            # this process learned of those is dropped, so a long-lived one does not grow
            self._pruned_to = current
            for past in [k for k in self._index if k.bucket < current]:
                del self._index[past]
        index = await self._mover.open_index(key)
        self._index[key] = max(self._index.get(key, 0), index)
        return self._index[key]
