"""The purge of key blobs whose claims no longer count (``jobs_core/key_purge.py``): only old
sealed blobs, never one that changed since the listing, and safely beside claims of the same
process."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from jobs_core import records
from jobs_core.key_blobs import blob_name
from jobs_core.memory_store import InMemoryStore
from tests.unit.test_key_index import FP, T0, FakeClock, Wrapper, index


class StaleDeleteStore(Wrapper):
    """A stale process appends to the blob just before purge deletes it."""

    async def delete(self, name: str, *, if_match: str | None = None) -> bool:
        await self.inner.append(name, b"\n" + records.encode_line(
            {"v": 1, "op": "key", "k": "late", "id": "late", "fp": FP, "at": T0.isoformat()}),
            create_metadata={})
        return await self.inner.delete(name, if_match=if_match)


async def test_purge_deletes_only_old_sealed_blobs() -> None:
    store = InMemoryStore()
    clock = FakeClock()
    window, skew = timedelta(hours=1), timedelta(minutes=1)
    a = index(store, partitions=1, seal_blocks=2, window=window, skew=skew, clock=clock)
    for i in range(4):  # blob 0: k0 k1 seal, blob 1: k2 k3 seal
        await a.claim(f"k{i}", FP, f"job-{i}", T0)
    clock.now = T0 + timedelta(minutes=30)
    for i in (4, 5, 6):  # blob 2: k4 k5 seal (recent), blob 3: k6 (current, unsealed)
        await a.claim(f"k{i}", FP, f"job-{i}", clock.now)
    assert [i.name for i in await store.list("keys/")] == [blob_name(0, n) for n in range(4)]

    assert await a.purge(T0 + window) == 0  # nothing is old enough yet (skew)
    clock.now = T0 + window + skew + timedelta(seconds=1)
    assert await a.purge(clock.now) == 2
    assert [i.name for i in await store.list("keys/")] == [blob_name(0, 2), blob_name(0, 3)]
    cold = index(store, partitions=1, seal_blocks=2, window=window, skew=skew, clock=clock)
    for process in (a, cold):  # the surviving claims still count
        assert (await process.claim("k6", FP, "again", clock.now)).job_id == "job-6"
        assert (await process.claim("k4", FP, "again", clock.now)).job_id == "job-4"
    assert (await cold.claim("k0", FP, "new-0", clock.now)).created  # expired

    clock.now = T0 + timedelta(hours=10)
    # blob 2 goes; blob 3 (sealed by k0's new claim, old too) is the highest: never deleted
    assert await a.purge(clock.now) == 1
    assert [i.name for i in await store.list("keys/")] == [blob_name(0, 3)]
    assert (await a.claim("k6", FP, "new-6", clock.now)).created
    assert (await cold.claim("k6", FP, "x", clock.now)).job_id == "new-6"
    with pytest.raises(ValueError, match="window"):
        await a.claim("k7", FP, "x", T0)


async def test_purge_skips_a_blob_that_changed_since_the_listing() -> None:
    store = InMemoryStore()
    a = index(store, partitions=1, seal_blocks=2)
    for i in range(3):
        await a.claim(f"k{i}", FP, f"job-{i}", T0)
    purger = index(StaleDeleteStore(store), partitions=1)
    assert await purger.purge(T0 + timedelta(days=30)) == 0
    assert blob_name(0, 0) in [i.name for i in await store.list("keys/")]


class GateFirstRead(Wrapper):
    """Holds the first read of blob ``name`` (once ``armed``) until ``release`` is set."""

    def __init__(self, inner: InMemoryStore, name: str) -> None:
        super().__init__(inner)
        self.name, self.armed = name, False
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def read(self, name: str, offset: int = 0) -> Any:
        if self.armed and name == self.name:
            self.armed = False
            self.entered.set()
            await self.release.wait()
        return await self.inner.read(name, offset)


async def test_a_purge_during_a_cold_claim_in_the_same_process() -> None:
    """From review (stop 27): the purge timer shares the runtime's key index with requests;
    it dropped blobs from a partition view that a cold claim was finalizing blob by blob,
    and the claim raised KeyError (an HTTP 500). The purge now holds the partition's lock."""
    inner, clock = InMemoryStore(), FakeClock()
    writer = index(inner, partitions=1, seal_blocks=1, clock=clock)
    for i in range(5):  # blobs 0..4, each sealed
        await writer.claim(f"k{i}", FP, f"job-{i}", T0)
    clock.now = T0 + timedelta(days=30)
    store = GateFirstRead(inner, blob_name(0, 0))
    api = index(store, partitions=1, seal_blocks=1, clock=clock)
    store.armed = True
    claim = asyncio.create_task(api.claim("fresh", FP, "job-fresh", clock.now))
    await store.entered.wait()  # the claim listed 0..4 and is finalizing blob 0
    purge = asyncio.create_task(api.purge(clock.now))
    for _ in range(50):  # the purge runs as far as it can while the claim waits
        await asyncio.sleep(0)
    store.release.set()
    assert (await claim).created and await purge == 4


class GateDelete(Wrapper):
    """Holds the first delete of blob ``name`` until ``release`` is set."""

    def __init__(self, inner: InMemoryStore, name: str) -> None:
        super().__init__(inner)
        self.name = name
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def delete(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == self.name and not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return await self.inner.delete(name, *args, **kwargs)


async def test_a_cold_claim_that_starts_during_a_purge() -> None:
    """From review of the fix above: the purge began a partition this process had no view of
    (so it took no lock); a cold claim then made the view and finalized it blob by blob while
    the purge dropped blobs from it (KeyError). The purge now makes the view and takes its
    lock around each delete and the view's update (not around its reads)."""
    inner, clock = InMemoryStore(), FakeClock()
    writer = index(inner, partitions=1, seal_blocks=1, clock=clock)
    for i in range(5):
        await writer.claim(f"k{i}", FP, f"job-{i}", T0)
    clock.now = T0 + timedelta(days=30)
    store = GateDelete(inner, blob_name(0, 1))
    gate = GateFirstRead(store, blob_name(0, 1))
    api = index(gate, partitions=1, seal_blocks=1, clock=clock)
    purge = asyncio.create_task(api.purge(clock.now))  # a fresh process: no view yet
    await store.entered.wait()  # the purge deleted blob 0 and is deleting blob 1
    gate.armed = True
    claim = asyncio.create_task(api.claim("fresh", FP, "job-fresh", clock.now))
    store.release.set()
    for _ in range(50):
        await asyncio.sleep(0)
    gate.release.set()
    assert (await claim).created and await purge == 4
