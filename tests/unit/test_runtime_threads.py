"""``get_runtime()`` is called from more than one thread of a worker process: the slot
orchestrator is a plain ``def``, which the Python worker runs on its thread pool (several
episodes at once on a cold instance), while the ``async`` routes and activities run on the
event loop's thread. Every caller must get the one process-wide ``Runtime``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from jobs_api import runtime as runtime_module
from jobs_api import telemetry_setup
from jobs_core import HandlerRegistry
from jobs_core.errors import TransientStoreError

AZURITE_LIKE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
                "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;")


def test_concurrent_first_calls_share_one_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold process: four orchestrator episodes (thread pool) and a request reach
    ``get_runtime()`` together. Each built a ``Runtime`` of its own while the first was still
    being built (telemetry set-up, e.g. ``configure_azure_monitor``, takes its time): the
    callers held different objects (and stores), the telemetry readers counted the requests
    of a runtime that was then dropped, and a second registration of the built-in ``http``
    handler could raise in an orchestrator episode (failing the slot's instance)."""
    monkeypatch.setenv("JOBS_EVENTS_QUEUE", "off")
    monkeypatch.setattr(runtime_module, "_runtime", None)
    monkeypatch.setattr(runtime_module, "registry", HandlerRegistry())
    built: list[object] = []

    def slow_configure(*args: Any, **kwargs: Any) -> str:
        built.append(object())
        time.sleep(0.2)  # exporter set-up
        return "off"

    monkeypatch.setattr(telemetry_setup, "configure", slow_configure)
    start = threading.Barrier(5)
    got: list[object] = []
    errors: list[BaseException] = []

    def call() -> None:
        start.wait()
        try:
            got.append(runtime_module.get_runtime())
        except BaseException as exc:  # (a second registration of "http")
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(built) == 1, f"{len(built)} runtimes built"
    assert len({id(r) for r in got}) == 1 and got[0] is runtime_module._runtime


async def test_a_failed_store_open_leaves_no_queue_client_behind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Storage down: every request tries to open the store again. The events' queue client
    was built before each try and dropped unclosed when it failed (a socket pool each)."""
    monkeypatch.setattr(runtime_module, "registry", HandlerRegistry())
    monkeypatch.setenv("JOBS_STORAGE_CONNECTION_STRING", AZURITE_LIKE)
    sinks: list[object] = []
    real = runtime_module.QueueEventSink.from_settings

    def counted(*args: Any, **kwargs: Any) -> Any:
        sink = real(*args, **kwargs)
        sinks.append(sink)
        return sink

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise TransientStoreError("storage unavailable")

    monkeypatch.setattr(runtime_module.QueueEventSink, "from_settings", counted)
    monkeypatch.setattr(runtime_module.AzureBlobStore, "open", unavailable)
    runtime = runtime_module.Runtime()
    for _ in range(3):
        with pytest.raises(TransientStoreError):
            await runtime.store()
    assert sinks == [] and runtime.events is None
