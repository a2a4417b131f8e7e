"""Turning OpenTelemetry on by the ``JOBS_TELEMETRY`` setting (``jobs_core/telemetry.py`` has
the spans and metrics):

* ``off`` (default): nothing is created, recorded or stored with jobs;
* ``azure_monitor``: ``azure-monitor-opentelemetry`` exports to Application Insights (it reads
  ``APPLICATIONINSIGHTS_CONNECTION_STRING``, which the Functions app has when it is linked to
  one);
* ``otlp``: the OTLP/HTTP exporter (``pip install opentelemetry-exporter-otlp-proto-http``; it
  reads the standard ``OTEL_EXPORTER_OTLP_*`` variables);
* ``console``: spans and metrics printed (local debugging).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from jobs_core import telemetry
from jobs_core.settings import SettingsError

MODES = ("off", "console", "otlp", "azure_monitor")


def configure(env: Mapping[str, str] | None = None,
              readers: Mapping[str, Callable[[], int]] | None = None) -> str:
    """Set up export for the mode ``JOBS_TELEMETRY`` names; returns the mode."""
    env = os.environ if env is None else env
    mode = (env.get("JOBS_TELEMETRY") or "off").strip().lower()
    if mode not in MODES:
        raise SettingsError(f"JOBS_TELEMETRY must be one of {list(MODES)}, got {mode!r}")
    if mode == "off" or telemetry.enabled():
        return mode
    if mode == "azure_monitor":
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor()
        telemetry.enable()
    else:
        tracer_provider, meter_provider = _sdk(mode)
        telemetry.enable(tracer_provider, meter_provider)
    for name, read in (readers or {}).items():
        telemetry.observe(name, read)
    return mode


def _sdk(mode: str) -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "jobs")})
    if mode == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise SettingsError("JOBS_TELEMETRY=otlp needs the OTLP exporter: pip install "
                                "opentelemetry-exporter-otlp-proto-http") from None
        spans: Any = OTLPSpanExporter()
        metric_exporter: Any = OTLPMetricExporter()
    else:
        spans, metric_exporter = ConsoleSpanExporter(), ConsoleMetricExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    meter_provider = MeterProvider(resource=resource, metric_readers=[
        PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000)])
    return tracer_provider, meter_provider
