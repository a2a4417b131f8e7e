"""State-change events: every transition reaches the default queue (and the job's notify
queue), batches share messages, and a failing queue never fails or loses the job.

The transitions run on the in-memory store and on Azurite; the events go to a memory sink here
and to real Azurite queues in the ``queue`` tests at the end.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from azure.storage.queue.aio import QueueServiceClient

from jobs_core import Executor, InMemoryStore, JobRequest, JobScheduler, JobsSettings
from jobs_core.events import (
    MAX_MESSAGE_BYTES,
    EventPublisher,
    EventState,
    JobEvent,
    MemoryEventSink,
    pack,
)
from jobs_core.queue_sink import QueueEventSink
from jobs_core.request_counter import RequestCounter
from tests import azurite as azurite_helpers
from tests.jobs_helpers import FAST_RETRY, T0, Clock, Recorder, drain

QUEUE = "job-events"


def make(store: object, rec: Recorder, clock: Clock, sink: MemoryEventSink,
         publisher_clock: Any = None,
         **publisher: Any) -> tuple[JobScheduler, Executor, EventPublisher]:
    if publisher_clock is not None:
        publisher["clock"] = publisher_clock
    events = EventPublisher(sink, QUEUE, **publisher)
    cfg = JobsSettings(slots=1, notify_queues="billing,notify-*")
    scheduler = JobScheduler(store, rec.registry, cfg, clock=clock,  # type: ignore[arg-type]
                             events=events)
    executor = Executor(store, rec.registry, cfg, owner="exec-a", clock=clock,  # type: ignore[arg-type]
                        events=events)
    return scheduler, executor, events


def states_by_job(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in events:
        out.setdefault(event["job_id"], []).append(event["state"])
    return out


async def test_every_transition_is_published_once_in_order(store: object) -> None:
    clock, rec, sink = Clock(), Recorder(), MemoryEventSink()
    scheduler, executor, events = make(store, rec, clock, sink)
    ok = (await scheduler.schedule(JobRequest("echo", {"a": 1}, notify="billing"))).job
    flaky = (await scheduler.schedule(JobRequest("flaky", {"fail_times": 1},
                                                 retry=FAST_RETRY))).job
    doomed = (await scheduler.schedule(JobRequest("always_fails", retry=FAST_RETRY))).job
    later = (await scheduler.schedule(JobRequest("echo", delay=3600))).job
    await scheduler.cancel(later.id, "not needed")
    await drain(executor, 1)

    seen = sink.events(QUEUE)
    assert states_by_job(seen) == {
        ok.id: ["scheduled", "started", "succeeded"],
        flaky.id: ["scheduled", "started", "retrying", "started", "succeeded"],
        doomed.id: ["scheduled", "started", "retrying", "started", "retrying", "started",
                    "failed"],
        later.id: ["scheduled", "cancelled"],
    }
    assert len({e["id"] for e in seen}) == len(seen)  # ids tell transitions apart
    done = next(e for e in seen if e["job_id"] == ok.id and e["state"] == "succeeded")
    assert done["result"] == {"echo": {"a": 1}, "attempt": 1} and done["handler"] == "echo"
    assert done["v"] == 1 and done["type"] == "job.succeeded" and done["attempt"] == 1
    failed = [e for e in seen if e["job_id"] == doomed.id][-1]
    assert failed["error"]["message"] == "always" and failed["attempt"] == 3
    retrying = next(e for e in seen if e["state"] == "retrying")
    assert retrying["retry_at"] is not None and retrying["error"]["type"] == "RuntimeError"
    # the notify queue gets its own job's events only
    assert states_by_job(sink.events("billing")) == {ok.id: ["scheduled", "started",
                                                             "succeeded"]}
    assert events.stats.send_failures == 0 and events.pending == 0


async def test_a_batch_shares_messages(store: object) -> None:
    clock, rec, sink = Clock(), Recorder(), MemoryEventSink()
    scheduler, executor, _ = make(store, rec, clock, sink)
    await scheduler.schedule_many([JobRequest("echo", {"i": i}) for i in range(60)])
    assert len(sink.queues[QUEUE]) == 1  # 60 scheduled events (~330 bytes each), one message
    await drain(executor, 1)
    # each job's start is recorded when its handler can really start (waves of
    # JOBS_MAX_CONCURRENCY = 32), so the 60 starts and 60 outcomes share a few messages
    assert len(sink.events(QUEUE)) == 180
    assert 3 <= len(sink.queues[QUEUE]) <= 1 + 2 * 2 * 2  # not one message per event
    assert sink.sends == len(sink.queues[QUEUE])


async def test_a_failing_queue_never_fails_or_loses_the_job(store: object) -> None:
    clock, rec, sink = Clock(), Recorder(), MemoryEventSink(fail_next=1)
    ticks = [0.0]
    scheduler, executor, events = make(store, rec, clock, sink, retry_base_seconds=10,
                                       publisher_clock=lambda: ticks[0])
    job = (await scheduler.schedule(JobRequest("echo", {"x": 1}))).job  # the send fails
    await executor.run_cycle(0)  # started, outcome: wait behind it, no new attempt
    assert (await scheduler.get(job.id)).status.value == "succeeded"
    assert rec.runs[job.id] == 1
    assert events.stats.send_failures == 1 and events.pending == 3 and sink.sends == 1
    assert sink.events(QUEUE) == []
    await executor.run_cycle(0)  # back-off not over: nothing re-sent yet
    assert events.pending == 3
    ticks[0] = 100.0
    await executor.run_cycle(0)  # plan flushes what is due
    assert events.pending == 0 and events.stats.retried == 3 and sink.sends == 2
    assert states_by_job(sink.events(QUEUE)) == {job.id: ["scheduled", "started",
                                                          "succeeded"]}


async def test_the_pending_buffer_is_bounded_and_counts_what_it_drops() -> None:
    sink = MemoryEventSink(fail_next=10)
    publisher = EventPublisher(sink, QUEUE, max_pending=2)
    for i in range(4):
        event = JobEvent(f"j{i}", "echo", EventState.SCHEDULED, T0)
        await publisher.publish([event])
    assert publisher.pending == 2 and publisher.stats.dropped == 2


def test_pack_splits_at_the_message_limit_and_truncates_big_results() -> None:
    events = [JobEvent(f"j{i}", "echo", EventState.SUCCEEDED, T0, result="x" * 2000)
              for i in range(40)]
    messages = pack(events)
    assert len(messages) == 3
    assert all(len(m.encode()) <= MAX_MESSAGE_BYTES for m in messages)
    assert sum(len(json.loads(m)["events"]) for m in messages) == 40
    big = JobEvent("j", "echo", EventState.SUCCEEDED, T0, result={"blob": "y" * 20_000})
    assert big.to_dict()["result"] == {"truncated": True, "bytes": len('{"blob":""}') + 20_000}


# --- the real adapter on Azurite queues -----------------------------------------------------
async def read_queue(service: QueueServiceClient, name: str) -> list[dict[str, Any]]:
    client = service.get_queue_client(name)
    out = []
    async for message in client.receive_messages(messages_per_page=32, max_messages=1000):
        body = json.loads(base64.b64decode(message.content))
        assert body["v"] == 1 and body["type"] == "job-events"
        out.extend(body["events"])
    return out


@pytest.mark.azurite
async def test_events_reach_azurite_queues_as_base64_json(
        azurite: azurite_helpers.Azurite) -> None:
    counter = RequestCounter()
    settings = azurite_helpers.settings(azurite, azurite_helpers.unique_container())
    sink = QueueEventSink.from_settings(settings, counter)
    assert sink is not None
    default, notify = f"ev-{azurite_helpers.unique_container()}", "notify-billing"
    clock, rec = Clock(), Recorder()
    store = InMemoryStore()
    events = EventPublisher(sink, default)
    cfg = JobsSettings(slots=1, notify_queues="billing,notify-*")
    scheduler = JobScheduler(store, rec.registry, cfg, clock=clock, events=events)
    executor = Executor(store, rec.registry, cfg, owner="a", clock=clock, events=events)
    jobs = [s.job for s in await scheduler.schedule_many(
        [JobRequest("echo", {"i": i}, notify=notify if i == 0 else None) for i in range(50)])]
    await drain(executor, 1)
    await events.close()
    # packed, not one message per event: per queue one message for the 50 scheduled events,
    # then the starts and outcomes of two waves (JOBS_MAX_CONCURRENCY 32), which the
    # executor's outbox may split or merge depending on timing
    assert 2 + 2 <= counter.snapshot().get("enqueue", 0) <= 2 * (1 + 2 * 2)
    async with QueueServiceClient.from_connection_string(azurite.connection_string) as service:
        seen = states_by_job(await read_queue(service, default))
        assert seen == {j.id: ["scheduled", "started", "succeeded"] for j in jobs}
        assert states_by_job(await read_queue(service, notify)) == {
            jobs[0].id: ["scheduled", "started", "succeeded"]}


@pytest.mark.azurite
async def test_event_messages_never_expire(azurite: azurite_helpers.Azurite) -> None:
    """The queue service drops a message after 7 days unless told otherwise: the events of a
    consumer down for longer were lost, and the publisher never sends an event twice."""
    sink = QueueEventSink.from_settings(azurite_helpers.settings(azurite, "jobs"))
    assert sink is not None
    queue = f"ttl-{azurite_helpers.unique_container()}"
    await sink.send(queue, ['{"events": []}'])
    await sink.close()
    async with QueueServiceClient.from_connection_string(azurite.connection_string) as service:
        (message,) = await service.get_queue_client(queue).peek_messages()
        assert message.expires_on.year == 9999, message.expires_on


class _Versions(RequestCounter):
    """Counts requests, and keeps the service version each was sent with."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: set[str] = set()

    def on_request(self, request: Any) -> None:
        super().on_request(request)
        self.versions.add(request.http_request.headers.get("x-ms-version", ""))


