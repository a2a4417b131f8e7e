"""Storage as the simulation sees it: one shared in-memory account, one faulty view per process.

``SharedStorage`` wraps ``InMemoryStore`` (the blob account every process shares). Each
simulated process talks to it through its own ``ProcessStore``, which injects, from the seed:
- latency on every request (virtual time), which reorders concurrent requests;
- errors *before* a request (nothing written, ``TransientStoreError``);
- errors *after* a write (written, yet the caller sees ``TransientStoreError``: the ambiguous case);
- an append block committed twice (the SDK retried after a lost response);
- a listing that does not yet show a blob created in the last two seconds;
- a block limit scaled down (``max_blocks``) so rollover and move paths run within hours.
409/412 races and blobs purged between a listing and a read happen by themselves when several
processes and the retention purge run at once. A crashed process's view refuses everything
(``ProcessCrashed``, a ``BaseException`` that no ``except Exception`` swallows).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jobs_core.errors import JobsError, TransientStoreError
from jobs_core.memory_store import InMemoryStore
from jobs_core.store import AppendResult, BlobInfo, ClaimBlob, JobStore, ReadResult

T = TypeVar("T")

REAL_IO_IN_FLIGHT = [0]  # requests awaiting the store (the loop waits for real ones)


class ProcessCrashed(BaseException):
    """The process this view belongs to has died; nothing it does reaches storage."""


@dataclass(frozen=True)
class FaultPlan:
    p_before: float = 0.0  # a request fails before it is served
    p_after: float = 0.0  # a write is served, then the caller sees an error
    p_double: float = 0.0  # an append block is committed twice
    p_stale_list: float = 0.0  # a listing misses blobs created in the last 2 s
    max_latency: float = 0.004  # seconds of virtual latency per request, uniform
    max_blocks: int = 50_000
    p_crash: float = 0.0  # the process dies at this request (before it, or after a write)

    @classmethod
    def draw(cls, rng: random.Random) -> FaultPlan:
        calm = rng.random() < 0.2
        return cls(
            p_before=0.0 if calm else rng.choice([0.002, 0.01, 0.03]),
            p_after=0.0 if calm else rng.choice([0.002, 0.01, 0.02]),
            p_double=0.0 if calm else rng.choice([0.0, 0.005, 0.01]),
            p_stale_list=0.0 if calm else rng.choice([0.0, 0.05]),
            max_latency=rng.choice([0.001, 0.004, 0.02]),
            max_blocks=rng.choice([200, 400, 50_000]),
            p_crash=0.0 if calm else rng.choice([0.0, 0.001, 0.004]),
        )


class SharedStorage:
    def __init__(self, rng: random.Random, plan: FaultPlan,
                 on_ambiguous: Callable[[str, set[str]], None],
                 inner: JobStore | None = None) -> None:
        self.inner: Any = inner if inner is not None else InMemoryStore(
            max_blocks=plan.max_blocks)
        self.rng = rng
        self.plan = plan
        self.faults_on = True
        self.injected: Counter[str] = Counter()
        self.created_at: dict[str, float] = {}
        self.on_ambiguous = on_ambiguous  # (kind, job ids in the block): for duplicate causes
        self.max_blocks_seen = 0
        self.purged: list[tuple[str, bytes]] = []  # shard blobs deleted, with their bytes

    def view(self, alive: Callable[[], bool],
             crash: Callable[[], None] | None = None) -> ProcessStore:
        return ProcessStore(self, alive, crash)

    def roll(self, p: float) -> bool:
        return self.faults_on and p > 0 and self.rng.random() < p


def _ids_in(data: bytes) -> set[str]:
    ids = set()
    for line in data.split(b"\n"):
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                ids.add(record["id"])
    return ids


class ProcessStore:
    """One process's faulty view of the shared storage (implements ``JobStore``)."""

    def __init__(self, shared: SharedStorage, alive: Callable[[], bool],
                 crash: Callable[[], None] | None = None) -> None:
        self.s = shared
        self.alive = alive
        self.crash = crash

    async def _io(self, request: Awaitable[T]) -> T:
        REAL_IO_IN_FLIGHT[0] += 1
        try:
            return await request
        finally:
            REAL_IO_IN_FLIGHT[0] -= 1

    def _maybe_crash(self, op: str) -> None:
        if self.crash is not None and self.s.roll(self.s.plan.p_crash):
            self.s.injected[f"{op}:crash"] += 1
            self.crash()
            raise ProcessCrashed(op)

    async def _enter(self, op: str) -> None:
        if not self.alive():
            raise ProcessCrashed(op)
        await asyncio.sleep(self.s.rng.uniform(0, self.s.plan.max_latency))
        if not self.alive():
            raise ProcessCrashed(op)
        self._maybe_crash(op)
        if self.s.roll(self.s.plan.p_before):
            self.s.injected[f"{op}:before"] += 1
            raise TransientStoreError(f"injected 503 before {op}")

    async def _leave(self, op: str, write: bool, ids: set[str] | None = None) -> None:
        if write and self.s.roll(self.s.plan.p_after):
            self.s.injected[f"{op}:after"] += 1
            if ids:
                self.s.on_ambiguous("ambiguous " + op, ids)
            raise TransientStoreError(f"injected timeout after {op} (it was written)")
        await asyncio.sleep(self.s.rng.uniform(0, self.s.plan.max_latency))
        if not self.alive():  # the write happened; its caller is gone
            raise ProcessCrashed(op)
        if write:
            self._maybe_crash(op)

    async def append(self, name: str, data: bytes, *,
                     create_metadata: dict[str, str]) -> AppendResult:
        await self._enter("append")
        if name not in self.s.created_at:
            self.s.created_at[name] = asyncio.get_running_loop().time()
        result = await self._io(self.s.inner.append(name, data, create_metadata=create_metadata))
        ids = _ids_in(data)
        if self.s.roll(self.s.plan.p_double):
            self.s.injected["append:double"] += 1
            self.s.on_ambiguous("block committed twice", ids)
            result = await self._io(self.s.inner.append(name, data,
                                                        create_metadata=create_metadata))
        self.s.max_blocks_seen = max(self.s.max_blocks_seen, result.block_count)
        await self._leave("append", True, ids)
        return result

    async def read(self, name: str, offset: int = 0) -> ReadResult:
        await self._enter("read")
        result = await self._io(self.s.inner.read(name, offset))
        await self._leave("read", False)
        return result

    async def list(self, prefix: str) -> list[BlobInfo]:
        await self._enter("list")
        listed = await self._io(self.s.inner.list(prefix))
        if self.s.roll(self.s.plan.p_stale_list):
            now = asyncio.get_running_loop().time()
            fresh = [b for b in listed if now - self.s.created_at.get(b.name, -1e9) < 2.0]
            if fresh:
                self.s.injected["list:stale"] += 1
                listed = [b for b in listed if b not in fresh]
        await self._leave("list", False)
        return listed

    async def stat(self, name: str) -> BlobInfo:
        await self._enter("stat")
        result = await self._io(self.s.inner.stat(name))
        await self._leave("stat", False)
        return result

    async def set_metadata(self, name: str, metadata: dict[str, str]) -> None:
        await self._enter("set_metadata")
        await self._io(self.s.inner.set_metadata(name, metadata))
        await self._leave("set_metadata", True)

    async def read_claim(self, name: str) -> ClaimBlob | None:
        await self._enter("read_claim")
        result = await self._io(self.s.inner.read_claim(name))
        await self._leave("read_claim", False)
        return result

    async def write_claim(self, name: str, metadata: dict[str, str], *, etag: str | None) -> str:
        await self._enter("write_claim")
        result = await self._io(self.s.inner.write_claim(name, metadata, etag=etag))
        await self._leave("write_claim", True)
        return result

    async def delete(self, name: str, *, if_match: str | None = None) -> bool:
        await self._enter("delete")
        try:  # what a purge removes: the oracle derives its events too (I10)
            before = (await self._io(self.s.inner.read(name))).data
        except JobsError:
            before = b""
        result = await self._io(self.s.inner.delete(name, if_match=if_match))
        if result and name.startswith("shards/"):
            self.s.purged.append((name, before))
        await self._leave("delete", True)
        return result

    async def close(self) -> None:
        return None
