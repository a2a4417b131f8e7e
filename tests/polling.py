"""Waiting for a condition with a deadline (tests never use fixed sleeps as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(fn: Callable[[], Any], until: Callable[[Any], bool], *, timeout: float,
               interval: float) -> Any:
    """Call ``fn`` until ``until(result)`` holds; fail with the last result at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if until(last):
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last value: {last!r}")


def poller(default_timeout: float, default_interval: float) -> Callable[..., Any]:
    """A ``poll(fn, until, timeout=..., interval=...)`` with defaults for one test package."""

    def poll(fn: Callable[[], Any], until: Callable[[Any], bool],
             timeout: float = default_timeout, interval: float = default_interval) -> Any:
        return wait_until(fn, until, timeout=timeout, interval=interval)

    return poll
