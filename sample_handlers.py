"""This app's job handlers: ``@registry.handler("name")`` on a function ``f(ctx: JobContext)``
(sync or async). Only registered handlers can run as jobs; ``function_app.py`` hands this
registry to the scheduler with ``jobs_api.register_handlers(registry)``.

These samples are used by the end-to-end tests; an app of your own has its own module like
this one (see ``examples/own_app/``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobs_api import HandlerRegistry, JobContext, PermanentJobError

registry = HandlerRegistry()


@registry.handler("echo")
async def echo(ctx: JobContext) -> Any:
    """Returns its payload."""
    return ctx.payload


@registry.handler("sleep")
async def sleep(ctx: JobContext) -> dict[str, float]:
    """Payload ``{"seconds": n}``: sleeps n seconds."""
    seconds = float((ctx.payload or {}).get("seconds", 0))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@registry.handler("fail_n_times")
async def fail_n_times(ctx: JobContext) -> dict[str, Any]:
    """Payload ``{"n": k, "key": "..."}``: attempts 1..k fail, attempt k+1 succeeds."""
    payload = ctx.payload or {}
    n = int(payload.get("n", 0))
    if ctx.attempt <= n:
        raise RuntimeError(f"attempt {ctx.attempt} of {payload.get('key')!r} fails on purpose")
    return {"key": payload.get("key"), "attempt": ctx.attempt}


@registry.handler("reserve")
async def reserve(ctx: JobContext) -> dict[str, Any]:
    """A step with a compensation: payload ``{"fail": true}`` makes it fail permanently, and
    ``undo_reservation`` then runs (the job's ``compensation`` says how that went)."""
    payload = ctx.payload or {}
    if payload.get("fail"):
        raise PermanentJobError("the reservation was refused")
    return {"reserved": payload.get("item")}


@reserve.compensate
async def undo_reservation(ctx: JobContext) -> None:
    """Compensation of ``reserve``: ``ctx.error`` holds the failure being compensated."""
    if (ctx.payload or {}).get("fail_compensation"):
        raise RuntimeError("undo failed")
