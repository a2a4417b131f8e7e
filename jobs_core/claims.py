"""Slot ownership: one small claim blob per slot, separate from the shard logs.

Shard blobs change their ETag on every append, so they cannot carry ownership. The claim blob
``claims/sNNN`` holds metadata ``owner``, ``epoch`` and ``expires``; it is written only with
``If-Match`` on the ETag just read, so exactly one of several racing claimers wins (the others
get ``ConcurrencyConflictError``). A claim expires unless renewed; a different owner taking
over an expired claim increments ``epoch``. Executors stamp their epoch on every execution
record, and replay ignores execution records of a lower epoch than one already seen in the
shard: a stale owner cannot record outcomes once the new owner has written (fencing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import ClaimHeldError, ConcurrencyConflictError
from .ids import claim_blob
from .records import parse_ts, ts
from .store import JobStore


@dataclass(frozen=True, slots=True)
class Claim:
    slot: int
    owner: str
    epoch: int
    expires: datetime
    etag: str


class ClaimManager:
    def __init__(self, store: JobStore, *, ttl: float = 120.0) -> None:
        self._store = store
        self._ttl = timedelta(seconds=ttl)
        self._held: dict[int, Claim] = {}

    async def acquire(self, slot: int, owner: str, now: datetime) -> Claim:
        """Claim (or renew) ``slot`` for ``owner``. Raises ``ClaimHeldError`` when another
        owner holds an unexpired claim or wins the race for it."""
        name = claim_blob(slot)
        held = self._held.get(slot)
        if held is not None and held.owner == owner:
            try:  # renew blind with the ETag we hold: one request in the common case
                return await self._write(slot, owner, held.epoch, now, held.etag)
            except ConcurrencyConflictError:
                self._held.pop(slot, None)
        current = await self._store.read_claim(name)
        try:
            if current is None:
                return await self._write(slot, owner, 1, now, None)
            meta = current.metadata
            holder, epoch = meta.get("owner", ""), int(meta.get("epoch", "0"))
            expires = parse_ts(meta["expires"]) if "expires" in meta else now
            if holder == owner:
                return await self._write(slot, owner, epoch, now, current.etag)
            if expires > now:
                raise ClaimHeldError(slot, holder, ts(expires))
            return await self._write(slot, owner, epoch + 1, now, current.etag)
        except ConcurrencyConflictError:
            latest = await self._store.read_claim(name)
            meta = latest.metadata if latest else {}
            raise ClaimHeldError(slot, meta.get("owner", "?"), meta.get("expires", "?")) from None

    async def _write(self, slot: int, owner: str, epoch: int, now: datetime,
                     etag: str | None) -> Claim:
        expires = now + self._ttl
        meta = {"owner": owner, "epoch": str(epoch), "expires": ts(expires)}
        new_etag = await self._store.write_claim(claim_blob(slot), meta, etag=etag)
        claim = Claim(slot, owner, epoch, expires, new_etag)
        self._held[slot] = claim
        return claim
