"""The retention timer never raises: it logs the report, or the failure, and waits for its next
run. The Durable client points at a closed port (a real SDK client, an unreachable host)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import pytest

from devhost.management_api import client_binding
from devhost.testing import free_port
from jobs_api import maintenance
from jobs_core import InMemoryStore, JobRequest, JobsSettings
from jobs_core.errors import TransientStoreError
from jobs_core.store import BlobInfo
from tests.jobs_helpers import Clock, Recorder, drain, make


@dataclass
class StubRuntime:
    """What maintenance needs from jobs_api.runtime.Runtime: settings, the store, and
    whether events are published (they are not here)."""

    store_: InMemoryStore
    settings: JobsSettings = field(default_factory=JobsSettings)
    events: None = None

    async def store(self) -> InMemoryStore:
        return self.store_


class UnreachableStore(InMemoryStore):
    async def list(self, prefix: str) -> list[BlobInfo]:
        raise TransientStoreError("list 'shards/': 503 ServerBusy")


def unreachable_durable_api() -> df.DurableOrchestrationClient:
    binding = client_binding(f"http://127.0.0.1:{free_port()}", "JobsHub", "key")
    return df.DurableOrchestrationClient(json.dumps(binding))


async def old_finished_store() -> InMemoryStore:
    store = InMemoryStore()
    clock = Clock(datetime.now(UTC) - timedelta(days=10))
    scheduler, executor = make(store, Recorder(), clock, slots=1)
    await scheduler.schedule(JobRequest("echo", {}))
    await drain(executor, 1)
    return store


async def test_timer_logs_its_report_even_when_the_durable_api_fails(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    store = await old_finished_store()
    monkeypatch.setattr(maintenance, "get_runtime", lambda: StubRuntime(store))
    caplog.set_level("INFO", logger=maintenance.log.name)
    await maintenance.purge_on_timer(unreachable_durable_api())
    [line] = [r.getMessage() for r in caplog.records if "retention purge: " in r.getMessage()]
    report = json.loads(line.split("retention purge: ", 1)[1])
    assert (report["shards"]["shards_deleted"], report["shards"]["jobs_deleted"]) == (1, 1)
    assert report["orchestrations"]["instances_deleted"] == 0
    assert report["orchestrations"]["error"]  # why the history was not purged
    assert await store.list("shards/") == []


async def test_timer_swallows_a_storage_failure(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(maintenance, "get_runtime", lambda: StubRuntime(UnreachableStore()))
    await maintenance.purge_on_timer(unreachable_durable_api())
    failed = [r for r in caplog.records if "retention purge failed" in r.getMessage()]
    assert failed and "503 ServerBusy" in (failed[0].exc_text or "")
