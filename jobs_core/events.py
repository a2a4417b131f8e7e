"""State-change events: versioned JSON published to storage queues after each durable change.

Every change a job goes through (``scheduled``, ``started``, ``retrying``, ``succeeded``,
``failed``, ``cancelled``) becomes a ``JobEvent``. The scheduler and the executor hand the events
of one operation (one POST, one batch of jobs) to ``EventPublisher.publish`` *after* the log
append that made the change durable. The publisher packs them into as few queue messages as fit
(``MAX_MESSAGE_BYTES`` each) and sends them to the default events queue and to each job's
``notify`` queue.

Delivery is at-least-once while the process lives: a message the queue refuses (after the
SDK's own retries) is kept and re-sent by later ``publish``/``flush`` calls with exponential
back-off, and counted; while a queue is failing, new messages for it wait behind the failed
ones (one send attempt per back-off step, in order) instead of each operation trying again. The
job itself is never failed by a failing queue, and is held up by at most one failed send. Limits,
stated plainly: retries live in the process's memory (at most ``max_pending`` messages; beyond
that the oldest are dropped and counted), so an event whose publish was still failing when the
process died is lost; a crash between the durable append and the publish loses that
operation's events too. The job log stays the truth: ``GET /api/jobs/{id}``.

Message format (``v`` = ``EVENT_VERSION``)::

    {"v": 1, "type": "job-events", "events": [
        {"v": 1, "id": "<job id>/<state>/<run>.<attempt>/<time>", "type": "job.succeeded",
         "job_id": "...", "handler": "send_email", "state": "succeeded", "attempt": 1,
         "run": 0, "at": "2026-11-22T14:05:00.012Z", "due_at": "...", "result": {...},
         "error": null, "retry_at": null, "notify": "billing-events"}, ...]}

``id`` is the same every time one transition is published, so consumers can drop duplicates.
A result larger than ``MAX_RESULT_BYTES`` is replaced by ``{"truncated": true, "bytes": n}``
(GET the job for the whole result); an error message is cut to 1,000 characters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from .backoff import backoff
from .errors import EventSendError as EventSendError  # (re-exported: their home was here)
from .model import JSON, ErrorInfo, Job, iso_or_none

log = logging.getLogger(__name__)
EVENT_VERSION = 1
MESSAGE_TYPE = "job-events"
MAX_MESSAGE_BYTES = 32 * 1024  # queue messages may hold 64 KiB; XML escaping needs headroom
MAX_RESULT_BYTES = 8 * 1024
MAX_ERROR_CHARS = 1000
SLOW_PUBLISH_SECONDS = 0.5


class EventState(StrEnum):
    SCHEDULED = "scheduled"
    STARTED = "started"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"




@dataclass(frozen=True, slots=True)
class JobEvent:
    job_id: str
    handler: str
    state: EventState
    at: datetime
    attempt: int = 0
    run: int = 0  # finished occurrences before this one (recurring jobs)
    due_at: datetime | None = None
    notify: str | None = None
    result: JSON = None
    error: ErrorInfo | None = None
    retry_at: datetime | None = None
    labels: dict[str, str] | None = None

    @property
    def id(self) -> str:
        return f"{self.job_id}/{self.state.value}/{self.run}.{self.attempt}/{iso_or_none(self.at)}"

    def to_dict(self) -> dict[str, Any]:
        error = None
        if self.error is not None:
            error = {**self.error.to_dict(), "message": self.error.message[:MAX_ERROR_CHARS]}
        return {"v": EVENT_VERSION, "id": self.id, "type": f"job.{self.state.value}",
                "job_id": self.job_id, "handler": self.handler, "state": self.state.value,
                "attempt": self.attempt, "run": self.run, "at": iso_or_none(self.at),
                "due_at": iso_or_none(self.due_at), "result": _summary(self.result), "error": error,
                "retry_at": iso_or_none(self.retry_at), "notify": self.notify,
                "labels": self.labels or {}}

    @classmethod
    def of(cls, job: Job, state: EventState, at: datetime, **extra: Any) -> JobEvent:
        """The event for ``job`` (as it is after the change) entering ``state``."""
        values: dict[str, Any] = {"attempt": job.attempts, "run": job.runs,
                                  "due_at": job.due_at, "notify": job.notify,
                                  "labels": job.labels}
        values.update(extra)
        return cls(job.id, job.handler, state, at, **values)


def _summary(result: JSON) -> JSON:
    if result is None:
        return None
    size = len(json.dumps(result, separators=(",", ":")).encode())
    return result if size <= MAX_RESULT_BYTES else {"truncated": True, "bytes": size}


def route(events: Iterable[JobEvent], default_queue: str | None) -> dict[str, list[JobEvent]]:
    """The events each queue gets: all of them to ``default_queue`` (if set), and each to its
    job's ``notify`` queue."""
    by_queue: dict[str, list[JobEvent]] = {}
    for event in events:
        if default_queue:
            by_queue.setdefault(default_queue, []).append(event)
        if event.notify and event.notify != default_queue:
            by_queue.setdefault(event.notify, []).append(event)
    return by_queue


