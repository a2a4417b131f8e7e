"""The idempotency key index: first claim wins, across processes, rollover, ambiguous storage
outcomes and expiry (the purge of old key blobs: test_key_purge.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs_core.errors import (
    IdempotencyConflictError,
    TransientStoreError,
    UnsupportedRecordVersionError,
)
from jobs_core.group_commit import GroupCommitter
from jobs_core.key_blobs import blob_name, fingerprint, parse_blob_name, partition_of
from jobs_core.key_index import KeyClaim, KeyIndex
from jobs_core.memory_store import InMemoryStore
from jobs_core.store import AppendResult, JobStore

T0 = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
FP = fingerprint("echo", {"n": 1})
OTHER_FP = fingerprint("echo", {"n": 2})


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Wrapper:
    """A store that delegates everything; subclasses change ``append``/``delete``."""

    def __init__(self, inner: InMemoryStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class AmbiguousStore(Wrapper):
    """The next append of a claim raises ``TransientStoreError``, after committing it
    (``commit=True``) or not; ``meanwhile`` runs before the error is raised."""

    def __init__(self, inner: InMemoryStore, *, commit: bool,
                 meanwhile: Callable[[], Awaitable[Any]] | None = None) -> None:
        super().__init__(inner)
        self.armed = True
        self.commit = commit
        self.meanwhile = meanwhile

    async def append(self, name: str, data: bytes, *,
                     create_metadata: dict[str, str]) -> AppendResult:
        if not (self.armed and b'"op":"key"' in data):
            return await self.inner.append(name, data, create_metadata=create_metadata)
        self.armed = False
        if self.commit:
            await self.inner.append(name, data, create_metadata=create_metadata)
        if self.meanwhile is not None:
            await self.meanwhile()
        raise TransientStoreError(f"{name}: timed out")


class DoubleStore(Wrapper):
    """Commits every block twice (an adapter retry after a lost acknowledgement)."""

    async def append(self, name: str, data: bytes, *,
                     create_metadata: dict[str, str]) -> AppendResult:
        await self.inner.append(name, data, create_metadata=create_metadata)
        return await self.inner.append(name, data, create_metadata=create_metadata)


class HookStore(Wrapper):
    """Runs ``hook`` once, just before the first append whose data contains ``trigger``."""

    def __init__(self, inner: InMemoryStore, trigger: bytes) -> None:
        super().__init__(inner)
        self.trigger = trigger
        self.hook: Callable[[], Awaitable[Any]] | None = None

    async def append(self, name: str, data: bytes, *,
                     create_metadata: dict[str, str]) -> AppendResult:
        if self.hook is not None and self.trigger in data:
            hook, self.hook = self.hook, None
            await hook()
        return await self.inner.append(name, data, create_metadata=create_metadata)


def index(store: Any, *, linger: float = 0, **kw: Any) -> KeyIndex:
    kw.setdefault("clock", FakeClock())
    return KeyIndex(store, GroupCommitter(store, linger=linger), **kw)


async def reference_winners(store: JobStore) -> dict[str, str]:
    """The first valid claim of each key, replaying every key blob from scratch."""
    winners: dict[str, str] = {}
    infos = [(parse_blob_name(i.name), i.name) for i in await store.list("keys/")]
    for _, name in sorted(infos):
        for raw in (await store.read(name)).data.split(b"\n"):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if record["op"] == "seal":
                break
            winners.setdefault(record["k"], record["id"])
    return winners


def assert_one_winner(results: list[KeyClaim], ids: list[str]) -> str:
    winners = {r.job_id for r in results}
    assert len(winners) == 1, winners
    winner = winners.pop()
    assert winner in ids
    assert [r.created for r in results].count(True) == 1
    assert all(r.created == (i == winner) for r, i in zip(results, ids, strict=True))
    return winner


# --- basics -----------------------------------------------------------------------------------
def test_fingerprint_is_canonical() -> None:
    assert fingerprint("h", {"a": 1, "b": [1, 2]}) == fingerprint("h", {"b": [1, 2], "a": 1})
    assert fingerprint("h", {"a": 1}) != fingerprint("h2", {"a": 1})
    assert fingerprint("h", None) != fingerprint("h", {})
    assert len(FP) == 32 and int(FP, 16) >= 0


def test_a_keys_home_depends_on_the_key_alone() -> None:
    part = partition_of("order-42", 64)
    assert 0 <= part < 64
    assert blob_name(part, 3) == f"keys/p{part:03d}-0003.jsonl"
    assert parse_blob_name(blob_name(part, 3)) == (part, 3)
    assert parse_blob_name("shards/s000/x.jsonl") is None


async def test_first_claim_wins_and_a_repeat_writes_nothing() -> None:
    store = InMemoryStore()
    a, b = index(store), index(store)
    first = await a.claim("k", FP, "job-1", T0)
    assert first == KeyClaim("job-1", True, T0)
    appends = store.requests["append"]
    assert await a.claim("k", FP, "job-2", T0) == KeyClaim("job-1", False, T0)
    assert await b.claim("k", FP, "job-3", T0) == KeyClaim("job-1", False, T0)  # cold process
    assert store.requests["append"] == appends
    assert await reference_winners(store) == {"k": "job-1"}


async def test_different_fingerprint_conflicts_and_nothing_is_appended() -> None:
    store = InMemoryStore()
    a, b = index(store), index(store)
    await a.claim("k", FP, "job-1", T0)
    appends = store.requests["append"]
    for process in (a, b):
        with pytest.raises(IdempotencyConflictError) as err:
            await process.claim("k", OTHER_FP, "job-2", T0)
        assert (err.value.key, err.value.job_id) == ("k", "job-1")
    assert store.requests["append"] == appends


async def test_request_costs() -> None:
    store = InMemoryStore()
    a = index(store, partitions=1)
    await a.claim("k1", FP, "job-1", T0)  # cold, empty partition
    assert store.requests == {"list": 1, "read": 1, "create": 1, "append": 1}
    store.requests.clear()
    await a.claim("k2", FP, "job-2", T0)  # warm
    assert store.requests == {"read": 1, "append": 1}
    store.requests.clear()
    await a.claim("k1", FP, "job-3", T0)  # known to this process
    assert store.requests == {}

    rolled = InMemoryStore()
    b = index(rolled, partitions=1, seal_blocks=2)
    for i in range(5):  # blobs 0 and 1 sealed, blob 2 current
        await b.claim(f"k{i}", FP, f"job-{i}", T0)
    rolled.requests.clear()
    await index(rolled, partitions=1).claim("new", FP, "job-new", T0)  # cold
    assert rolled.requests == {"list": 1, "read": 3, "append": 1}


async def test_torn_and_malformed_lines_are_skipped() -> None:
    store = InMemoryStore()
    a = index(store, partitions=1)
    await a.claim("k1", FP, "job-1", T0)
    name = blob_name(0, 0)
    store.raw_append(name, b"\nnot json\n")
    store.raw_append(name, b'{"v":1,"op":"key","k":"k2","id":"torn"')  # torn: no newline
    assert (await a.claim("k2", FP, "job-2", T0)).created
    assert (await index(store, partitions=1).claim("k2", FP, "job-3", T0)).job_id == "job-2"
    store.raw_append(name, b'\n{"v":2,"op":"key","k":"k3","id":"x","fp":"y","at":"z"}\n')
    with pytest.raises(UnsupportedRecordVersionError):
        await a.claim("k3", FP, "job-4", T0)


# --- races ------------------------------------------------------------------------------------
async def test_three_processes_racing_on_one_key_agree_on_one_winner() -> None:
    store = InMemoryStore()
    processes = [index(store, linger=0.001), index(store), index(store, linger=0.002)]
    ids = [f"job-{i}" for i in range(50)]
    results = await asyncio.gather(*(processes[i % 3].claim("k", FP, job_id, T0)
                                     for i, job_id in enumerate(ids)))
    winner = assert_one_winner(list(results), ids)
    assert await reference_winners(store) == {"k": winner}


async def test_rollover_while_racing_keeps_one_winner_per_key() -> None:
    store = InMemoryStore(max_blocks=5)
    a, b = (index(store, partitions=1, seal_blocks=3) for _ in range(2))
    keys = [f"k{i}" for i in range(12)]
    calls = [(key, f"{key}-job-{n}") for key in keys for n in range(4)]
    results: list[KeyClaim] = []
    for wave in range(0, len(calls), 6):  # small waves: many blocks, many rollovers
        results += await asyncio.gather(*((a if n % 2 else b).claim(key, FP, job_id, T0)
                                          for n, (key, job_id) in enumerate(calls[wave:wave + 6])))
    reference = await reference_winners(store)
    cold = index(store, partitions=1, seal_blocks=3)
    for key in keys:
        mine = [(r, job_id) for r, (k, job_id) in zip(results, calls, strict=True) if k == key]
        winner = assert_one_winner([r for r, _ in mine], [job_id for _, job_id in mine])
        assert reference[key] == winner
        assert (await cold.claim(key, FP, f"{key}-late", T0)).job_id == winner
    assert len(await store.list("keys/")) >= 5  # it did roll over


@pytest.mark.parametrize("stale_key_claimed_meanwhile", [False, True])
async def test_a_stale_process_appending_after_the_seal_claims_again(
        stale_key_claimed_meanwhile: bool) -> None:
    store = InMemoryStore()
    hooked = HookStore(store, trigger=b'"k":"K"')
    a = index(store, partitions=1, seal_blocks=3)
    b = index(hooked, partitions=1, seal_blocks=3)
    await b.claim("warm", FP, "b-warm", T0)  # b's view: blob 0, unsealed

    async def others_roll_over() -> None:  # between b's read and b's append
        for i in range(3):
            await a.claim(f"other{i}", FP, f"a-{i}", T0)
        if stale_key_claimed_meanwhile:
            await a.claim("K", FP, "a-K", T0)

    hooked.hook = others_roll_over
    got = await b.claim("K", FP, "b-K", T0)
    expected = "a-K" if stale_key_claimed_meanwhile else "b-K"
    assert got == KeyClaim(expected, not stale_key_claimed_meanwhile, T0)
    old = (await store.read(blob_name(0, 0))).data
    assert old.index(b'"op":"seal"') < old.index(b'"id":"b-K"')  # the void claim
    assert (await a.claim("K", FP, "a-K2", T0)).job_id == expected
    assert (await reference_winners(store))["K"] == expected


# --- ambiguous storage outcomes ---------------------------------------------------------------
async def test_an_append_that_raised_but_committed_is_still_ours() -> None:
    store = InMemoryStore()
    flaky = AmbiguousStore(store, commit=True)
    assert await index(flaky).claim("k", FP, "job-1", T0) == KeyClaim("job-1", True, T0)
    assert (await index(store).claim("k", FP, "job-2", T0)).job_id == "job-1"


async def test_an_append_that_raised_and_did_not_commit_claims_nothing() -> None:
    store = InMemoryStore()
    with pytest.raises(TransientStoreError):
        await index(AmbiguousStore(store, commit=False)).claim("k", FP, "job-1", T0)
    assert (await index(store).claim("k", FP, "job-2", T0)).created


async def test_a_failed_append_returns_the_claim_someone_else_made_meanwhile() -> None:
    store = InMemoryStore()
    other = index(store)
    flaky = AmbiguousStore(store, commit=False,
                           meanwhile=lambda: other.claim("k", FP, "job-other", T0))
    got = await index(flaky).claim("k", FP, "job-1", T0)
    assert got == KeyClaim("job-other", False, T0)


async def test_blocks_committed_twice_still_give_one_winner() -> None:
    store = InMemoryStore(max_blocks=6)
    doubled = DoubleStore(store)
    a = index(doubled, partitions=1, seal_blocks=3)
    b = index(store, partitions=1, seal_blocks=3)
    ids = [f"job-{i}" for i in range(20)]
    results = await asyncio.gather(*((a if i % 2 else b).claim("k", FP, job_id, T0)
                                     for i, job_id in enumerate(ids)))
    winner = assert_one_winner(list(results), ids)
    assert (await reference_winners(store))["k"] == winner
    more = await asyncio.gather(*(a.claim(f"x{i}", FP, f"x-{i}", T0) for i in range(6)))
    assert all(r.created for r in more)
    assert (await index(store, partitions=1).claim("k", FP, "late", T0)).job_id == winner


# --- expiry and purge -------------------------------------------------------------------------
async def test_a_claim_expires_after_the_window_and_memory_follows() -> None:
    store = InMemoryStore()
    clock = FakeClock()
    window, skew = timedelta(hours=1), timedelta(minutes=1)
    a = index(store, window=window, skew=skew, clock=clock)
    for i in range(5):
        await a.claim(f"k{i}", FP, f"old-{i}", T0)
    assert a.held_claims == 5
    clock.now = T0 + window - timedelta(seconds=1)
    assert await a.claim("k0", FP, "job-2", clock.now) == KeyClaim("old-0", False, T0)
    clock.now = T0 + window + timedelta(seconds=1)
    fresh = await a.claim("k0", FP, "new-0", clock.now)
    assert fresh == KeyClaim("new-0", True, clock.now)
    cold = index(store, window=window, skew=skew, clock=clock)
    assert (await cold.claim("k0", FP, "x", clock.now)).job_id == "new-0"
    clock.now = T0 + window + skew + timedelta(minutes=5)
    await a.claim("k9", FP, "job-9", clock.now)
    assert a.held_claims == 2  # new-0 and job-9: the old claims are forgotten
