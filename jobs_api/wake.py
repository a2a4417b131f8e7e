"""Wake-ups that cost nothing under load.

A ``wake`` event lets a sleeping slot orchestrator run a new job without waiting for its timer.
On the real host every raised event costs the Durable backend storage requests (instance-table
reads, a control-queue message and its delete, a history row) and a replay of the
orchestrator (README, "Durable backend"), so one event per POST would cost far more than the
job store does.

``WakeGate`` raises an event for a slot only when it can matter:
- the new job is due before the slot's known next wake-up (``next_wake`` in its custom status,
  read at most once per ``STATUS_TTL_SECONDS`` per slot and process). A slot that works
  back-to-back reports ``next_wake`` = its last cycle, so under sustained load no event is
  raised at all. A ``next_wake`` that has passed after a cycle that did no work is no such
  promise: that slot is planning now (its status is the previous cycle's until the cycle
  ends), may have read the job's blob before the job was written, and then sleeps its
  back-off (up to ``JOBS_MAX_SLEEP_SECONDS``): it gets the event, which ends that sleep;
- at most one event per slot per ``MIN_INTERVAL_SECONDS`` in this process (the orchestrator
  drains every event of the episode at once: more would only cost). A job that arrives within
  that second is not forgotten: one trailing check runs when the second is over (the cycle the
  first event woke may have planned before that job was written).

The event is sent in the background: a request waits for its durable write, never for the
wake-up. The timer stays the fallback; a lost event only costs lateness.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)
MIN_INTERVAL_SECONDS = 1.0
STATUS_TTL_SECONDS = 2.0
WORK = ("started", "abandoned", "moved")  # the counts that make a cycle one that worked


@dataclass(frozen=True)
class SlotWake:
    """What a slot's custom status says about its next plan."""

    next_wake: datetime
    idle: bool = False  # its last cycle did no work: it backs off (not a back-to-back slot)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class WakeStats:
    asked: int = 0  # jobs that could have woken their slot (due within the longest sleep)
    raised: int = 0
    skipped_not_earlier: int = 0  # due at or after the slot's known next wake-up
    skipped_recent: int = 0  # an event for the slot went out less than a second ago
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class WakeGate:
    """Decides and sends wake events (see the module doc). ``status(client, slot)`` reads a
    slot's ``SlotWake`` (None when unknown); ``raise_event(client, slot)`` sends the event
    (``client``: the Durable client of the request that asks)."""

    status: Callable[[Any, int], Awaitable[SlotWake | None]]
    raise_event: Callable[[Any, int], Awaitable[Any]]
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = _utcnow  # (next_wake is a wall-clock time)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    stats: WakeStats = field(default_factory=WakeStats)
    _trailing: dict[int, datetime] = field(default_factory=dict)  # slot -> earliest due
    _sent: dict[int, float] = field(default_factory=dict)
    _known: dict[int, tuple[float, SlotWake | None]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def wake(self, client: Any, due: dict[int, datetime]) -> None:
        """Consider waking each slot for its earliest new job (slot -> due time); returns at
        once, the work happens in the background."""
        for slot, due_at in sorted(due.items()):
            self.stats.asked += 1
            now = self.clock()
            last = self._sent.get(slot, -1e9)
            if now - last < MIN_INTERVAL_SECONDS:
                self.stats.skipped_recent += 1
                if slot not in self._trailing:
                    self._spawn(self._trail(client, slot, last + MIN_INTERVAL_SECONDS - now))
                self._trailing[slot] = min(self._trailing.get(slot, due_at), due_at)
                continue
            self._sent[slot] = now  # (claimed before the status read: one in flight at most)
            self._spawn(self._maybe_raise(client, slot, due_at))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _trail(self, client: Any, slot: int, delay: float) -> None:
        await self.sleep(max(0.0, delay))
        due_at = self._trailing.pop(slot, None)
        if due_at is not None:
            self._sent[slot] = self.clock()
            await self._maybe_raise(client, slot, due_at)

    async def _maybe_raise(self, client: Any, slot: int, due_at: datetime) -> None:
        try:
            known = await self._next_wake(client, slot)
            if known is not None and due_at >= known.next_wake and \
                    not (known.idle and known.next_wake <= self.wall()):
                self.stats.skipped_not_earlier += 1
                self._sent.pop(slot, None)  # nothing sent: the next job may still need one
                return
            await self.raise_event(client, slot)
            self.stats.raised += 1
        except Exception as exc:  # the orchestrator may not exist yet: the timer remains
            self.stats.failed += 1
            log.debug("wake of slot %s not delivered: %s", slot, exc)

    async def _next_wake(self, client: Any, slot: int) -> SlotWake | None:
        now = self.clock()
        known = self._known.get(slot)
        if known is not None and now - known[0] < STATUS_TTL_SECONDS:
            return known[1]
        value = await self.status(client, slot)
        self._known[slot] = (self.clock(), value)
        return value

    async def drain(self) -> None:
        """Wait for the events in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def slot_next_wake(client: Any, slot: int) -> SlotWake | None:
    """``next_wake`` from the slot orchestrator's custom status, and whether that cycle did no
    work as the orchestrator judges it for its sleep (nothing started, abandoned or moved, or
    an error; a plan past its deadline counts as work). None: not running, or no cycle
    finished yet."""
    from .runtime import instance_id

    status = await client.get_status(instance_id(slot))
    runtime = getattr(getattr(status, "runtime_status", None), "value", None) or \
        getattr(status, "runtime_status", None)
    if str(runtime) != "Running":
        return None
    custom = getattr(status, "custom_status", None)
    if isinstance(custom, str):
        try:
            custom = json.loads(custom)
        except ValueError:
            return None
    if not isinstance(custom, dict):
        return None
    raw = custom.get("next_wake")
    try:
        next_wake = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
    except (AttributeError, ValueError):
        return None
    if next_wake is None:
        return None
    counts = custom.get("counts")
    worked = (isinstance(counts, dict) and any(counts.get(k) for k in WORK)) or \
        bool(custom.get("plans_overdue"))
    failed = bool(custom.get("last_error_at")) and \
        custom.get("last_error_at") == custom.get("last_cycle")
    return SlotWake(next_wake, idle=failed or not worked)


async def raise_wake(client: Any, slot: int) -> None:
    from .runtime import instance_id

    await client.raise_event(instance_id(slot), "wake", None)
