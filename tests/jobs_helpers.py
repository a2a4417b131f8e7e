"""Helpers shared by the jobs_core tests: a controllable clock and a counting handler set."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobs_core import (
    Executor,
    HandlerRegistry,
    JobContext,
    JobScheduler,
    JobsSettings,
    PermanentJobError,
    RetryPolicy,
)
from jobs_core.errors import TransientStoreError
from jobs_core.memory_store import InMemoryStore
from jobs_core.model import FINAL_STATUSES

T0 = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Recorder:
    """Registers test handlers and counts every execution by job id."""

    registry: HandlerRegistry = field(default_factory=HandlerRegistry)
    runs: Counter[str] = field(default_factory=Counter)
    compensations: list[str] = field(default_factory=list)
    failures_left: dict[str, int] = field(default_factory=dict)
    hang: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        reg = self.registry

        @reg.handler("echo")
        async def echo(ctx: JobContext) -> object:
            self.runs[ctx.job_id] += 1
            return {"echo": ctx.payload, "attempt": ctx.attempt}

        @reg.handler("sync_echo")
        def sync_echo(ctx: JobContext) -> object:
            self.runs[ctx.job_id] += 1
            return ctx.payload

        @reg.handler("flaky")
        async def flaky(ctx: JobContext) -> str:
            self.runs[ctx.job_id] += 1
            if ctx.attempt <= int(ctx.payload["fail_times"]):
                raise RuntimeError(f"boom on attempt {ctx.attempt}")
            return "ok"

        async def undo(ctx: JobContext) -> None:
            self.compensations.append(ctx.job_id)

        @reg.handler("always_fails", compensate=undo)
        async def always_fails(ctx: JobContext) -> None:
            self.runs[ctx.job_id] += 1
            raise RuntimeError("always")

        @reg.handler("permanent")
        async def permanent(ctx: JobContext) -> None:
            self.runs[ctx.job_id] += 1
            raise PermanentJobError("bad payload, retrying will not help")

        @reg.handler("first_run_fails", compensate=undo)
        async def first_run_fails(ctx: JobContext) -> str:
            self.runs[ctx.job_id] += 1
            if ctx.run == 0:
                raise PermanentJobError("broken until someone fixes it (then retry the job)")
            return f"ok on run {ctx.run}"

        @reg.handler("hang")
        async def hang(ctx: JobContext) -> None:
            self.runs[ctx.job_id] += 1
            await self.hang.wait()

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.runs.values() if n > 1)


def make(store: object, recorder: Recorder, clock: Clock, *, owner: str = "exec-a",
         **settings: object) -> tuple[JobScheduler, Executor]:
    cfg = JobsSettings(**{"retry": JobsSettings().retry, **settings})  # type: ignore[arg-type]
    scheduler = JobScheduler(store, recorder.registry, cfg, clock=clock)  # type: ignore[arg-type]
    executor = Executor(store, recorder.registry, cfg, owner=owner, clock=clock)  # type: ignore[arg-type]
    return scheduler, executor


async def drain(executor: Executor, slots: int, *, max_cycles: int = 50) -> int:
    """Run cycles on every slot until no slot has due work. Returns the cycles run."""
    for cycle in range(1, max_cycles + 1):
        due = 0
        for slot in range(slots):
            plan, _ = await executor.run_cycle(slot)
            due += plan.due
        if due == 0:
            return cycle
    raise AssertionError(f"still due work after {max_cycles} cycles")


FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=0)
FINAL = set(FINAL_STATUSES)


class FailingAppend:
    """A store whose first append to a blob whose name starts with ``prefix`` and whose data
    contains ``marker`` fails (a 503 before writing); every other call goes to ``store``."""

    def __init__(self, store: object, prefix: str, marker: bytes = b"") -> None:
        self._store, self.prefix, self.marker, self.fail = store, prefix, marker, 1

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(self, name: str, data: bytes, **kwargs: object) -> object:
        if name.startswith(self.prefix) and self.marker in data and self.fail:
            self.fail -= 1
            raise TransientStoreError(f"{name}: 503 ServerBusy")
        return await self._store.append(name, data, **kwargs)  # type: ignore[attr-defined]


def never(data: bytes) -> bool:
    return False


def any_append(data: bytes) -> bool:
    return True


class ReadFailsAfterAdd(InMemoryStore):
    """In memory; once an append to a shard blob whose data ``arms_on`` accepts was kept,
    the next read of a shard blob fails once (a storage blip right after an acknowledged
    write). ``arms_on`` may be set while a test runs."""

    def __init__(self, arms_on: Callable[[bytes], bool] = never) -> None:
        super().__init__()
        self.arms_on, self.armed = arms_on, False

    async def append(self, name: str, data: bytes, **kwargs: object) -> object:
        result = await super().append(name, data, **kwargs)  # type: ignore[arg-type]
        self.armed = self.armed or (name.startswith("shards/") and self.arms_on(data))
        return result

    async def read(self, name: str, offset: int = 0) -> object:
        if self.armed and name.startswith("shards/"):
            self.armed = False
            raise TransientStoreError(f"read {name}: 503 ServerBusy")
        return await super().read(name, offset)
