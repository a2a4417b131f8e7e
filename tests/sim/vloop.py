"""A deterministic asyncio event loop on virtual time.

The loop never sleeps: when nothing is ready it jumps its clock to the next timer. Ready
callbacks run in FIFO order, so a run is a pure function of the code and its seeded inputs (no
threads, no sockets). Simulated days pass in milliseconds of real time.

For runs against a real storage service (Azurite), ``io_busy`` says when a real request is in
flight: virtual time then stands still while the loop waits for the socket, so every real
request takes no virtual time (such runs are exact in their logic, not in their interleaving).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpSelector(selectors.DefaultSelector):
    """``select(timeout)`` advances the loop's virtual clock by ``timeout`` instead of waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None
        self.give_up_at: float | None = None  # time.monotonic() past which the run stops

    def select(self, timeout: float | None = None) -> list[Any]:
        assert self.loop is not None
        if self.give_up_at is not None and time.monotonic() > self.give_up_at:
            self.give_up_at = None  # (the cancellation that follows runs on this loop)
            raise Overtime(f"still running at simulated {self.loop.now:,.0f} s with "
                           f"{len(asyncio.all_tasks(self.loop)):,} tasks")
        events = super().select(0)  # real sockets (Azurite runs) still report readiness
        if events:
            return events
        busy = self.loop.io_busy
        if busy is not None and busy():  # a real request is in flight: virtual time stands
            return super().select(REAL_IO_POLL if timeout is None else min(timeout,
                                                                          REAL_IO_POLL))
        if timeout is None:
            raise Deadlock("the simulation has nothing ready and no timer: it would hang")
        if timeout > 0:  # jump exactly to the earliest timer (no float drift below it)
            scheduled = self.loop._scheduled
            self.loop.now = max(self.loop.now + timeout,
                                scheduled[0]._when if scheduled else 0.0)
        return []


class Deadlock(RuntimeError):
    pass


class Overtime(RuntimeError):
    """The run took more real time than it was given (a world that never ends: a livelock,
    or work that piles up faster than it is done)."""


REAL_IO_POLL = 0.05  # seconds of real time to wait for a real request before looking again


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _JumpSelector()
        super().__init__(selector)
        selector.loop = self
        self.jumps = selector
        self.now = 0.0
        self.io_busy: Callable[[], bool] | None = None  # real I/O in flight (Azurite runs)
        self._clock_resolution = 1e-6  # above the float spacing at 10 simulated years

    def time(self) -> float:
        return self.now


def run(main: Coroutine[Any, Any, T], io_busy: Callable[[], bool] | None = None,
        real_seconds: float | None = None) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop; past ``real_seconds`` of real
    time it stops with ``Overtime``."""
    loop = VirtualTimeLoop()
    loop.io_busy = io_busy
    if real_seconds is not None:
        loop.jumps.give_up_at = time.monotonic() + real_seconds
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
