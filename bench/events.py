"""Figure 7: the cost and latency of state-change events, in one run on Azurite.

- Cost: the burst of figure 1 (``schedule_many`` then drain) without events, with eager sends
  only, and with events published from the job log only (``jobs_core/event_log.py``: the
  publisher runs once per round of cycles, as the orchestrator runs ``publish_events`` beside
  the batches). Queue requests per job, and the blob requests the log publisher adds per job
  (its listing, reads of new bytes, and cursor writes), against the run without events.
- Latency: jobs due at a steady rate (200/s by default); for each event, the time from the
  change recorded in the log (the event's ``at``) to the queue service acknowledging the send,
  for eager sends and for sends from the log, p50/p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs_core import BatchResult, Executor, JobRequest, JobScheduler
from jobs_core.event_log import LogPublisher
from jobs_core.events import EventPublisher, EventSink
from jobs_core.queue_sink import QueueEventSink
from jobs_core.records import parse_ts
from tests import azurite as azurite_helpers

from .common import Env, diff, percentiles, rate, registry, settings, steady_ticks, total

QUEUE_OPS = ("enqueue", "create_queue")
MODES = ("off", "eager", "log")


class TimedSink:
    """Records, for every event sent, seconds from its ``at`` to the send's acknowledgement."""

    def __init__(self, inner: EventSink) -> None:
        self.inner = inner
        self.latency: list[float] = []
        self.events = 0
        self.messages = 0
        self.target = 0  # set: ``reached`` is set once this many events were sent
        self.reached = asyncio.Event()

    async def send(self, queue: str, messages: list[str]) -> None:
        await self.inner.send(queue, messages)
        now = datetime.now(UTC)
        self.messages += len(messages)
        for message in messages:
            for event in json.loads(message)["events"]:
                self.events += 1
                self.latency.append((now - parse_ts(event["at"].replace("Z", "+00:00")))
                                    .total_seconds())
        if self.target and self.events >= self.target:
            self.reached.set()

    async def close(self) -> None:
        await self.inner.close()


def _sink(env: Env, counter: Any) -> TimedSink:
    sink = QueueEventSink.from_settings(azurite_helpers.settings(env.azurite, "unused"), counter)
    assert sink is not None, "Azurite's connection string names no QueueEndpoint"
    return TimedSink(sink)


async def _burst(env: Env, n: int, mode: str) -> dict[str, Any]:
    store, counter = await env.store(f"ev{mode}")
    queue = f"bench-{azurite_helpers.unique_container()}"
    sink = _sink(env, counter) if mode != "off" else None
    eager = EventPublisher(sink, queue) if sink is not None and mode == "eager" else None
    from_log = LogPublisher(store, sink, queue) if sink is not None and mode == "log" else None
    reg, cfg = registry(), settings()
    scheduler = JobScheduler(store, reg, cfg, events=eager)
    executor = Executor(store, reg, cfg, owner=f"bench-ev-{mode}", events=eager)
    done, rounds = BatchResult(), 0
    try:
        start = time.perf_counter()
        await scheduler.schedule_many([JobRequest("noop") for _ in range(n)])
        schedule_s = time.perf_counter() - start
        start = time.perf_counter()
        while rounds < 200:
            rounds += 1
            work: list[Any] = [executor.run_cycle(s) for s in range(cfg.slots)]
            if from_log is not None:  # beside the batches, as the orchestrator runs it
                work += [from_log.publish(s) for s in range(cfg.slots)]
            cycles = (await asyncio.gather(*work))[:cfg.slots]
            due = sum(plan.due for plan, _ in cycles)
            for _, result in cycles:
                done.add(result)
            if done.succeeded >= n or due == 0:
                break
        drain_s = time.perf_counter() - start
        if from_log is not None:  # what the last round's outcomes added
            await asyncio.gather(*(from_log.publish(s) for s in range(cfg.slots)))
    finally:
        await scheduler.close()
        if eager is not None:
            await eager.close()
        elif sink is not None:
            await sink.close()
        await store.close()
    ops = diff(counter.snapshot(), {})
    queue_ops = {op: ops.get(op, 0) for op in QUEUE_OPS}
    events = sink.events if sink is not None else 0
    messages = sink.messages if sink is not None else 0
    return {"jobs": n, "mode": mode, "succeeded": done.succeeded, "rounds": rounds,
            "schedule_jobs_per_s": rate(n, schedule_s), "drain_jobs_per_s": rate(n, drain_s),
            "requests": ops, "queue_requests": queue_ops,
            "queue_requests_per_job": sum(queue_ops.values()) / n,
            "blob_requests_per_job": (total(ops) - sum(queue_ops.values())) / n,
            "events": events, "messages": messages,
            "events_per_message": events / max(1, messages)}


async def _latency(env: Env, per_s: float, window_s: float, mode: str) -> dict[str, Any]:
    store, counter = await env.store(f"evlat{mode}")
    queue = f"bench-{azurite_helpers.unique_container()}"
    sink = _sink(env, counter)
    eager = EventPublisher(sink, queue) if mode == "eager" else None
    from_log = LogPublisher(store, sink, queue) if mode == "log" else None
    reg, cfg = registry(), settings()
    scheduler = JobScheduler(store, reg, cfg, events=eager)
    executor = Executor(store, reg, cfg, owner=f"bench-evlat-{mode}", events=eager)
    count = int(per_s * window_s)
    stop = asyncio.Event()

    async def slot_loop(slot: int) -> None:  # a cycle, publishing beside it, then sleep
        while not stop.is_set():
            work: list[Coroutine[Any, Any, Any]] = [executor.run_cycle(slot)]
            if from_log is not None:
                work.append(from_log.publish(slot))
            plan, _ = (await asyncio.gather(*work))[0]
            wait = (plan.next_wake - datetime.now(UTC)).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(max(wait, 0.0), 1.0))

    loops = [asyncio.create_task(slot_loop(s)) for s in range(cfg.slots)]
    first_due = datetime.now(UTC) + timedelta(seconds=1)
    try:
        async for batch in steady_ticks(first_due, per_s, count, 1.0, 0.05):
            await asyncio.gather(*(scheduler.schedule(JobRequest("noop", due_at=due))
                                   for _, due in batch))
        sink.target = 3 * count  # scheduled, started, succeeded
        if sink.events < sink.target:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sink.reached.wait(), 60)
    finally:
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
        await scheduler.close()
        if eager is not None:
            await eager.close()
        else:
            await sink.close()
        await store.close()
    return {"mode": mode, "rate_per_s": per_s, "jobs": count, "events": sink.events,
            "latency_s": percentiles(sink.latency)}


async def events_cost(env: Env, n: int, per_s: float = 200.0,
                      window_s: float = 10.0) -> dict[str, Any]:
    runs = {mode: await _burst(env, n, mode) for mode in MODES}
    off = runs["off"]
    latency = {mode: await _latency(env, per_s, window_s, mode) for mode in ("eager", "log")}
    return {
        "without": off, "with": runs["eager"], "from_log": runs["log"],
        "drain_rate_ratio": runs["eager"]["drain_jobs_per_s"]
        / max(1e-9, off["drain_jobs_per_s"]),
        "log_added_blob_requests_per_job": runs["log"]["blob_requests_per_job"]
        - off["blob_requests_per_job"],
        "log_drain_rate_ratio": runs["log"]["drain_jobs_per_s"]
        / max(1e-9, off["drain_jobs_per_s"]),
        "latency": latency,
    }
