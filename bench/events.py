"""Figure 7: the cost of state-change events. The same burst as figure 1 (``schedule_many``
then drain), once with events published to an Azurite queue and once without, in one run:
queue requests per job, events per message, and what publishing does to the drain rate."""

from __future__ import annotations

import time
from typing import Any

from jobs_core import Executor, JobRequest, JobScheduler
from jobs_core.events import EventPublisher
from jobs_core.queue_sink import QueueEventSink
from tests import azurite as azurite_helpers

from .common import Env, diff, drain, rate, registry, settings, total

QUEUE_OPS = ("enqueue", "create_queue")


async def _burst(env: Env, n: int, with_events: bool) -> dict[str, Any]:
    store, counter = await env.store("events" if with_events else "noevents")
    publisher = None
    if with_events:
        sink = QueueEventSink.from_settings(
            azurite_helpers.settings(env.azurite, "unused"), counter)
        assert sink is not None, "Azurite's connection string names no QueueEndpoint"
        publisher = EventPublisher(sink, f"bench-{azurite_helpers.unique_container()}")
    reg, cfg = registry(), settings()
    scheduler = JobScheduler(store, reg, cfg, events=publisher)
    executor = Executor(store, reg, cfg, owner="bench-events", events=publisher)
    try:
        start = time.perf_counter()
        await scheduler.schedule_many([JobRequest("noop") for _ in range(n)])
        schedule_s = time.perf_counter() - start
        start = time.perf_counter()
        done, _ = await drain(executor, cfg.slots, n)
        drain_s = time.perf_counter() - start
    finally:
        await scheduler.close()
        if publisher is not None:
            await publisher.close()
        await store.close()
    ops = diff(counter.snapshot(), {})
    queue = {op: ops.get(op, 0) for op in QUEUE_OPS}
    stats = publisher.stats.to_dict() if publisher else {}
    return {"jobs": n, "with_events": with_events, "succeeded": done.succeeded,
            "schedule_jobs_per_s": rate(n, schedule_s), "drain_jobs_per_s": rate(n, drain_s),
            "requests": ops, "queue_requests": queue,
            "queue_requests_per_job": sum(queue.values()) / n,
            "blob_requests_per_job": (total(ops) - sum(queue.values())) / n,
            "events": stats.get("events", 0), "messages": stats.get("messages_sent", 0),
            "events_per_message": stats.get("events", 0) / max(1, stats.get("messages_sent", 0)),
            "send_failures": stats.get("send_failures", 0)}


async def events_cost(env: Env, n: int) -> dict[str, Any]:
    without = await _burst(env, n, with_events=False)
    with_events = await _burst(env, n, with_events=True)
    return {"without": without, "with": with_events,
            "drain_rate_ratio": with_events["drain_jobs_per_s"]
            / max(1e-9, without["drain_jobs_per_s"])}
