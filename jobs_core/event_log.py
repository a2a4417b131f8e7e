"""State-change events published from the job log: delivery that survives crashes.

The shard log already holds every change of every job, in order: it is the outbox. Once per
cycle a slot's ``LogPublisher`` reads what each of its blobs gained since its **cursor**,
replays those records into events (``events_of``: the same versioned format and the same event
ids as the eager sends of ``events.py``, so subscribers deduplicate by id), sends them, and
only then moves the cursor. A crash anywhere before the cursor moves means sending again,
never losing.

The cursor lives in the shard blob's own metadata (no extra blob, no extra read: the listing
that finds the blobs returns it):

    events_at     byte offset up to which every queue has the blob's events. New blobs are
                  created with ``0``; a blob without it predates log publishing (its events
                  went out the old way) and starts at its size when first seen.
    events_lag    queues that refused their messages, each with its own offset
                  (``queue=offset;...``): a dead queue holds back its own cursor, not the
                  others'. At most ``MAX_LAGGING_QUEUES`` per blob (the metadata is small);
    events_held   set when more queues than that are behind (a queue-service outage with
                  many notify queues): then ``events_at`` itself is held back, to the
                  offset that leaves at most ``MAX_LAGGING_QUEUES`` with an older one of their
                  own, and the blob is published again only when its retry is due. The
                  queues that were sent the held-back events get them again (duplicates, by
                  id); no queue is given up.
    events_retry  when the lagging queues are tried again (exponential back-off, 1 s doubling
    events_fails  to 30 s), and how many tries in a row failed.

Metadata writes are not conditional. A summary write (``shard_summary.py``) made from an older
listing can put an older cursor back: that only re-sends events (duplicates), it never skips
one, because only a publisher that has sent events moves a cursor forward.

Cost: per cycle one listing; per blob that changed, one ranged read of the new bytes (the whole
blob the first time a process publishes it; after that, from where this process last read)
and one metadata write; per queue and blob, one send per ~32 KiB of events. Nothing per job
beyond the events themselves. Publishing never fails or delays a job: it runs beside
the cycle's batches, and every error is reported, not raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import records
from .backoff import backoff
from .clock import Clock, utcnow
from .errors import BlobNotFoundError, JobsError
from .events import EventSink, EventState, JobEvent, pack, route
from .ids import parse_shard_name, slot_prefix
from .model import Job
from .shard_state import ShardState
from .store import BlobInfo, JobStore

log = logging.getLogger(__name__)
EVENTS_AT = "events_at"
EVENTS_LAG = "events_lag"
EVENTS_RETRY = "events_retry"
EVENTS_FAILS = "events_fails"
EVENTS_HELD = "events_held"
EVENT_KEYS = (EVENTS_AT, EVENTS_LAG, EVENTS_RETRY, EVENTS_FAILS, EVENTS_HELD)
MAX_LAGGING_QUEUES = 16  # per blob; 16 x (63-char name + offset) stays far below 8 KiB
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0  # a dead queue costs a blob one send and one metadata write per 30 s
MAX_STATES = 64  # replayed blob states kept per process (state at its cursor)


def events_of(record: records.Record, before: Job | None, after: Job | None) -> list[JobEvent]:
    """The events one applied record produces (``ShardState.observer`` arguments). The same
    events, with the same ids, as the scheduler and the executor send eagerly."""
    at = record.at
    if isinstance(record, records.Add):
        if after is None or record.source is not None:
            return []  # a job carried to another blob (moves.py) is not a change
        return [JobEvent.of(after, EventState.SCHEDULED, at)]
    if isinstance(record, records.Retry):  # (``before`` is None where the replay had dropped it)
        return [] if after is None else [JobEvent.of(after, EventState.SCHEDULED, at)]
    if after is None or before is None:
        return []
    if isinstance(record, records.Cancel):
        return [JobEvent.of(after, EventState.CANCELLED, at)]
    if isinstance(record, records.RunNow | records.Reschedule | records.Resume | records.Update |
                  records.Misfire):
        return [JobEvent.of(after, EventState.SCHEDULED, at)]
    if isinstance(record, records.Pause):
        return [JobEvent.of(after, EventState.PAUSED, at)]
    if isinstance(record, records.Start):
        return [JobEvent.of(after, EventState.STARTED, at)]
    if isinstance(record, records.Ok):
        events = [JobEvent.of(before, EventState.SUCCEEDED, at, result=record.result)]
    elif isinstance(record, records.Fail):
        if record.retry_at is not None:
            return [JobEvent.of(before, EventState.RETRYING, at, error=record.error,
                                retry_at=record.retry_at, due_at=record.retry_at)]
        events = [JobEvent.of(before, EventState.FAILED, at, error=record.error)]
    else:
        return []  # move, moved, ptr, touch, full: where a job lives is not a change
    if record.next_due is not None:
        events.append(JobEvent.of(before, EventState.SCHEDULED, at, attempt=0,
                                  run=before.runs + 1, due_at=record.next_due))
    return events


# --- the cursor in a blob's metadata ------------------------------------------------------
def published_at(meta: dict[str, str], size: int) -> int:
    """Where the blob's events stand (a blob from before log publishing: its size)."""
    raw = meta.get(EVENTS_AT)
    try:
        return min(size, int(raw)) if raw is not None else size
    except ValueError:
        return 0  # unreadable: send again from the start rather than skip anything


