"""The log publisher on Azurite: blob metadata as the cursor, real queues, a dead queue."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueServiceClient

from jobs_core import Executor, JobRequest, JobScheduler, JobsSettings
from jobs_core.blob_store import AzureBlobStore
from jobs_core.event_log import EVENTS_AT, EVENTS_LAG, LogPublisher
from jobs_core.queue_sink import QueueEventSink
from jobs_core.retention import purge_shards
from jobs_core.storage_settings import StorageSettings
from tests import azurite as azurite_helpers
from tests.jobs_helpers import Clock, Recorder, drain

pytestmark = pytest.mark.azurite
SETTINGS = JobsSettings(slots=1)


def _sink(connection_string: str) -> QueueEventSink:
    sink = QueueEventSink.from_settings(StorageSettings(
        container="unused", connection_string=connection_string,
        api_version=azurite_helpers.API_VERSION))
    assert sink is not None
    return sink


def _states(azurite: azurite_helpers.Azurite, name: str) -> list[tuple[str, str]]:
    queue = QueueServiceClient.from_connection_string(
        azurite.connection_string).get_queue_client(name)
    events: list[dict[str, Any]] = []
    for message in queue.receive_messages(messages_per_page=32, max_messages=1000):
        events.extend(json.loads(base64.b64decode(message.content))["events"])
    return [(e["job_id"], e["state"]) for e in events]


async def test_a_dead_queue_lags_in_blob_metadata_then_catches_up(
        azurite: azurite_helpers.Azurite, azurite_store: AzureBlobStore) -> None:
    assert azurite.queue_endpoint
    store, clock, recorder = azurite_store, Clock(), Recorder()
    scheduler = JobScheduler(store, recorder.registry, SETTINGS, clock=clock)
    executor = Executor(store, recorder.registry, SETTINGS, owner="x", clock=clock)
    main_queue = f"ev-{azurite_helpers.unique_container()}"
    dead_port = azurite_helpers._free_ports(1)[0]
    dead = _sink(azurite_helpers.connection_string(
        azurite.blob_endpoint, f"http://127.0.0.1:{dead_port}/devstoreaccount1"))
    job = (await scheduler.schedule(JobRequest("echo", {"n": 1}))).job
    await drain(executor, 1)

    refused = await LogPublisher(store, dead, main_queue, clock=clock).publish(0)
    (blob,) = await store.list("shards/")

    assert refused.send_failures == 1 and refused.lagging == {main_queue: 1}
    assert blob.metadata[EVENTS_AT] == str(blob.size)
    assert blob.metadata[EVENTS_LAG] == f"{main_queue}=0"
    kept = await purge_shards(store, SETTINGS, clock.now + timedelta(days=30),
                              timedelta(days=1), events=True)
    assert kept.shards_kept_events == 1
    await dead.close()

    clock.advance(60)
    live = _sink(azurite.connection_string)
    caught_up = await LogPublisher(store, live, main_queue, clock=clock).publish(0)
    await live.close()
    (blob,) = await store.list("shards/")

    assert caught_up.lagging == {} and caught_up.messages_sent == 1
    assert EVENTS_LAG not in blob.metadata
    assert _states(azurite, main_queue) == [(job.id, "scheduled"), (job.id, "started"),
                                            (job.id, "succeeded")]
