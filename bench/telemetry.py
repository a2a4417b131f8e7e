"""Figure 10: what OpenTelemetry costs, off (the default) and on (the SDK with an in-memory
exporter and reader: the work of recording, not of shipping).

The same workload three times on the in-memory store (CPU-bound, so the differences show):
schedule ``jobs`` jobs with ``schedule_many`` and drain them. Reported per mode: drain rate,
shard-log bytes per job (the stored ``traceparent``), storage requests per job, spans. And the
off path alone, timed in a loop: what one attempt pays for telemetry being off (a context
manager that creates nothing), next to what one attempt costs in the drain.
"""

from __future__ import annotations

import asyncio
import time
import timeit
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobs_core import Executor, InMemoryStore, JobRequest, JobScheduler, telemetry

from .common import registry, settings

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def _drain(jobs: int) -> dict[str, Any]:
    store = InMemoryStore()
    reg, cfg = registry(), settings(slots=1)
    scheduler = JobScheduler(store, reg, cfg)
    await scheduler.schedule_many([JobRequest("noop", traceparent=TRACEPARENT)
                                   for _ in range(jobs)])
    await scheduler.close()
    executor = Executor(store, reg, cfg, owner="bench-telemetry")
    started, done = time.perf_counter(), 0
    while True:
        plan, result = await executor.run_cycle(0)
        done += result.succeeded
        if plan.due == 0 or not plan.batches:
            break
    seconds = time.perf_counter() - started
    data = sum(len(b.data) for name, b in store._blobs.items()  # a benchmark probe
               if name.startswith("shards/"))
    return {"jobs": done, "drain_jobs_per_s": done / seconds, "log_bytes_per_job": data / jobs,
            "requests_per_job": sum(store.requests.values()) / jobs}


def _off_path_us(loops: int = 200_000) -> float:
    now = datetime.now(UTC)

    def one() -> None:
        with telemetry.attempt_span("j", "noop", 1, 0, now, now, None) as span:
            span.outcome("succeeded")

    return timeit.timeit(one, number=loops) / loops * 1e6


def run(jobs: int) -> dict[str, Any]:
    telemetry.disable()
    off = asyncio.run(_drain(jobs))
    off_us = _off_path_us()
    spans = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.enable(tracer, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    try:
        on = asyncio.run(_drain(jobs))
        on["spans"] = len(spans.get_finished_spans())
    finally:
        telemetry.disable()
    off["spans"] = 0
    per_attempt_us = 1e6 / off["drain_jobs_per_s"]
    return {"jobs": jobs, "off": off, "on": on, "off_path_us_per_attempt": off_us,
            "attempt_us_when_off": per_attempt_us,
            "off_path_share": off_us / per_attempt_us,
            "on_over_off_drain": on["drain_jobs_per_s"] / off["drain_jobs_per_s"]}


def table(t: dict[str, Any]) -> list[str]:
    lines = [f"10. Telemetry (JOBS_TELEMETRY): {t['jobs']} jobs scheduled and drained, "
             "in-memory store"]
    for mode in ("off", "on"):
        m = t[mode]
        lines.append(f"  {mode:<4} drain {m['drain_jobs_per_s']:>7.0f} jobs/s, log "
                     f"{m['log_bytes_per_job']:6.1f} B/job, {m['requests_per_job']:.4f} "
                     f"req/job, {m['spans']} spans")
    lines.append(f"  off path per attempt {t['off_path_us_per_attempt']:.2f} us of "
                 f"{t['attempt_us_when_off']:.0f} us per attempt "
                 f"({t['off_path_share']:.2%}); on/off drain rate {t['on_over_off_drain']:.2f}")
    return lines
