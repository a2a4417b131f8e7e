"""Durable timers on the host's event loop: fire each one as soon as it is due."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from .history import parse_ts, utc_now

TimerKey = tuple[str, str, int]  # (instance id, execution id, sequence id)


class TimerService:
    """Arms ``loop.call_later`` handles; timers already due fire on the next loop iteration."""

    def __init__(self, on_fire: Callable[[str, str, int], None]) -> None:
        self._on_fire = on_fire
        self._handles: dict[TimerKey, asyncio.TimerHandle] = {}

    def arm(self, instance_id: str, execution_id: str, seq: int, fire_at: str | datetime) -> None:
        due = parse_ts(fire_at) if isinstance(fire_at, str) else fire_at
        delay = max(0.0, (due - utc_now()).total_seconds())
        key = (instance_id, execution_id, seq)
        self.cancel(key)
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: TimerKey) -> None:
        self._handles.pop(key, None)
        self._on_fire(*key)

    def cancel(self, key: TimerKey) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def cancel_instance(self, instance_id: str) -> None:
        for key in [k for k in self._handles if k[0] == instance_id]:
            self.cancel(key)

    def cancel_all(self) -> None:
        for key in list(self._handles):
            self.cancel(key)
