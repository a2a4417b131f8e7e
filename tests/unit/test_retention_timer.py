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
from jobs_core import InMemoryStore, JobRequest, JobScheduler, JobsSettings
from jobs_core.errors import TransientStoreError
from jobs_core.store import BlobInfo
from tests.jobs_helpers import Clock, Recorder, drain, make


@dataclass
class StubRuntime:
    """What maintenance needs from jobs_api.runtime.Runtime: settings, the store, whether
    events are published (they are not here), and a scheduler (its key index)."""

    store_: InMemoryStore
    settings: JobsSettings = field(default_factory=JobsSettings)
    events: None = None
    scheduler_: JobScheduler | None = None

    async def store(self) -> InMemoryStore:
        return self.store_

    async def scheduler(self) -> JobScheduler:
        if self.scheduler_ is None:
            self.scheduler_ = make(self.store_, Recorder(), Clock(), slots=1)[0]
        return self.scheduler_


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


async def test_the_purge_deletes_key_blobs_past_the_key_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """From review (stop 27): KeyIndex.purge was never called outside tests. Key blobs piled
    up forever, and a new instance's first keyed request in a partition read every blob the
    partition ever had."""
    clock = Clock(datetime.now(UTC) - timedelta(days=30))
    store = InMemoryStore()
    scheduler, _ = make(store, Recorder(), clock, slots=1)
    scheduler.keys.seal_bytes = 1  # (scaled down from 4 MiB: every claim fills its blob)
    part = scheduler.keys.partition("order-0")
    keys = [k for k in (f"order-{i}" for i in range(20_000))
            if scheduler.keys.partition(k) == part][:30]
    for key in keys:  # one keyed request a day, for 30 days
        await scheduler.schedule(JobRequest("echo", key, idempotency_key=key))
        clock.advance(86400)
    prefix = f"keys/p{part:03d}-"
    written = len(await store.list(prefix))
    assert written >= 30
    runtime = StubRuntime(store, scheduler.settings)
    monkeypatch.setattr(maintenance, "get_runtime", lambda: runtime)
    dry = await maintenance.run_purge(unreachable_durable_api(), maintenance.PurgeOptions(
        7.0, dry_run=True), now=clock.now)
    assert dry["keys"]["blobs_deleted"] is None and len(await store.list(prefix)) == written
    report = await maintenance.run_purge(unreachable_durable_api(),
                                         maintenance.PurgeOptions(7.0), now=clock.now)
    left = await store.list(prefix)
    assert report["keys"] == {"blobs_deleted": written - len(left), "window_days": 7.0}
    assert len(left) <= 10, f"{len(left)} key blobs kept; the key window is 7 days"
    cold, _ = make(store, Recorder(), clock, slots=1)  # a new instance: its first keyed request
    before = store.requests.get("read", 0)
    again = await cold.schedule(JobRequest("echo", keys[-1], idempotency_key=keys[-1]))
    assert again.created is False  # (a claim within the window is kept)
    assert store.requests.get("read", 0) - before <= 12
