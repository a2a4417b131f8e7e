"""OpenTelemetry through the SDK's in-memory exporter and reader: one span per attempt under
the scheduling request's trace, the metrics, and nothing at all when it is off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from jobs_api import telemetry_setup
from jobs_core import InMemoryStore, JobRequest, telemetry
from jobs_core.settings import SettingsError
from tests.jobs_helpers import FAST_RETRY, Clock, Recorder, drain, make


@pytest.fixture
def otel() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry.enable(tracer_provider, MeterProvider(metric_readers=[reader]))
    telemetry.observe("jobs.storage.requests", lambda: 42)
    yield spans, reader, tracer_provider
    telemetry.disable()


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[object]]:
    data = reader.get_metrics_data()
    out: dict[str, list[object]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


async def test_each_attempt_is_a_span_under_the_request_that_scheduled_it(
        otel: tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider]) -> None:
    spans, reader, provider = otel
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(InMemoryStore(), rec, clock, slots=1)
    with provider.get_tracer("test").start_as_current_span("POST /api/jobs") as request:
        job = (await scheduler.schedule(JobRequest("flaky", {"fail_times": 1},
                                                   retry=FAST_RETRY))).job
    assert job.traceparent is not None and format(
        request.get_span_context().trace_id, "032x") in job.traceparent
    await drain(executor, 1)
    attempts = [s for s in spans.get_finished_spans() if s.name == "job.attempt"]
    assert [s.attributes["jobs.attempt"] for s in attempts] == [1, 2]
    assert [s.attributes["jobs.outcome"] for s in attempts] == ["retrying", "succeeded"]
    for span in attempts:
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.attributes["jobs.job_id"] == job.id
        assert span.attributes["jobs.handler"] == "flaky"
        assert span.attributes["jobs.lateness_ms"] >= 0
    assert attempts[0].status.status_code is StatusCode.ERROR
    points = metric_points(reader)
    outcomes = {p.attributes["jobs.outcome"]: p.value for p in points["jobs.attempts"]}
    assert outcomes == {"retrying": 1, "succeeded": 1}
    assert points["jobs.attempt.lateness"][0].count == 2
    assert points["jobs.storage.requests"][0].value == 42


async def test_a_traceparent_header_is_kept_and_a_malformed_one_ignored(
        otel: tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider]) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, _ = make(InMemoryStore(), rec, clock, slots=1)
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    kept = (await scheduler.schedule(JobRequest("echo", traceparent=header))).job
    assert kept.traceparent == header
    again = await scheduler.get(kept.id)
    assert again.traceparent == header  # stored with the job
    bad = (await scheduler.schedule(JobRequest("echo", traceparent="00-nonsense"))).job
    assert bad.traceparent is None  # (no current span either)


async def test_when_off_nothing_is_created_or_stored() -> None:
    assert not telemetry.enabled()
    clock, rec = Clock(), Recorder()
    store = InMemoryStore()
    scheduler, executor = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest(
        "echo", traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))).job
    await drain(executor, 1)
    assert job.traceparent is None
    blob = next(iter(n for n in store._blobs if n.startswith("shards/")))
    assert b'"tp"' not in store._blobs[blob].data


def test_the_setting_names_a_known_exporter() -> None:
    assert telemetry_setup.configure({"JOBS_TELEMETRY": "off"}) == "off"
    assert not telemetry.enabled()
    with pytest.raises(SettingsError, match="JOBS_TELEMETRY"):
        telemetry_setup.configure({"JOBS_TELEMETRY": "jaeger"})
    try:
        assert telemetry_setup.configure({"JOBS_TELEMETRY": "console"}) == "console"
        assert telemetry.enabled()
    finally:
        telemetry.disable()