@pytest.mark.azurite
async def test_queue_requests_use_the_pinned_service_version(
        azurite: azurite_helpers.Azurite) -> None:
    """JOBS_STORAGE_API_VERSION pins the version of every storage request, the queues' too.
    The sink sent the SDK's newest version whatever the setting: with an Azurite that checks
    versions (run without --skipApiVersionCheck, what the setting is documented for) the blob
    store worked and every queue was refused, so no event was ever delivered (measured:
    'The API version 2026-10-06 is not supported by Azurite')."""
    settings = azurite_helpers.settings(azurite, "jobs")
    assert settings.api_version == azurite_helpers.API_VERSION
    versions = _Versions()
    sink = QueueEventSink.from_settings(settings, versions)
    assert sink is not None
    await sink.send(f"ver-{azurite_helpers.unique_container()}", ['{"events": []}'])
    await sink.close()
    assert versions.snapshot() == {"create_queue": 1, "enqueue": 1}
    assert versions.versions == {settings.api_version}


@pytest.mark.azurite
async def test_an_unreachable_queue_service_is_retried_and_counted(
        azurite: azurite_helpers.Azurite) -> None:
    dead = azurite_helpers.Azurite(azurite.blob_endpoint, "http://127.0.0.1:9/devstoreaccount1",
                                   azurite_helpers.connection_string(
                                       azurite.blob_endpoint, "http://127.0.0.1:9/devstoreaccount1"))
    sink = QueueEventSink.from_settings(azurite_helpers.settings(dead, "jobs"))
    assert sink is not None
    publisher = EventPublisher(sink, QUEUE, retry_base_seconds=60)
    for i in range(5):
        await publisher.publish([JobEvent(f"j{i}", "echo", EventState.SCHEDULED, T0)])
    # one failed attempt; the later events wait behind it instead of each trying again
    assert publisher.stats.send_failures == 1 and publisher.pending == 5
    await sink.close()


async def test_events_carry_labels_and_a_retry_is_a_new_run(store: object) -> None:
    clock, rec, sink = Clock(), Recorder(), MemoryEventSink()
    scheduler, executor, _ = make(store, rec, clock, sink)
    job = (await scheduler.schedule(JobRequest("echo", delay=600,
                                               labels={"team": "billing"}))).job
    await scheduler.cancel(job.id)
    await scheduler.retry(job.id)
    await drain(executor, 1)
    seen = [e for e in sink.events(QUEUE) if e["job_id"] == job.id]
    assert [(e["state"], e["run"]) for e in seen] == [
        ("scheduled", 0), ("cancelled", 0), ("scheduled", 1), ("started", 1), ("succeeded", 1)]
    assert all(e["labels"] == {"team": "billing"} for e in seen)
    listed = await scheduler.list(labels={"team": "billing"})
    assert [j.id for j in listed.jobs] == [job.id]
    assert (await scheduler.list(labels={"team": "ops"})).jobs == []
