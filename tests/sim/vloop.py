"""A deterministic asyncio event loop on virtual time.

The loop never sleeps: when nothing is ready it jumps its clock to the next timer. Ready
callbacks run in FIFO order, so a run is a pure function of the code and its seeded inputs (no
threads, no sockets). Simulated days pass in milliseconds of real time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpSelector(selectors.DefaultSelector):
    """``select(timeout)`` advances the loop's virtual clock by ``timeout`` instead of waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        assert self.loop is not None
        if timeout is None:
            raise Deadlock("the simulation has nothing ready and no timer: it would hang")
        if timeout > 0:  # jump exactly to the earliest timer (no float drift below it)
            scheduled = self.loop._scheduled
            self.loop.now = max(self.loop.now + timeout,
                                scheduled[0]._when if scheduled else 0.0)
        return []


class Deadlock(RuntimeError):
    pass


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _JumpSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0
        self._clock_resolution = 1e-6  # above the float spacing at 10 simulated years

    def time(self) -> float:
        return self.now


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
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