def pack(events: Iterable[JobEvent], limit: int = MAX_MESSAGE_BYTES) -> list[str]:
    """Event dicts packed into as few JSON messages of at most ``limit`` bytes as fit."""
    head = f'{{"v":{EVENT_VERSION},"type":"{MESSAGE_TYPE}","events":['
    messages: list[str] = []
    parts: list[str] = []
    size = len(head) + 2
    for event in events:
        text = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False)
        grow = len(text.encode()) + 1
        if parts and size + grow > limit:
            messages.append(head + ",".join(parts) + "]}")
            parts, size = [], len(head) + 2
        parts.append(text)
        size += grow
    if parts:
        messages.append(head + ",".join(parts) + "]}")
    return messages


class EventSink(Protocol):
    """Where messages go: a storage queue service (or memory in tests)."""

    async def send(self, queue: str, messages: list[str]) -> None:
        """Put every message on ``queue`` (creating it if needed); raise on failure. A failure
        may leave some of the messages sent: the publisher re-sends the whole list."""
        ...

    async def close(self) -> None: ...


@dataclass
class PublisherStats:
    events: int = 0  # events handed to publish()
    messages_sent: int = 0
    send_failures: int = 0  # sends that failed (each is retried later)
    retried: int = 0  # re-sends of earlier failures that then succeeded
    dropped: int = 0  # messages given up (pending buffer full)

    def to_dict(self) -> dict[str, int]:
        return {"events": self.events, "messages_sent": self.messages_sent,
                "send_failures": self.send_failures, "retried": self.retried,
                "dropped": self.dropped}


@dataclass
class _Pending:
    queue: str
    messages: list[str]
    failures: int
    next_try: float


@dataclass
class EventPublisher:
    """Publishes job events to ``default_queue`` (if set) and each job's ``notify`` queue.

    ``publish`` never raises: failures are kept for a retry (``flush``) and counted.
    """

    sink: EventSink
    default_queue: str | None = "job-events"
    max_pending: int = 10_000
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    stats: PublisherStats = field(default_factory=PublisherStats)
    _pending: deque[_Pending] = field(default_factory=deque)

    @property
    def pending(self) -> int:
        return sum(len(p.messages) for p in self._pending)

    async def publish(self, events: list[JobEvent]) -> None:
        """Send the events (one message per queue per ~32 KiB), then due retries."""
        began = time.monotonic()
        if events:
            self.stats.events += len(events)
            sends = []
            for queue, evs in route(events, self.default_queue).items():
                waiting = self._waiting(queue)
                if waiting is not None:  # the queue is failing: queue up behind, in order
                    waiting.messages.extend(pack(evs))
                    self._trim()
                else:
                    sends.append(self._send(queue, pack(evs), 0))
            await asyncio.gather(*sends)
        await self.flush()
        took = time.monotonic() - began
        if took > SLOW_PUBLISH_SECONDS:
            log.warning("events: publishing %d event(s) took %.2f s", len(events), took)

    def _waiting(self, queue: str) -> _Pending | None:
        return next((p for p in self._pending if p.queue == queue), None)

    async def flush(self, force: bool = False) -> None:
        """Re-send pending messages whose back-off has passed (all of them if ``force``)."""
        now = self.clock()
        due = [p for p in self._pending if force or p.next_try <= now]
        for item in due:
            self._pending.remove(item)
        await asyncio.gather(*(self._send(p.queue, p.messages, p.failures) for p in due))

    async def _send(self, queue: str, messages: list[str], failures: int) -> None:
        if not messages:
            return
        try:
            await self.sink.send(queue, messages)
        except Exception as exc:  # any failure: keep the messages, never fail the job
            self.stats.send_failures += 1
            failures += 1
            delay = backoff(failures, self.retry_base_seconds, self.retry_max_seconds)
            log.warning("events: %d message(s) to queue %r failed (%s: %s); retry %d in %.0f s",
                        len(messages), queue, type(exc).__name__, exc, failures, delay)
            self._pending.append(_Pending(queue, messages, failures, self.clock() + delay))
            self._trim()
            return
        self.stats.messages_sent += len(messages)
        if failures:
            self.stats.retried += len(messages)

    def _trim(self) -> None:
        """Drop the oldest pending messages beyond ``max_pending`` (counted, logged)."""
        excess = self.pending - self.max_pending
        while excess > 0 and self._pending:
            oldest = self._pending[0]
            n = min(excess, len(oldest.messages))
            del oldest.messages[:n]
            excess -= n
            self.stats.dropped += n
            log.error("events: pending buffer full (%d messages); dropped %d message(s) for "
                      "queue %r", self.max_pending, n, oldest.queue)
            if not oldest.messages:
                self._pending.popleft()

    async def close(self) -> None:
        await self.flush(force=True)
        await self.sink.close()


async def publish_to(publisher: EventPublisher | None, events: list[JobEvent]) -> None:
    """``publisher.publish(events)`` when there is a publisher and something to publish."""
    if publisher is not None and events:
        await publisher.publish(events)


@dataclass
class MemoryEventSink:
    """An in-memory queue service for tests: ``queues[name]`` holds the messages sent.
    ``fail_next`` makes the next N sends raise ``EventSendError``."""

    queues: dict[str, list[str]] = field(default_factory=dict)
    fail_next: int = 0
    sends: int = 0

    async def send(self, queue: str, messages: list[str]) -> None:
        self.sends += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise EventSendError(f"queue {queue!r} is unavailable (injected)")
        self.queues.setdefault(queue, []).extend(messages)

    def events(self, queue: str) -> list[dict[str, Any]]:
        return [e for m in self.queues.get(queue, []) for e in json.loads(m)["events"]]

    async def close(self) -> None:
        return None
