"""Idempotency keys: a durable, linearizable "first claim wins" index.

A key's home depends on the key alone (not on the job's due time, the time of the request or
any per-process state), so every request with the same key meets the same log.

Format: see ``key_blobs.py`` (blob names, the ``key`` and ``seal`` records, finality).

Meaning
-------
A claim counts for a request made at time ``t`` when its ``at`` is later than
``t - window``. The answer for a key at ``t`` is the *first* counting claim in the partition's
order. Its ``id`` is the job the key belongs to; a different ``fp`` is a conflict.

Algorithm (``claim``)
---------------------
1. Answer from memory when this process's view already holds a counting claim of the key
   (no request). Otherwise bring the view up to date: list the partition when the view is cold
   or its current blob turned out final (making every blob below the highest final first:
   read it to its seal, appending a seal if it has none), then tail-read the current blob from
   the offset already replayed.
2. Key claimed: same fp -> that job (``created=False``); different fp ->
   ``IdempotencyConflictError``. Nothing is written.
3. Otherwise append our claim to the current blob (group-committed). A refused block
   (``BlockLimitError``) marks the blob full; a result over ``seal_blocks``/``seal_bytes``
   makes us append a seal (a full blob counts as sealed).
4. Confirm: replay up to and including our block (no read when the block directly follows
   what we had replayed and holds only our record) and answer as in 2. If our record turned
   out void (after a seal), claim again in the next blob. A storage error from the append is
   ambiguous: we re-read, answer if the key is now claimed (by us or anyone), else re-raise.

Why it is linearizable
----------------------
The view of a process is always a *prefix* of the partition's total order: blobs are replayed in
index order and a blob is left only once it is final, and within a blob bytes are only ever
appended. The first counting claim of a key in a prefix is therefore the first in every longer
prefix: records appended later sort after it and cannot take its place. So the answer, once
given, never changes (for requests within the window), whichever process gives it, and our own
record, once replayed, proves the prefix up to it is complete. Ambiguous storage outcomes (an
append that raised although it committed, a block committed twice) only add records; a
duplicate sorts after its original, and a claim that lands late sorts after whatever won.

Expiry and purge
----------------
A claim stops counting ``window`` after its ``at``: a later request with the key creates a new
job. A process drops claims older than ``window + skew`` from memory; ``purge`` deletes sealed
blobs (never the highest of a partition) whose newest record is older than ``window + skew``,
with a conditional delete on the listed ETag. Neither changes any answer for a request whose
``at`` is the current time (within ``skew``), because such claims no longer count for it.
Expiry is judged per request, not chained through earlier winners (a chain would make answers
depend on blobs already purged): for the few seconds after a winner stops counting, a claim that
lost a race to it can be the first counting one. Its job was never added; the caller adds it
under that id, as after a crash between claim and add. Blobs that filled up without a seal
record are not purged (sealing happens long before the 50,000-block limit).

Request costs
-------------
Key already known to this process: none. Warm claim: 1 tail read + 1 append (+1 tail read when
other records landed between the two, e.g. under concurrency). Cold partition: 1 list + 1 read
per blob of the partition, then as warm. Rollover: 1 seal append + 1 list, once per blob.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import records
from .clock import utcnow
from .errors import (
    BlobNotFoundError,
    BlockLimitError,
    IdempotencyConflictError,
    StoreError,
)
from .group_commit import GroupCommitter
from .key_blobs import (
    PREFIX,
    aware,
    blob_name,
    claim_record,
    parse_blob_name,
    parse_record,
    partition_of,
    seal_record,
)
from .key_purge import KeyBlobPurge
from .store import AppendResult, JobStore

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_SKEW = timedelta(minutes=5)
MAX_ATTEMPTS = 64  # appends per claim before giving up (each failed one moved to a new blob)
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class KeyClaim:
    job_id: str  # the job the key belongs to (the first counting claim)
    created: bool  # True when that claim is the caller's (job_id is the one passed in)
    claimed_at: datetime  # the winning claim's time


@dataclass(slots=True)
class _Claim:
    job_id: str
    fp: str
    at: datetime


@dataclass(slots=True)
class _Blob:
    index: int
    offset: int = 0  # bytes replayed (at a line boundary)
    sealed: bool = False  # a seal record was replayed: the rest is void
    full: bool = False  # the blob refused a block: nothing can follow
    final: bool = False  # sealed, or full and read to its end, or gone
    seal_sent: bool = False  # this process appended a seal already


@dataclass
class _Partition:
    part: int
    blobs: dict[int, _Blob] = field(default_factory=dict)
    current: int = 0  # highest known blob: the one claims go to
    listed: bool = False  # False: cold (list before the next read)
    claims: dict[str, list[_Claim]] = field(default_factory=dict)  # valid, in log order
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    started: int = 0  # refreshes started
    done: int = 0  # number of the last refresh that completed

    def winner(self, key: str, at: datetime, window: timedelta) -> _Claim | None:
        for claim in self.claims.get(key, ()):
            if claim.at > at - window:
                return claim
        return None

    def blob(self, index: int) -> _Blob:
        blob = self.blobs.get(index)
        if blob is None:
            blob = self.blobs[index] = _Blob(index)
        return blob


class KeyIndex:
    """Idempotency keys -> job ids, first claim wins (see the module docstring)."""

    def __init__(self, store: JobStore, committer: GroupCommitter, *, partitions: int = 64,
                 seal_blocks: int = 40_000, seal_bytes: int = 4 * 1024 * 1024,
                 window: timedelta = DEFAULT_WINDOW, skew: timedelta = DEFAULT_SKEW,
                 clock: Clock = utcnow) -> None:
        if not 1 <= partitions <= 1000:
            raise ValueError(f"partitions must be 1..1000, got {partitions}")
        if window <= timedelta(0) or skew < timedelta(0):
            raise ValueError("window must be positive and skew not negative")
        self.store = store
        self.committer = committer
        self.partitions = partitions
        self.seal_blocks = seal_blocks
        self.seal_bytes = seal_bytes
        self.window = window
        self.skew = skew
        self.clock = clock
        self._parts: dict[int, _Partition] = {}
        self._pruned_at: datetime | None = None
        self._purge = KeyBlobPurge(store, window + skew, self._partition)

    # --- public ------------------------------------------------------------------------------
    def partition(self, key: str) -> int:
        return partition_of(key, self.partitions)

    @property
    def held_claims(self) -> int:
        """Claims this process holds in memory (all partitions)."""
        return sum(len(c) for p in self._parts.values() for c in p.claims.values())

    async def claim(self, key: str, fp: str, job_id: str, at: datetime) -> KeyClaim:
        """Claim ``key`` for ``job_id`` (``at``: the request time, i.e. now). Returns the job
        the key belongs to; raises ``IdempotencyConflictError`` when that job was claimed with
        another fingerprint, or a ``StoreError`` when storage failed and, as far as a re-read
        can tell, nobody holds the key (our append may still land later, and win). ``at`` more
        than ``window`` in the past is a ``ValueError``."""
        at = aware(at)
        if at <= self.clock() - self.window - self.skew:
            raise ValueError(f"claim time {at.isoformat()} is more than the window in the past")
        self._prune()
        p = self._partition(self.partition(key))
        found = p.winner(key, at, self.window)
        if found is not None:  # a prefix's first claim stays first: no need to read
            return self._answer(key, fp, job_id, found)
        await self._refresh(p)
        record = claim_record(key, fp, job_id, at)
        block = records.encode_block([record])
        for _ in range(MAX_ATTEMPTS):
            found = p.winner(key, at, self.window)
            if found is not None:
                return self._answer(key, fp, job_id, found)
            index = p.current
            name = blob_name(p.part, index)
            try:
                result = await self.committer.append(name, [record],
                                                     create_metadata=self._metadata(p, index))
            except BlockLimitError:
                # full (the adapter may have retried a block that did commit: the read finds it)
                p.blob(index).full = True
                await self._refresh(p)
                continue
            except StoreError:
                # ambiguous: our claim may have landed, or someone else's claim may be there now
                await self._refresh(p)
                found = p.winner(key, at, self.window)
                if found is not None:
                    return self._answer(key, fp, job_id, found)
                raise
            if not self._apply_own(p, index, result, block):
                await self._refresh(p)
            if result.block_count >= self.seal_blocks or result.size >= self.seal_bytes:
                await self._seal(p, index)
        raise StoreError(f"idempotency key {key!r}: no claim landed after {MAX_ATTEMPTS} "
                         "appends (the key blobs keep rolling over)")

    async def purge(self, now: datetime) -> int:
        """Delete sealed key blobs (never the highest of a partition) whose newest record is
        older than ``window + skew`` at ``now``. Returns how many this call deleted
        (``key_purge.py``)."""
        return await self._purge.run(now)

    # --- answering ---------------------------------------------------------------------------
    @staticmethod
    def _answer(key: str, fp: str, job_id: str, found: _Claim) -> KeyClaim:
        if found.fp != fp:
            raise IdempotencyConflictError(key, found.job_id)
        return KeyClaim(found.job_id, found.job_id == job_id, found.at)

    def _partition(self, part: int) -> _Partition:
        p = self._parts.get(part)
        if p is None:
            p = self._parts[part] = _Partition(part)
        return p

    def _metadata(self, p: _Partition, index: int) -> dict[str, str]:
        return {"kind": "keys", "part": str(p.part), "index": str(index)}

    def _prune(self) -> None:
        """Forget claims that no longer count for any request made from now on (a sweep over
        every partition, at most every ``min(window / 16, 10 min)``)."""
        now = self.clock()
        every = min(self.window / 16, timedelta(minutes=10))
        if self._pruned_at is not None and now - self._pruned_at < every:
            return
        self._pruned_at = now
        cutoff = now - self.window - self.skew
        for p in self._parts.values():
            for key in list(p.claims):
                kept = [c for c in p.claims[key] if c.at > cutoff]
                if kept:
                    p.claims[key] = kept
                else:
                    del p.claims[key]

    # --- the view ----------------------------------------------------------------------------
    async def _refresh(self, p: _Partition) -> None:
        """Bring the view up to date with a sync that started after this call (concurrent
        callers share one)."""
        need = p.started + 1
        async with p.lock:
            if p.done >= need:
                return
            p.started += 1
            number = p.started
            await self._sync(p)
            p.done = number

    async def _sync(self, p: _Partition) -> None:
        listed = False
        if not p.listed:
            await self._list(p)
            listed = True
        while True:
            for index in sorted(i for i, b in p.blobs.items() if i < p.current and not b.final):
                await self._finalize(p, p.blobs[index])
            cur = p.blob(p.current)
            if not cur.final:
                if not await self._tail(p, cur):
                    if listed:
                        return  # not created yet: the next claim creates it
                    # never created, or deleted (purged) while this view was idle: ask
                    await self._list(p)
                    listed = True
                    if p.current == cur.index:
                        return  # still the highest: not created yet
                    continue
                if not cur.final:
                    return
            if not listed:
                await self._list(p)
                listed = True
                if p.current > cur.index:
                    continue
            if p.current == cur.index:  # nothing after the final blob yet: open the next one
                p.current += 1
                p.blob(p.current)
                return

    async def _list(self, p: _Partition) -> None:
        found: set[int] = set()
        for info in await self.store.list(f"{PREFIX}p{p.part:03d}-"):
            parsed = parse_blob_name(info.name)
            if parsed is not None and parsed[0] == p.part:
                found.add(parsed[1])
        highest = max(found, default=-1)
        for index in list(p.blobs):
            if index not in found and index < highest:  # purged: its claims no longer count
                del p.blobs[index]
        old_current = p.current if p.listed else -1
        for index in found:
            # a listed blob below what this view already passed is one it dropped as final
            if index not in p.blobs and index > old_current:
                p.blobs[index] = _Blob(index)
        p.current = max(p.current, highest)
        p.blob(p.current)
        p.listed = True

    async def _finalize(self, p: _Partition, blob: _Blob) -> None:
        """Make a blob below the current one final: read it to its seal, sealing it if needed
        (a blob after it exists, so nothing may be added to it any more)."""
        if not await self._tail(p, blob):
            blob.final = True  # deleted (purged): its claims no longer count
            return
        if blob.final:
            return
        await self._seal(p, blob.index)
        if not await self._tail(p, blob):
            blob.final = True
        if not blob.final:
            raise StoreError(f"{blob_name(p.part, blob.index)}: could not seal the key blob")

    async def _seal(self, p: _Partition, index: int) -> None:
        blob = p.blob(index)
        if blob.final or blob.full or blob.seal_sent:
            return
        try:
            await self.committer.append(blob_name(p.part, index), [seal_record(self.clock())],
                                        create_metadata=self._metadata(p, index))
            blob.seal_sent = True
        except BlockLimitError:
            blob.full = True
        except StoreError as exc:  # the next append over the limit seals it again
            log.warning("key blob %s: seal failed: %s", blob_name(p.part, index), exc)

    async def _tail(self, p: _Partition, blob: _Blob) -> bool:
        """Replay the new whole lines of ``blob``. False if the blob does not exist."""
        name = blob_name(p.part, blob.index)
        start = blob.offset
        try:
            result = await self.store.read(name, start)
        except BlobNotFoundError:
            return False
        if result.size < start:
            log.error("key blob %s shrank from %d to %d bytes (deleted and recreated?); "
                      "ignoring its new content", name, start, result.size)
            blob.final = True
            return True
        data = result.data
        end = data.rfind(b"\n") + 1  # whole lines only: a torn tail waits
        self._feed(p, blob, data[:end], name)
        if blob.full:  # nothing can follow: a torn tail stays torn
            blob.offset = start + len(data)
            blob.final = True
        else:
            blob.offset = start + end
        return True

    def _apply_own(self, p: _Partition, index: int, result: AppendResult, block: bytes) -> bool:
        """Replay our own block without reading when it directly follows what the view holds
        and holds only our record. False when a read is needed."""
        blob = p.blobs.get(index)
        if blob is None or p.lock.locked():
            return False
        if any(not b.final for i, b in p.blobs.items() if i < index):
            return False  # the view must stay a prefix: lower blobs first
        if blob.offset >= result.size:
            return True  # already replayed
        if blob.final or blob.offset != result.offset or result.size - result.offset != len(block):
            return False
        self._feed(p, blob, block, blob_name(p.part, index))
        blob.offset = result.size
        return True

    def _feed(self, p: _Partition, blob: _Blob, data: bytes, name: str) -> None:
        if blob.sealed:
            return
        cutoff = self.clock() - self.window - self.skew
        for raw in data.split(b"\n"):
            record = parse_record(raw, name)
            if record is None:
                continue
            if record["op"] == "seal":
                blob.sealed = blob.final = True
                return  # everything after the first seal is void
            claim = _Claim(record["id"], record["fp"], record["at"])
            if claim.at <= cutoff:
                continue  # no longer counts for any request from now on
            held = p.claims.setdefault(record["k"], [])
            if not any(c.job_id == claim.job_id for c in held):  # a duplicate sorts later
                held.append(claim)
