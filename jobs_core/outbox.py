"""Events of concurrent executions, sent together (the executor's outbox)."""

from __future__ import annotations

import asyncio

from .events import EventPublisher, JobEvent, publish_to


class Outbox:
    """Events of concurrent executions, sent together: the first event waits ``linger``
    seconds for company (like group commit), so the starts of one wave of a batch, or the
    outcomes finishing together, share queue messages. Order is kept (a job's start event
    goes out before its outcome event)."""

    def __init__(self, publisher: EventPublisher | None, linger: float) -> None:
        self._publisher = publisher
        self._linger = linger
        self._events: list[JobEvent] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, events: list[JobEvent]) -> None:
        if self._publisher is None or not events:
            return
        self._events.extend(events)
        if self._task is None:
            self._task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(self._linger)
            while self._events:
                batch, self._events = self._events, []
                await publish_to(self._publisher, batch)  # never raises
        finally:
            self._task = None

    async def drain(self) -> None:
        while self._task is not None:
            await asyncio.shield(self._task)
