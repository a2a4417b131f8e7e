"""What a planning cycle lists of its slot: today's blobs, and the past days that still hold
work, not a year of future buckets (issue #13, "a year of pending work").

Shard names sort by time (``shards/s000/20261202T1400-0000.jsonl``), and a planner never reads
a future bucket before its time unless a ``touch`` hint names it (the executor fetches those by
name). So a cycle needs, with their sizes and summaries:

* the blobs of today (UTC), and of tomorrow when the cycle's longest sleep crosses midnight;
* the blobs of earlier days that are not done (waiting, running, or not yet summarised).

New blobs are only ever created for the current bucket or a later one (a job's bucket is that
of ``max(due, now)``; moves go to the current bucket or the job's own), so the set of past days
changes only by retention deleting them, or by a keyed add into the bucket of an earlier claim,
which also writes a ``touch`` hint into the current bucket. The rest is covered by a full
listing every ``FULL_EVERY`` per process (and on a process's first cycle): it also finds
future blobs with state-change events not yet published from the log (events_of a job
scheduled far ahead normally go out eagerly; the log publisher is the backstop).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .errors import BlobNotFoundError
from .ids import parse_shard_name, slot_prefix
from .store import BlobInfo, JobStore

FULL_EVERY = timedelta(minutes=10)


def _day(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


def _done(info: BlobInfo) -> bool:
    return info.metadata.get("done_size") == str(info.size)


class SlotListing:
    """Per slot and process: when the last full listing was, and the past days with work."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._full_at: dict[int, datetime] = {}
        self._busy_days: dict[int, set[str]] = {}  # past days with a blob not done
        self.full_listings = 0  # (figures for tests and the bench)
        self.day_listings = 0

    async def blobs(self, slot: int, now: datetime, horizon: timedelta) -> list[BlobInfo]:
        """The slot's blobs a cycle at ``now`` needs (``horizon``: its longest sleep)."""
        last = self._full_at.get(slot)
        if last is None or now - last >= FULL_EVERY or now < last:
            infos = await self.store.list(slot_prefix(slot))
            self.full_listings += 1
            self._full_at[slot] = now
            self._busy_days[slot] = self._past_busy(infos, now)
            return infos
        today, until = _day(now), _day(now + horizon)
        days = sorted(self._busy_days.get(slot, set()) | {today, until})
        infos = []
        for day in days:
            infos.extend(await self.store.list(f"{slot_prefix(slot)}{day}"))
            self.day_listings += 1
        self._busy_days[slot] = self._past_busy(infos, now)
        return infos

    async def by_name(self, names: set[str], slot: int, now: datetime) -> list[BlobInfo]:
        """The blobs of ``slot`` among ``names`` (touch hints the listing left out). A blob of
        a past day that is not done (revived by a retry or a lost add completed late) makes
        its day busy: the partial listings list it from now on, also once the hint's own blob
        is done and its summary no longer carries the hint (from the hunt of stop 27: a
        retried job's next attempt waited for the next full listing, up to 10 minutes)."""
        out = []
        for name in sorted(names):
            shard = parse_shard_name(name)
            if shard is None or shard.key.slot != slot:
                continue
            try:
                info = await self.store.stat(name)
            except BlobNotFoundError:  # purged, or never created
                continue
            out.append(info)
            self._busy_days.setdefault(slot, set()).update(self._past_busy([info], now))
        return out

    @staticmethod
    def _past_busy(infos: list[BlobInfo], now: datetime) -> set[str]:
        """Days up to today with a blob not done (today's too: it is a past day tomorrow)."""
        today = _day(now)
        busy = set()
        for info in infos:
            shard = parse_shard_name(info.name)
            if shard is not None and _day(shard.key.bucket) <= today and not _done(info):
                busy.add(_day(shard.key.bucket))
        return busy

    def forget(self, slot: int) -> None:
        """The next cycle lists the whole slot again."""
        self._full_at.pop(slot, None)