def lagging(meta: dict[str, str]) -> dict[str, int]:
    """Queues behind the blob's cursor, with their own offsets."""
    out: dict[str, int] = {}
    for part in (meta.get(EVENTS_LAG) or "").split(";"):
        queue, _, offset = part.rpartition("=")
        if queue and offset.isdigit():
            out[queue] = int(offset)
    return out


def retry_due(meta: dict[str, str], now: datetime) -> bool:
    raw = meta.get(EVENTS_RETRY)
    try:
        return raw is None or records.parse_ts(raw) <= now
    except ValueError:
        return True


def needs_publishing(meta: dict[str, str], size: int, now: datetime) -> bool:
    """Whether a blob has events not yet sent to some queue that may be tried now (a held
    cursor waits for its retry: sending again from it repeats events to the healthy
    queues)."""
    if meta.get(EVENTS_HELD):
        return retry_due(meta, now)
    return published_at(meta, size) < size or (bool(lagging(meta)) and retry_due(meta, now))


def undelivered(meta: dict[str, str], size: int) -> bool:
    """Whether a blob still holds events some queue has not had (retention keeps it)."""
    return published_at(meta, size) < size or bool(lagging(meta))


@dataclass
class PublishReport:
    blobs_read: int = 0
    events: int = 0  # events derived from the log (each counted once, whatever its queues)
    messages_sent: int = 0
    send_failures: int = 0
    lagging: dict[str, int] = field(default_factory=dict)  # queue -> blobs it is behind in
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"blobs_read": self.blobs_read, "events": self.events,
                "messages_sent": self.messages_sent, "send_failures": self.send_failures,
                "lagging": dict(self.lagging), "errors": list(self.errors)}


@dataclass
class _Range:
    """The events of one publish of one blob, by queue."""
    start: int  # the blob's cursor before
    end: int  # ... and after (whole lines only)
    tried: dict[str, int]  # lagging queues tried this time -> their offsets
    skip: set[str]  # lagging queues not tried this time (their back-off has not passed)
    by_queue: dict[str, list[JobEvent]] = field(default_factory=dict)


