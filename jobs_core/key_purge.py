"""Purging idempotency-key blobs whose claims no longer count (``KeyIndex.purge``).

A key blob is deleted when it is sealed, is not the highest blob of its partition, and its
newest record is older than the key window plus the clock skew (``key_index.py``: "Expiry and
purge"). The delete is conditional on the ETag the listing gave, so a blob that changed since is
kept. A blob's summary (sealed, newest record) is remembered by ETag: a purge reads each blob
once while it stays the same.

The purge timer shares the runtime's key index with requests: the delete and the update of the
partition's view happen under the view's lock, because a claim of this process reads the blobs
of its view one by one under it (from review of stop 27: a KeyError, HTTP 500). The reads that
judge a blob are not under it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from .errors import BlobNotFoundError, ConcurrencyConflictError
from .key_blobs import PREFIX, aware, parse_blob_name, summarize_blob
from .store import BlobInfo, JobStore


class PartitionView(Protocol):
    """What the purge needs of a key index's view of one partition."""

    @property
    def lock(self) -> asyncio.Lock: ...

    @property
    def current(self) -> int: ...  # the highest blob the view knows: never purged from it

    @property
    def blobs(self) -> dict[int, Any]: ...  # the view's blobs by index


class KeyBlobPurge:
    """Deletes the key blobs past ``keep`` (the window plus the skew) for one key index."""

    def __init__(self, store: JobStore, keep: timedelta,
                 view: Callable[[int], PartitionView]) -> None:
        self.store = store
        self.keep = keep
        self._view = view
        self._seen: dict[str, tuple[str, bool, datetime | None]] = {}  # name: etag, sealed, newest

    async def run(self, now: datetime) -> int:
        """Delete what is past ``keep`` at ``now``; how many blobs this call deleted."""
        cutoff = aware(now) - self.keep
        by_part: dict[int, list[tuple[int, BlobInfo]]] = {}
        for info in await self.store.list(PREFIX):
            parsed = parse_blob_name(info.name)
            if parsed is not None:
                by_part.setdefault(parsed[0], []).append((parsed[1], info))
        listed = {info.name for blobs in by_part.values() for _, info in blobs}
        for name in [n for n in self._seen if n not in listed]:
            del self._seen[name]
        deleted = 0
        for part, blobs in by_part.items():
            deleted += await self._partition(part, blobs, cutoff)
        return deleted

    async def _partition(self, part: int, blobs: list[tuple[int, BlobInfo]],
                         cutoff: datetime) -> int:
        deleted = 0
        highest = max(index for index, _ in blobs)
        for index, info in sorted(blobs, key=lambda b: b[0]):
            if index == highest or not await self._expired(info, cutoff):
                continue
            view = self._view(part)
            async with view.lock:
                try:
                    if await self.store.delete(info.name, if_match=info.etag):
                        deleted += 1
                except (ConcurrencyConflictError, BlobNotFoundError):
                    continue
                self._seen.pop(info.name, None)
                if index < view.current:
                    view.blobs.pop(index, None)  # its claims no longer count
        return deleted

    async def _expired(self, info: BlobInfo, cutoff: datetime) -> bool:
        """Whether the listed blob is sealed and its newest record is older than ``cutoff``."""
        seen = self._seen.get(info.name)
        if seen is None or seen[0] != info.etag:
            try:
                result = await self.store.read(info.name)
            except BlobNotFoundError:
                return False
            if result.size != info.size:
                return False  # changed since the listing: the delete would fail anyway
            sealed, newest = summarize_blob(result.data, info.name)
            seen = self._seen[info.name] = (info.etag, sealed, newest)
        _, sealed, newest = seen
        return sealed and (newest is None or newest <= cutoff)
