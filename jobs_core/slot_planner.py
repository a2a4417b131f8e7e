"""Planning a slot's cycle: claim the slot, read the blobs that may hold due work (skipping
those whose summaries say they are done or idle), move jobs out of old blobs, and cut the due
jobs into batches. ``SlotPlanner`` is the part of ``Executor`` that does this.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from . import records
from .attempts import AttemptRunner
from .claims import ClaimManager
from .errors import JobsError
from .event_log import needs_publishing
from .ids import parse_shard_name
from .model import Job, JobStatus
from .moves import Mover, carry_due
from .plans import MAX_BATCHES_PER_CYCLE, Key, Plan, batches, due_key
from .shard_cache import ShardCache
from .shard_summary import summarize
from .slot_listing import SlotListing

log = logging.getLogger(__name__)


class SlotPlanner(AttemptRunner):
    """Mixed into ``Executor``: what planning needs of it is declared here."""

    owner: str
    claims: ClaimManager
    listing: SlotListing
    cache: ShardCache
    mover: Mover

    # --- plan --------------------------------------------------------------------------------
    async def plan(self, slot: int, now: datetime | None = None) -> Plan:
        """Claim ``slot`` (raises ``ClaimHeldError`` if another executor holds it), read its
        shards that may hold due work, move jobs out of old blobs, and split the due jobs into
        batches."""
        now = now or self.clock()
        began = time.perf_counter()
        claim = await self.claims.acquire(slot, self.owner, now)
        claim_ms = (time.perf_counter() - began) * 1000
        if self.events is not None:
            await self.events.flush()  # events whose publish failed earlier, if due
        s = self.settings
        next_wake = now + timedelta(seconds=s.max_sleep_seconds)
        due: list[tuple[Key, str]] = []  # (key, blob)
        pending = shards_read = 0
        touched: set[str] = set()
        errors: list[str] = []
        moves: list[tuple[str, list[Job], list[Job]]] = []  # blob, to move, half moved
        publish = False
        infos = await self.listing.blobs(slot, now, timedelta(seconds=s.max_sleep_seconds))
        listed = {info.name for info in infos}
        k = 0
        while True:
            if k == len(infos):  # blobs named by hints that the listing left out
                extra = await self.listing.by_name(touched - listed, slot, now)
                if not extra:
                    break
                infos.extend(extra)
                listed.update(info.name for info in extra)
            info = infos[k]
            k += 1
            shard = parse_shard_name(info.name)
            if shard is None:
                continue
            meta = info.metadata
            publish = publish or (self.events is not None and
                                  needs_publishing(meta, info.size, now))
            if meta.get("seen_size") == str(info.size) and meta.get("touch"):
                touched.update(meta["touch"].split(","))
            if meta.get("done_size") == str(info.size):
                self.cache.forget(info.name)
                continue
            if shard.key.bucket > now and info.name not in touched:
                next_wake = min(next_wake, shard.key.bucket)
                continue
            if self.cache.known_size(info.name) is None and _idle_until(meta, info.size, now):
                next_wake = min(next_wake, records.parse_ts(meta["min_due"]))
                pending += int(meta.get("pending", "0"))
                continue
            try:
                found = await self.cache.refresh_listed(info.name, info.size)
            except JobsError as exc:  # e.g. a record of a newer format: report, go on
                errors.append(f"{info.name}: {exc}")
                continue
            if found is None:  # purged (retention) since the listing
                continue
            state = found
            shards_read += 1
            touched |= state.touched
            old = carry_due(shard.key.bucket, s, now)
            leaving: list[Job] = []
            half_moved: list[Job] = []
            for job in state.pending():
                pending += 1
                key = due_key(job, now, self._abandoned)
                if key is not None:
                    due.append((key, info.name))
                elif job.moving_to is not None:
                    half_moved.append(job)
                elif job.status.is_waiting or job.status is JobStatus.PAUSED:
                    if old:
                        leaving.append(job)  # (a paused job moves on too: it may wait long)
                    elif job.status.is_waiting:
                        next_wake = min(next_wake, job.due_at)
                else:
                    next_wake = min(next_wake, self._abandon_at(job))
            if leaving or half_moved:
                moves.append((info.name, leaving, half_moved))
            await self._update_summary(info.name, shard.key.bucket, info.size, meta, state, now)
        moved = 0
        for blob, leaving, half_moved in moves:
            try:
                moved += await self.mover.finish(blob, half_moved)
                moved += await self.mover.move(blob, leaving)
            except JobsError as exc:  # the next cycle finishes what this one could not
                errors.append(f"moving jobs out of {blob}: {exc}")
        if moved:
            next_wake = now  # moved jobs may be due in blobs this cycle did not read
        due.sort()
        limit = s.batch_size * MAX_BATCHES_PER_CYCLE
        if len(due) > limit:
            next_wake = now  # more is due than one cycle takes: come straight back
        cut = batches(slot, claim.epoch, now, due[:limit], s.batch_size, plan=self._token())
        return Plan(slot, self.owner, claim.epoch, now, cut, max(next_wake, now), len(due),
                    pending, shards_read, errors, claim_ms, publish)

    async def _update_summary(self, blob: str, bucket: datetime, size: int,
                              listed: dict[str, str], state: Any, now: datetime) -> None:
        bucket_end = bucket + timedelta(minutes=self.settings.bucket_minutes)
        closed = bucket_end + timedelta(seconds=self.settings.abandon_grace_seconds) < now
        summary = summarize(listed, state, size, closed, now, self.settings.bucket_minutes)
        if summary["running"] != "0" or (summary["min_due"] and
                                         records.parse_ts(summary["min_due"]) <= now):
            return  # starts and outcomes are about to change it: a summary would be stale at
            # once (and a planner reads a blob with due or running work anyway); it is written
            # once the blob is idle or done
        if summary != listed:
            try:
                await self.store.set_metadata(blob, summary)
            except JobsError as exc:  # advisory only: never fail a cycle for it
                log.warning("could not update the summary of %s: %s", blob, exc)


def _idle_until(meta: dict[str, str], size: int, now: datetime) -> bool:
    """True when the blob's summary is current and says nothing is due or running before its
    ``min_due``, so a planner that has not cached the blob can skip reading it."""
    if meta.get("seen_size") != str(size) or meta.get("running") != "0" or not meta.get("min_due"):
        return False
    return records.parse_ts(meta["min_due"]) > now
