"""The shard blobs for operators: one row per blob with its size, committed block count, job
counts by status and its slot's claim (``GET /api/shards``).

Order: newest bucket first (what an operator wants to see first), then slot, then blob index.
The cursor names the last row of a page; the next page starts right after it in that order, so
blobs created in between do not shift it.

Where each figure comes from, and its cost in storage requests for a page of N rows from S
slots, with B shard blobs listed:

- the blobs: List Blobs of ``shards/`` (or ``shards/sNNN/`` with a slot filter), one request
  per 5,000 blobs: ``ceil(B / 5000)``. Bucket filters are applied to the listing (a prefix
  cannot express a time range across slots).
- owner and epoch: the slot's claim blob ``claims/sNNN``, one HEAD per slot on the page (S).
- block count: List Blobs does not return it, so one HEAD (``JobStore.stat``) per row whose
  size this process has not seen before. A blob's block count cannot change while its size
  does not (every append adds bytes), so it is remembered by size: 0 requests on a reload when
  nothing was appended.
- counts by status: exact, from one of two sources (``counts_source``):
    ``summary``  the summary metadata the executor writes (``shard_summary.py``), used when it
                 is current (its ``seen_size`` is the blob's size) and no job waits (the
                 summary counts waiting jobs but does not split them into scheduled and
                 retrying). That is every finished blob of a past bucket: 0 requests.
    ``log``      otherwise the log is replayed through this object's own ``ShardCache``
                 (finished jobs kept as counts only): the whole blob the first time (one GET
                 per 4 MiB), afterwards one ranged GET of the new bytes, or none when the size
                 did not change.
  ``unreadable``: the log holds a record of a newer format; ``error`` says so, counts are 0
  here (``GET /api/shards`` answers them as ``null``: unknown).

Cold page, worst case: ``ceil(B/5000) + S + N + N * ceil(size / 4 MiB)``; the same page again
with nothing appended: ``ceil(B/5000) + S``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TypeVar

from . import records
from .errors import (
    BlobNotFoundError,
    InvalidCursorError,
    JobValidationError,
    UnsupportedRecordVersionError,
)
from .ids import SHARD_PREFIX, ShardBlob, bucket_of, claim_blob, parse_shard_name, slot_prefix
from .limits import MAX_LIST_LIMIT
from .model import JobStatus
from .settings import JobsSettings
from .shard_cache import ShardCache
from .store import BlobInfo, JobStore

APPEND_BLOB_BLOCK_LIMIT = 50_000  # Azure's limit of committed blocks in one append blob
MAX_PAGE = MAX_LIST_LIMIT  # (limits.py)
CONCURRENT_REQUESTS = 16  # HEADs and reads in flight for one page
REMEMBERED_SIZES = 8192  # blobs whose block count is remembered by size
T = TypeVar("T")


@dataclass(frozen=True)
class SlotClaim:
    """The claim blob of a slot as read (all None when the slot was never claimed)."""

    owner: str | None = None
    epoch: int | None = None
    expires: datetime | None = None


@dataclass(frozen=True)
class ShardRow:
    name: str
    slot: int
    bucket: datetime
    index: int
    size: int
    blocks: int | None  # committed blocks
    counts: dict[str, int]  # every JobStatus value -> jobs in that status
    pending: int  # jobs not final (scheduled + running + retrying)
    next_due: datetime | None  # earliest due time of a waiting job, when known
    counts_source: str  # "summary", "log" or "unreadable"
    claim: SlotClaim
    error: str | None = None


@dataclass(frozen=True)
class ShardPage:
    shards: list[ShardRow]
    next_cursor: str | None


@dataclass(frozen=True)
class _Counts:
    counts: dict[str, int]
    pending: int
    next_due: datetime | None
    source: str
    error: str | None = None


class ShardOverview:
    """Pages of shard rows. Keep one per process: it caches replayed logs and block counts."""

    def __init__(self, store: JobStore, settings: JobsSettings | None = None, *,
                 cache_blobs: int = 256) -> None:
        self._store = store
        self._settings = settings or JobsSettings()
        self.cache = ShardCache(store, keep_finished=False, max_blobs=cache_blobs)
        self._blocks: OrderedDict[str, tuple[int, int]] = OrderedDict()  # name -> (size, n)

    async def page(self, *, slot: int | None = None, bucket_from: datetime | None = None,
                   bucket_to: datetime | None = None, limit: int = 100,
                   cursor: str | None = None) -> ShardPage:
        """Shards of the buckets that hold times from ``bucket_from`` to ``bucket_to`` (both
        included: a bucket starting at ``bucket_to`` is in), newest first."""
        if not 1 <= limit <= MAX_PAGE:
            raise JobValidationError(f"limit must be an integer 1..{MAX_PAGE}", field="limit")
        if slot is not None and not 0 <= slot < self._settings.slots:
            raise JobValidationError(f"slot must be an integer 0..{self._settings.slots - 1}",
                                     field="slot")
        if bucket_from is not None and bucket_to is not None and bucket_from > bucket_to:
            raise JobValidationError("bucket_to is before bucket_from", field="bucket_to")
        after = _order(decode_cursor(cursor)) if cursor else None
        if bucket_from is not None:
            bucket_from = bucket_of(bucket_from, self._settings.bucket_minutes)
        prefix = slot_prefix(slot) if slot is not None else SHARD_PREFIX
        found: list[tuple[tuple[float, int, int], ShardBlob, BlobInfo]] = []
        for info in await self._store.list(prefix):
            shard = parse_shard_name(info.name)
            if shard is None or (bucket_from is not None and shard.key.bucket < bucket_from) \
                    or (bucket_to is not None and shard.key.bucket > bucket_to):
                continue
            order = _order(shard)
            if after is None or order > after:
                found.append((order, shard, info))
        found.sort(key=lambda item: item[0])
        chosen = found[:limit]
        slots = sorted({shard.key.slot for _, shard, _ in chosen})
        claims = dict(zip(slots, await gather_bounded([partial(self._claim, s) for s in slots]),
                          strict=True))
        rows = await gather_bounded([partial(self._row, shard, info, claims[shard.key.slot])
                                     for _, shard, info in chosen])
        more = len(found) > limit
        return ShardPage([r for r in rows if r is not None],
                         encode_cursor(chosen[-1][1].name) if more else None)

    async def _claim(self, slot: int) -> SlotClaim:
        blob = await self._store.read_claim(claim_blob(slot))
        if blob is None:
            return SlotClaim()
        meta = blob.metadata
        epoch = meta.get("epoch", "")
        try:
            expires = records.parse_ts(meta["expires"]) if meta.get("expires") else None
        except ValueError:
            expires = None
        return SlotClaim(meta.get("owner") or None, int(epoch) if epoch.isdigit() else None,
                         expires)

    async def _row(self, shard: ShardBlob, listed: BlobInfo, claim: SlotClaim) -> ShardRow | None:
        try:
            info = await self._with_block_count(listed)
            counts = _from_summary(info.metadata, info.size) or await self._from_log(info)
        except BlobNotFoundError:  # deleted since the listing (retention)
            self.cache.forget(listed.name)
            return None
        return ShardRow(info.name, shard.key.slot, shard.key.bucket, shard.index, info.size,
                        info.block_count, counts.counts, counts.pending, counts.next_due,
                        counts.source, claim, counts.error)

    async def _with_block_count(self, listed: BlobInfo) -> BlobInfo:
        known = self._blocks.get(listed.name)
        if known is not None and known[0] == listed.size:
            self._blocks.move_to_end(listed.name)
            return replace(listed, block_count=known[1])
        info = await self._store.stat(listed.name)
        if info.block_count is not None:
            self._blocks[listed.name] = (info.size, info.block_count)
            self._blocks.move_to_end(listed.name)
            while len(self._blocks) > REMEMBERED_SIZES:
                self._blocks.popitem(last=False)
        return info

    async def _from_log(self, info: BlobInfo) -> _Counts:
        try:
            state = await self.cache.refresh(info.name, if_size_differs=info.size)
        except UnsupportedRecordVersionError as exc:
            self.cache.forget(info.name)
            return _Counts(_zero_counts(), 0, None, "unreadable", str(exc))
        pending = state.pending()
        due = [job.due_at for job in pending if job.status.is_waiting]
        return _Counts(state.counts(), len(pending), min(due) if due else None, "log")


def _zero_counts() -> dict[str, int]:
    return {status.value: 0 for status in JobStatus}


def _from_summary(meta: dict[str, str], size: int) -> _Counts | None:
    """The counts in a current summary that leaves nothing open, else None."""
    if meta.get("seen_size") != str(size):
        return None
    try:
        pending, running = int(meta["pending"]), int(meta["running"])
        finished = {k: int(v) for k, v in (part.split("=", 1)
                                           for part in meta["counts"].split(",") if part)}
    except (KeyError, ValueError):
        return None
    if pending != running:
        return None  # waiting jobs: the summary does not say scheduled or retrying
    counts = _zero_counts()
    counts[JobStatus.RUNNING.value] = running
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        counts[status.value] = finished.get(status.value, 0)
    return _Counts(counts, pending, None, "summary")


def _order(shard: ShardBlob) -> tuple[float, int, int]:
    return (-shard.key.bucket.timestamp(), shard.key.slot, shard.index)


def encode_cursor(blob: str) -> str:
    return base64.urlsafe_b64encode(blob.encode()).decode()


def decode_cursor(cursor: str) -> ShardBlob:
    try:
        shard = parse_shard_name(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        shard = None
    if shard is None:
        raise InvalidCursorError("the cursor is not one /api/shards returned; start without it")
    return shard


async def gather_bounded(calls: Iterable[Callable[[], Awaitable[T]]],
                         limit: int = CONCURRENT_REQUESTS) -> list[T]:
    """Run the calls concurrently, at most ``limit`` at a time; results in call order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))
