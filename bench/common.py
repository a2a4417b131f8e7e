"""Shared pieces of the benchmarks: stores on Azurite with request counters, a no-op handler
registry, draining, percentiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs_core import BatchResult, Executor, HandlerRegistry, JobContext, JobsSettings
from jobs_core.blob_store import AzureBlobStore
from jobs_core.request_counter import RequestCounter
from tests import azurite as azurite_helpers


@dataclass
class Env:
    """Where the Azurite benchmarks run: one Azurite, a fresh container per workload."""

    azurite: azurite_helpers.Azurite

    async def store(self, prefix: str) -> tuple[AzureBlobStore, RequestCounter]:
        """A store on a new container; its counter is reset after the container is created."""
        counter = RequestCounter()
        settings = azurite_helpers.settings(self.azurite, azurite_helpers.unique_container(prefix))
        store = await AzureBlobStore.open(settings, counter=counter)
        counter.reset()
        return store, counter


@dataclass
class Lateness:
    """Records handler start minus due time (seconds) for every run of the ``late`` handler."""

    expected: int = 0
    samples: list[float] = field(default_factory=list)
    all_ran: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, due_at: datetime) -> None:
        self.samples.append(time.time() - due_at.timestamp())
        if len(self.samples) >= self.expected:
            self.all_ran.set()


def registry(lateness: Lateness | None = None) -> HandlerRegistry:
    reg = HandlerRegistry()

    @reg.handler("noop")
    async def noop(ctx: JobContext) -> None:
        return None

    @reg.handler("late")
    async def late(ctx: JobContext) -> None:
        if lateness is not None:
            lateness.record(ctx.due_at)

    return reg


def settings(**overrides: Any) -> JobsSettings:
    return JobsSettings(**overrides)


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Requests by operation between two counter snapshots (zeros left out)."""
    out = {op: after.get(op, 0) - before.get(op, 0) for op in set(after) | set(before)}
    return {op: n for op, n in sorted(out.items()) if n}


def total(counts: dict[str, int]) -> int:
    return sum(counts.values())


async def drain(executor: Executor, slots: int, expected: int, *,
                max_rounds: int = 200) -> tuple[BatchResult, int]:
    """Run cycles on every slot (slots concurrently, like their orchestrators) until
    ``expected`` jobs succeeded or nothing is due. Returns the totals and the rounds run."""
    done = BatchResult()
    for round_no in range(1, max_rounds + 1):
        cycles = await asyncio.gather(*(executor.run_cycle(s) for s in range(slots)))
        due = 0
        for plan, result in cycles:
            done.add(result)
            due += plan.due
        if done.succeeded >= expected or due == 0:
            return done, round_no
    return done, max_rounds


def percentiles(samples: Iterable[float]) -> dict[str, float | int | None]:
    values = sorted(samples)
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}

    def pick(q: float) -> float:
        return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]

    return {"count": len(values), "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99),
            "max": values[-1]}


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


async def steady_ticks(first_due: datetime, per_s: float, count: int, lead_s: float,
                       tick_s: float) -> AsyncIterator[list[tuple[int, datetime]]]:
    """Every ``tick_s``, yield the (index, due time) pairs falling due within ``lead_s``, with
    due times ``first_due + i / per_s`` for ``i`` in ``0..count-1``; empty ticks are skipped."""
    sent = 0
    while sent < count:
        horizon = datetime.now(UTC) + timedelta(seconds=lead_s)
        batch: list[tuple[int, datetime]] = []
        while sent < count:
            due = first_due + timedelta(seconds=sent / per_s)
            if due > horizon:
                break
            batch.append((sent, due))
            sent += 1
        if batch:
            yield batch
        await asyncio.sleep(tick_s)
