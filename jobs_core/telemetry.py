"""OpenTelemetry: one span per attempt, child of the request that scheduled the job, and the
scheduler's metrics. Off unless ``enable`` was called (``jobs_api/telemetry_setup.py`` does,
by the ``JOBS_TELEMETRY`` setting): then nothing is created, recorded or stored.

Spans: ``job.attempt`` (kind CONSUMER) with ``jobs.job_id``, ``jobs.handler``, ``jobs.attempt``,
``jobs.run`` (the occurrence), ``jobs.outcome`` (``succeeded``, ``retrying``, ``failed``) and
``jobs.lateness_ms`` (start - due); status ERROR unless it succeeded. Its parent is the W3C
``traceparent`` stored with the job when it was scheduled (the scheduling request's span), so
a trace shows the POST and every attempt it caused, however much later they run.

Metrics (meter ``jobs``): ``jobs.attempt.lateness`` (histogram, ms), ``jobs.attempts``
(counter by handler and outcome), and, observed from the process's counters,
``jobs.storage.requests``, ``jobs.events.sent`` and ``jobs.events.failed``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass
class _Telemetry:
    tracer: trace.Tracer
    lateness: metrics.Histogram
    attempts: metrics.Counter
    observed: dict[str, Callable[[], int]] = field(default_factory=dict)


_on: _Telemetry | None = None


def enable(tracer_provider: trace.TracerProvider | None = None,
           meter_provider: metrics.MeterProvider | None = None) -> None:
    """Turn telemetry on (the global providers unless given: tests pass in-memory ones)."""
    global _on
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("jobs")
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("jobs")
    state = _Telemetry(tracer, meter.create_histogram(
        "jobs.attempt.lateness", unit="ms", description="start - due time of each attempt"),
        meter.create_counter("jobs.attempts", description="attempts by handler and outcome"))
    for name, what in (("jobs.storage.requests", "storage requests of this process"),
                       ("jobs.events.sent", "state-change event messages sent"),
                       ("jobs.events.failed", "state-change event sends that failed")):
        meter.create_observable_counter(name, callbacks=[_observer(state, name)],
                                        description=what)
    _on = state


def disable() -> None:
    global _on
    _on = None


def enabled() -> bool:
    return _on is not None


def observe(name: str, read: Callable[[], int]) -> None:
    """Where an observed counter (``jobs.storage.requests``...) reads its value."""
    if _on is not None:
        _on.observed[name] = read


def _observer(state: _Telemetry, name: str) -> Callable[[CallbackOptions], list[Observation]]:
    def callback(options: CallbackOptions) -> list[Observation]:
        read = state.observed.get(name)
        return [] if read is None else [Observation(read())]
    return callback


def current_traceparent(incoming: str | None = None) -> str | None:
    """What to store with a new job: the request's ``traceparent`` header if valid, else the
    current span's; None when telemetry is off (nothing is stored)."""
    if _on is None:
        return None
    if incoming and TRACEPARENT.fullmatch(incoming.strip()):
        return incoming.strip()
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@dataclass
class AttemptSpan:
    span: Any = None
    handler: str = ""
    lateness_ms: float = 0.0

    def outcome(self, outcome: str, error: str | None = None) -> None:
        if _on is None:
            return
        _on.attempts.add(1, {"jobs.handler": self.handler, "jobs.outcome": outcome})
        _on.lateness.record(self.lateness_ms, {"jobs.handler": self.handler})
        if self.span is not None:
            self.span.set_attribute("jobs.outcome", outcome)
            if outcome != "succeeded":
                self.span.set_status(Status(StatusCode.ERROR, error))


class _Off:
    """What an attempt gets while telemetry is off: one shared object that does nothing."""

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def outcome(self, outcome: str, error: str | None = None) -> None:
        return None


_OFF = _Off()


def attempt_span(job_id: str, handler: str, attempt: int, run: int, due: datetime,
                 started: datetime, traceparent: str | None,
                 ) -> AbstractContextManager[AttemptSpan | _Off]:
    """The span of one attempt; while telemetry is off, a shared no-op (nothing is created)."""
    if _on is None:
        return _OFF
    return _span(job_id, handler, attempt, run, due, started, traceparent)


@contextmanager
def _span(job_id: str, handler: str, attempt: int, run: int, due: datetime,
          started: datetime, traceparent: str | None) -> Iterator[AttemptSpan]:
    assert _on is not None
    lateness = (started - due).total_seconds() * 1000
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    with _on.tracer.start_as_current_span(
            "job.attempt", context=parent, kind=SpanKind.CONSUMER,
            attributes={"jobs.job_id": job_id, "jobs.handler": handler,
                        "jobs.attempt": attempt, "jobs.run": run,
                        "jobs.lateness_ms": lateness}) as span:
        yield AttemptSpan(span, handler, lateness)
