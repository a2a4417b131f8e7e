"""Group commit: concurrent writes to the same blob are coalesced into one append block.

The first write to an idle blob waits ``linger`` seconds for company; while an append is in
flight, new writes queue up and go out together in the next block. Every caller returns only
after the block holding its records was acknowledged by storage (durable), or with its error.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from . import records as rec
from .store import AppendResult, JobStore


@dataclass
class _Write:
    records: list[rec.Record]
    data: bytes
    future: asyncio.Future[AppendResult]


@dataclass
class _Queue:
    writes: list[_Write] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class GroupCommitter:
    def __init__(self, store: JobStore, *, linger: float = 0.005,
                 max_block_bytes: int = 4 * 1024 * 1024) -> None:
        self._store = store
        self._linger = linger
        self._max_block_bytes = max_block_bytes
        self._queues: dict[str, _Queue] = {}
        self.blocks_written = 0

    async def append(self, blob: str, records: list[rec.Record],
                     create_metadata: dict[str, str]) -> AppendResult:
        """Append ``records`` to ``blob`` as part of a shared block; returns that block's
        result once it is durable."""
        data = b"".join(rec.encode_line(r) for r in records)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(blob, _Queue())
        queue.writes.append(_Write(records, data, future))
        if queue.task is None:
            queue.task = asyncio.create_task(self._flush(blob, queue, create_metadata))
        return await future

    async def _flush(self, blob: str, queue: _Queue, create_metadata: dict[str, str]) -> None:
        try:
            if self._linger > 0:
                await asyncio.sleep(self._linger)
            while queue.writes:
                batch, size = [], 1
                while queue.writes and (not batch or
                                        size + len(queue.writes[0].data) <= self._max_block_bytes):
                    write = queue.writes.pop(0)
                    batch.append(write)
                    size += len(write.data)
                block = b"\n" + b"".join(w.data for w in batch)
                try:
                    result = await self._store.append(blob, block, create_metadata=create_metadata)
                except Exception as exc:  # every waiting caller gets the storage error
                    for write in batch:
                        if not write.future.done():
                            write.future.set_exception(exc)
                    continue
                self.blocks_written += 1
                for write in batch:
                    if not write.future.done():
                        write.future.set_result(result)
        finally:
            queue.task = None
            if queue.writes:  # raced with a late writer: make sure it is flushed
                queue.task = asyncio.create_task(self._flush(blob, queue, create_metadata))

    async def drain(self) -> None:
        for queue in list(self._queues.values()):
            if queue.task is not None:
                with contextlib.suppress(Exception):
                    await queue.task
