"""Group commit: concurrent writes to the same blob are coalesced into one append block.

The first write to an idle blob waits ``linger`` seconds for company; while an append is in
flight, new writes queue up and go out together in the next block. Every caller returns only
after the block holding its records was acknowledged by storage (durable), or with its error.

With a ``cache``, the committed block is applied to it once, whole (every caller's records, in
block order), before any caller returns: a caller then reads its own write from the cache, and
no caller's records are skipped (the cache's offset moves past the whole block only together
with all of its records).

An append that fails may still have committed (a timeout after the service wrote the block, or
an SDK retry that met the block it had already written). Before giving up, the committer reads
the blob from the offset it knew before the append and looks for the block's exact bytes (every
block holds a random id, so they are unique): found means committed, and the callers succeed.
Only a block that is not there is reported as failed, so an error answer means "not written" up
to a write still in flight inside the service for longer than the read took (not seen on Azure
Storage, whose requests end within their server timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import records
from .errors import BlobNotFoundError, ConcurrencyConflictError, JobsError, StoreError
from .store import AppendResult, JobStore

if TYPE_CHECKING:
    from .shard_cache import Made, ShardCache
    from .shard_state import ShardState

log = logging.getLogger(__name__)
VERIFY_TAIL_BYTES = 256 * 1024  # how far before the end a cold check looks for its block
MAX_FLOORS = 4096  # blobs whose size before our next append a committer remembers


@dataclass
class _Write:
    entries: Sequence[records.Record | records.Wire]
    data: bytes
    future: asyncio.Future[AppendResult]


@dataclass
class _Queue:
    writes: list[_Write] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class GroupCommitter:
    def __init__(self, store: JobStore, *, linger: float = 0.005,
                 max_block_bytes: int = 4 * 1024 * 1024,
                 cache: ShardCache | None = None) -> None:
        self._store = store
        self._linger = linger
        self._max_block_bytes = max_block_bytes
        self._cache = cache
        self._queues: dict[str, _Queue] = {}
        # a size each blob had before this process's next append to it (from a listing, a
        # HEAD or our own last append): an append that fails is looked for after it
        self._floor: dict[str, int] = {}
        self.blocks_written = 0
        self.verified_after_error = 0  # blocks found committed although their append failed

    def note_size(self, blob: str, size: int) -> None:
        """``blob`` had ``size`` bytes (a listing or a HEAD saw it): our next block in it
        lands after that. Without it, the read-back of a failed append of a blob this process
        never read looked only at the blob's last 256 KiB, and other processes' blocks
        written meanwhile could push ours out: a 503 for a job that was written (from the
        hunt of stop 27)."""
        if size > self._floor.get(blob, -1):
            self._floor.pop(blob, None)  # (most recent last: the oldest go first)
            self._floor[blob] = size
            while len(self._floor) > MAX_FLOORS:
                del self._floor[next(iter(self._floor))]

    async def append(self, blob: str, entries: Sequence[records.Record | records.Wire],
                     create_metadata: dict[str, str]) -> AppendResult:
        """Append ``entries`` to ``blob`` as part of a shared block; returns that block's
        result once it is durable (and applied to the cache, if there is one)."""
        data = b"".join(records.encode_line(r) for r in entries)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(blob, _Queue())
        queue.writes.append(_Write(entries, data, future))
        if queue.task is None:
            queue.task = asyncio.create_task(self._flush(blob, queue, create_metadata))
        return await future

    async def write(self, blob: str, entries: Sequence[records.Record],
                    create_metadata: dict[str, str] | None = None) -> ShardState:
        """``append``, then the blob's state with the records replayed (from the cache when
        the block applied to it, else after a tail read). Needs a cache."""
        assert self._cache is not None, "write() needs a GroupCommitter with a cache"
        appended = await self.append(blob, entries, create_metadata or {})
        state = self._cache.cached(blob)
        if state is None or (self._cache.known_size(blob) or 0) < appended.size:
            state = await self._cache.refresh(blob, at_least=appended.size)
        return state

    async def write_made(self, blob: str, record: records.Record, rid: str,
                         job_id: str) -> tuple[ShardState, Made]:
        """``write`` one record of job ``job_id`` carrying request id ``rid``; also what that
        record made (``ShardCache.as_made``): whether it applied, and the job as it left it,
        even when later records are already read. The cache watches ``rid`` meanwhile."""
        assert self._cache is not None, "write_made() needs a GroupCommitter with a cache"
        self._cache.watch(blob, rid)
        try:
            state = await self.write(blob, [record])
            return state, await self._cache.as_made(blob, state, rid, job_id)
        finally:
            self._cache.unwatch(blob, rid)

    async def _flush(self, blob: str, queue: _Queue, create_metadata: dict[str, str]) -> None:
        try:
            if self._linger > 0:
                await asyncio.sleep(self._linger)
            while queue.writes:
                batch: list[Any] = []
                size = 1
                while queue.writes and (not batch or
                                        size + len(queue.writes[0].data) <= self._max_block_bytes):
                    write = queue.writes.pop(0)
                    batch.append(write)
                    size += len(write.data)
                block = b"\n" + b"".join(w.data for w in batch)
                try:
                    result = await self._append_verified(blob, block, create_metadata)
                    self.blocks_written += 1
                    if self._cache is not None:
                        self._cache.apply_own(blob, result,
                                              [r for w in batch for r in w.entries])
                except BaseException as exc:  # every waiting caller gets the error
                    for write in batch:
                        if not write.future.done():
                            write.future.set_exception(
                                exc if isinstance(exc, Exception) else
                                JobsError(f"append to {blob} interrupted: {exc!r}"))
                    if not isinstance(exc, Exception):
                        raise  # (cancelled, or the process is going away)
                    continue
                for write in batch:
                    if not write.future.done():
                        write.future.set_result(result)
        finally:
            queue.task = None
            if queue.writes:  # raced with a late writer: make sure it is flushed
                queue.task = asyncio.create_task(self._flush(blob, queue, create_metadata))

    async def _append_verified(self, blob: str, block: bytes,
                               create_metadata: dict[str, str]) -> AppendResult:
        known = self._size_before(blob)
        try:
            result = await self._store.append(blob, block, create_metadata=create_metadata)
        except (ConcurrencyConflictError, BlobNotFoundError):
            raise
        except StoreError as error:
            found = await self._find(blob, block, known)
            if found is None:
                raise
            self.verified_after_error += 1
            log.info("append to %s failed (%s) but the block is there: committed", blob, error)
            result = found
        self.note_size(blob, result.size)
        return result

    def _size_before(self, blob: str) -> int | None:
        """The largest size ``blob`` is known to have had before our next append: as far as
        this process replayed it (the cache), or as noted (``note_size``); None: unknown."""
        replayed = self._cache.known_size(blob) if self._cache is not None else None
        sizes = [size for size in (replayed, self._floor.get(blob)) if size is not None]
        return max(sizes, default=None)

    async def _find(self, blob: str, block: bytes, known: int | None) -> AppendResult | None:
        """Where ``block`` is in the blob after ``known`` (a size the blob had before the
        append: read, listed, or our own last append), or, with none, in the blob's last
        bytes (one HEAD and one ranged read: never a whole 50,000-block blob). Not after
        ``known``: in the last bytes too (a blob deleted and re-created since, smaller)."""
        found = await self._find_after(blob, block, known)
        if found is None and known:
            found = await self._find_after(blob, block, None)
        return found

    async def _find_after(self, blob: str, block: bytes,
                          known: int | None) -> AppendResult | None:
        try:
            if known is None:
                size = (await self._store.stat(blob)).size
                since = max(0, size - len(block) - VERIFY_TAIL_BYTES)
            else:
                since = known
            read = await self._store.read(blob, since)
        except JobsError:
            return None  # cannot tell: report the append's own error
        pos = read.data.find(block)
        if pos < 0:
            return None
        offset = since + pos
        # block_count is unknown here (0): a seal check simply waits for the next append
        return AppendResult(offset=offset, size=offset + len(block), block_count=0)

    async def drain(self) -> None:
        for queue in list(self._queues.values()):
            if queue.task is not None:
                with contextlib.suppress(Exception):
                    await queue.task