class LogPublisher:
    """Publishes a slot's state-change events from its shard logs (see the module doc)."""

    def __init__(self, store: JobStore, sink: EventSink, default_queue: str | None,
                 clock: Clock = utcnow, max_states: int = MAX_STATES,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._sink = sink
        self._default_queue = default_queue
        self._clock = clock
        self._states: OrderedDict[str, tuple[int, ShardState]] = OrderedDict()
        self._max_states = max_states
        self._dead: dict[str, float] = {}  # queue -> monotonic time before which not to try
        self._monotonic = monotonic

    async def publish(self, slot: int) -> PublishReport:
        report = PublishReport()
        now = self._clock()
        try:
            listed = await self._store.list(slot_prefix(slot))
        except JobsError as exc:
            report.errors.append(f"listing slot {slot}: {exc}")
            return report
        for info in listed:
            if parse_shard_name(info.name) is None:
                continue
            behind = lagging(info.metadata)
            if needs_publishing(info.metadata, info.size, now):
                try:
                    behind = await self._publish_blob(info, now, report)
                except BlobNotFoundError:
                    self._states.pop(info.name, None)  # purged since the listing
                    behind = {}
                except JobsError as exc:
                    report.errors.append(f"{info.name}: {exc}")
            for queue in behind:
                report.lagging[queue] = report.lagging.get(queue, 0) + 1
        return report

    async def _publish_blob(self, info: BlobInfo, now: datetime,
                            report: PublishReport) -> dict[str, int]:
        """Publish one blob's new events; the queues still behind in it afterwards."""
        meta = info.metadata
        start = published_at(meta, info.size)
        behind = lagging(meta)
        tried = dict(behind) if retry_due(meta, now) else {}
        span = await self._replay(info.name, start, tried, set(behind) - set(tried), report)
        failed = await self._send(span, report)
        lag = {q: off for q, off in behind.items() if q not in tried or q in failed}
        for queue in failed:
            lag[queue] = min(lag.get(queue, start), tried.get(queue, start))
        return await self._save(info.name, meta, span.end, lag, now, failed)

    async def _replay(self, blob: str, start: int, tried: dict[str, int], skip: set[str],
                      report: PublishReport) -> _Range:
        """Events of the records from ``start`` (and, for each lagging queue tried, from its
        own offset) to the blob's last whole line."""
        low = min([start, *tried.values()])
        cached = self._states.pop(blob, None)
        if cached is not None and cached[0] <= low:  # replay on from where this process was
            offset, state = cached
        else:
            state, offset = ShardState(blob, keep_finished=False), 0
        data = (await self._store.read(blob, offset)).data
        report.blobs_read += 1
        span = _Range(start, offset, tried, skip)
        line_at = offset
        emitted: list[JobEvent] = []

        def observe(record: records.Record, before: Job | None, after: Job | None) -> None:
            emitted.extend(events_of(record, before, after))

        for raw in data.split(b"\n")[:-1]:  # the last piece is a torn tail (or empty)
            if line_at >= low:  # (records before ``low`` only build the state)
                emitted.clear()
                state.observer = observe
            state.feed_lines([raw])
            state.observer = None
            if emitted:
                self._route(span, line_at, emitted, report)
                emitted.clear()
            line_at += len(raw) + 1
        span.end = max(line_at, start)
        self._keep(blob, line_at, state)
        return span

    def _route(self, span: _Range, line_at: int, events: list[JobEvent],
               report: PublishReport) -> None:
        if not events:
            return
        if line_at >= span.start:
            report.events += len(events)
        for queue, evs in route(events, self._default_queue).items():
            if queue not in span.skip and line_at >= span.tried.get(queue, span.start):
                span.by_queue.setdefault(queue, []).extend(evs)

    async def _send(self, span: _Range, report: PublishReport) -> set[str]:
        """Send each queue's events; the queues that failed."""
        failed: set[str] = set()

        async def one(queue: str, events: list[JobEvent]) -> None:
            if self._dead.get(queue, 0.0) > self._monotonic():
                failed.add(queue)  # failed moments ago in this process: don't hammer it
                return
            messages = pack(events)
            try:
                await self._sink.send(queue, messages)
            except Exception as exc:  # any failure: the queue lags, nothing else does
                failed.add(queue)
                report.send_failures += 1
                self._dead[queue] = self._monotonic() + RETRY_BASE_SECONDS
                log.warning("events: %d message(s) to queue %r failed (%s: %s); it stays "
                            "behind until a retry succeeds", len(messages), queue,
                            type(exc).__name__, exc)
                return
            self._dead.pop(queue, None)
            report.messages_sent += len(messages)

        await asyncio.gather(*(one(q, evs) for q, evs in span.by_queue.items()))
        for queue in span.tried:  # lagging queues with nothing to send still had a turn
            if queue not in span.by_queue and self._dead.get(queue, 0.0) > self._monotonic():
                failed.add(queue)
        return failed

    async def _save(self, blob: str, meta: dict[str, str], end: int, lag: dict[str, int],
                    now: datetime, failed: set[str]) -> dict[str, int]:
        # (the service lists an empty value as None: write it back as the empty string)
        new = {k: v or "" for k, v in meta.items() if k not in EVENT_KEYS}
        behind = dict(lag)
        held = len(lag) > MAX_LAGGING_QUEUES
        if held:  # hold the cursor where at most MAX_LAGGING_QUEUES start before it
            cut = sorted(lag.values())[MAX_LAGGING_QUEUES]
            lag = {q: off for q, off in lag.items() if off < cut}
            end = min(end, cut)
            new[EVENTS_HELD] = "1"
            log.warning("events: %d queues are behind in %s, more than its metadata names: "
                        "its cursor is held at %d (the queues sent later events get them "
                        "again)", len(behind), blob, end)
        new[EVENTS_AT] = str(end)
        if lag or held:
            fails = int(meta.get(EVENTS_FAILS, "0") or 0) + 1 if failed else 0
            delay = backoff(fails, RETRY_BASE_SECONDS, RETRY_MAX_SECONDS)
            new[EVENTS_LAG] = ";".join(f"{q}={off}" for q, off in sorted(lag.items()))
            new[EVENTS_RETRY] = records.ts(now + timedelta(seconds=delay))
            new[EVENTS_FAILS] = str(fails)
        if new != meta:
            await self._store.set_metadata(blob, new)
        return behind

    def _keep(self, blob: str, offset: int, state: ShardState) -> None:
        self._states[blob] = (offset, state)
        self._states.move_to_end(blob)
        while len(self._states) > self._max_states:
            self._states.popitem(last=False)


__all__ = ["EVENT_KEYS", "LogPublisher", "PublishReport", "events_of", "needs_publishing",
           "published_at", "undelivered"]
