"""The simulation's handlers: each reports to the oracle when it is invoked and when it returns,
sleeps in virtual time, and may find its process dead when it wakes (a crash mid-handler).

``CURRENT`` names the simulated process the running code belongs to (``Process.call`` sets it).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from jobs_core.handlers import HandlerRegistry, JobContext, PermanentJobError

from .facts import LIMITED
from .faults import ProcessCrashed

if TYPE_CHECKING:
    from .world import Process, World

CURRENT: contextvars.ContextVar[Process | None] = contextvars.ContextVar("sim_process",
                                                                           default=None)

async def _sleep(seconds: float) -> None:
    proc = CURRENT.get()
    await asyncio.sleep(seconds)
    if proc is not None and not proc.alive:
        raise ProcessCrashed(proc.name)
    if proc is not None and proc.world.storage.roll(proc.world.config.plan.p_crash * 5):
        proc.world.storage.injected["handler:crash"] += 1
        proc.die()  # the process dies while a handler runs (its work may be done)
        raise ProcessCrashed(proc.name)


def make_registry(world: World) -> HandlerRegistry:
    registry = HandlerRegistry()
    oracle = world.oracle

    def wrap(name: str, body: Callable[[JobContext], Awaitable[Any]],
             **options: Any) -> None:
        async def handler(ctx: JobContext) -> Any:
            proc = CURRENT.get()
            inv = oracle.invoked(ctx, proc.name if proc else "?", world.now())
            try:
                value = await body(ctx)
            except BaseException as exc:
                dead = proc is not None and not proc.alive
                oracle.returned(inv, world.now(), ok=False,
                                error="ProcessCrashed" if dead else type(exc).__name__)
                raise
            oracle.returned(inv, world.now(), ok=True)
            return value
        registry.handler(name, **options)(handler)

    async def ok(ctx: JobContext) -> Any:
        await _sleep(float((ctx.payload or {}).get("t", 0.05)))
        return {"done": ctx.job_id, "run": ctx.run}

    async def flaky(ctx: JobContext) -> Any:
        await _sleep(0.05)
        if ctx.attempt <= int((ctx.payload or {}).get("fail_until", 1)):
            raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
        return "recovered"

    async def perm(ctx: JobContext) -> Any:
        await _sleep(0.01)
        raise PermanentJobError("no retry can fix this")

    async def slow(ctx: JobContext) -> Any:  # 0.6 of its 1 s timeout
        await _sleep(0.6)
        return "slow but in time"

    async def hang(ctx: JobContext) -> Any:  # well past its timeout
        await _sleep(3600.0)
        return "never"

    async def charge(ctx: JobContext) -> Any:  # fails now and then; compensation undoes it
        await _sleep(0.1)
        if world.rng.random() < 0.3:
            raise RuntimeError("card declined")
        return "charged"

    async def refund(ctx: JobContext) -> Any:
        proc = CURRENT.get()
        oracle.compensated(ctx, world.now(), proc.name if proc else "?")

    async def limited(ctx: JobContext) -> Any:  # one in seven fails for good: compensated
        value = await ok(ctx)
        if int((ctx.payload or {}).get("n", 1)) % 7 == 0:
            raise PermanentJobError("declined for good")
        return value

    async def undo_limited(ctx: JobContext) -> Any:  # handler code too: within the limits
        proc = CURRENT.get()
        run = oracle.compensation_began(ctx, proc.name if proc else "?", world.now())
        # workload 5: half of them outlast a cycle's (scaled) deadline, within their timeout
        slow = world.config.workload >= 5 and int((ctx.payload or {}).get("n", 1)) % 2 == 0
        try:
            await _sleep(1.8 if slow else 0.3)
        finally:
            oracle.returned(run, world.now(), ok=True)
        oracle.compensated(ctx, world.now(), proc.name if proc else "?")

    wrap("ok", ok)
    wrap("flaky", flaky)
    wrap("perm", perm)
    wrap("slow", slow)
    wrap("hang", hang)
    wrap("charge", charge, compensate=refund)
    most, rate = LIMITED["limited"]
    wrap("limited", limited, max_concurrency=most, max_per_second=rate,
         compensate=undo_limited)
    return registry
