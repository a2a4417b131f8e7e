"""State-change events published from the job log (jobs_core/event_log.py), in memory."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from jobs_core import Executor, InMemoryStore, JobRequest, JobScheduler, JobsSettings, RetryPolicy
from jobs_core.event_log import EVENTS_AT, EVENTS_LAG, LogPublisher
from jobs_core.events import EventPublisher, EventSendError, MemoryEventSink
from jobs_core.retention import purge_shards
from tests.jobs_helpers import Clock, Recorder, drain

TWO_TRIES = RetryPolicy(max_attempts=2, base_delay=5, max_delay=5, jitter=0)
SETTINGS = JobsSettings(slots=1, retry=RetryPolicy(jitter=0), notify_queues="billing")


def _ids(sink: MemoryEventSink, queue: str = "job-events") -> Counter[str]:
    return Counter(e["id"] for e in sink.events(queue))


class FailingQueue(MemoryEventSink):
    """A queue service where the queues in ``down`` refuse every message."""

    def __init__(self, down: set[str]) -> None:
        super().__init__()
        self.down = down

    async def send(self, queue: str, messages: list[str]) -> None:
        if queue in self.down:
            self.sends += 1
            raise EventSendError(f"queue {queue!r} is down (test)")
        await super().send(queue, messages)


async def _every_kind_of_change(scheduler: JobScheduler, executor: Executor,
                                clock: Clock) -> None:
    await scheduler.schedule(JobRequest("echo", {"n": 1}, notify="billing"))
    await scheduler.schedule(JobRequest("flaky", {"fail_times": 1}, retry=TWO_TRIES))
    await scheduler.schedule(JobRequest("always_fails", {}, retry=TWO_TRIES))
    await scheduler.schedule(JobRequest("echo", {}, recurrence={"interval_seconds": 60}))
    later = (await scheduler.schedule(JobRequest("echo", {}, delay=3600))).job
    cancelled = (await scheduler.schedule(JobRequest("echo", {}, delay=3600))).job
    moved = (await scheduler.schedule(JobRequest("echo", {}, delay=3600))).job
    clock.advance(1)  # (an event id holds its time: two changes at one instant share it)
    await scheduler.cancel(cancelled.id, "not needed")
    await scheduler.run_now(later.id)
    await scheduler.reschedule(moved.id, clock.now + timedelta(seconds=30))
    for _ in range(4):
        await drain(executor, 1)
        clock.advance(31)


async def test_the_log_yields_exactly_the_events_sent_eagerly() -> None:
    """Same events, same ids: a subscriber deduplicating by id sees each change once."""
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    eager = MemoryEventSink()
    publisher = EventPublisher(eager)
    scheduler = JobScheduler(store, recorder.registry, SETTINGS, clock=clock, events=publisher)
    executor = Executor(store, recorder.registry, SETTINGS, owner="x", clock=clock,
                        events=publisher)
    await _every_kind_of_change(scheduler, executor, clock)

    from_log = MemoryEventSink()
    report = await LogPublisher(store, from_log, "job-events", clock=clock).publish(0)

    assert _ids(from_log) == _ids(eager) and sum(_ids(eager).values()) >= 20
    assert set(_ids(from_log).values()) == {1}
    states = Counter(e["state"] for e in from_log.events("job-events"))
    assert {"scheduled", "started", "retrying", "succeeded", "failed", "cancelled"} <= set(states)
    assert _ids(from_log, "billing") == _ids(eager, "billing") and _ids(from_log, "billing")
    assert report.events == sum(_ids(from_log).values()) and report.send_failures == 0
    eager_events = {e["id"]: e for e in eager.events("job-events")}
    assert all(e == eager_events[e["id"]] for e in from_log.events("job-events"))


async def test_events_of_a_process_that_died_before_sending_are_sent_from_the_log() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler = JobScheduler(store, recorder.registry, SETTINGS, clock=clock)  # sends nothing
    executor = Executor(store, recorder.registry, SETTINGS, owner="x", clock=clock)
    job = (await scheduler.schedule(JobRequest("echo", {"n": 1}))).job
    await drain(executor, 1)
    sink = MemoryEventSink()
    publisher = LogPublisher(store, sink, "job-events", clock=clock)

    first = await publisher.publish(0)
    again = await publisher.publish(0)  # the cursor moved: nothing read, nothing sent
    cold = await LogPublisher(store, sink, "job-events", clock=clock).publish(0)

    assert [(e["job_id"], e["state"]) for e in sink.events("job-events")] == [
        (job.id, "scheduled"), (job.id, "started"), (job.id, "succeeded")]
    assert (first.blobs_read, again.blobs_read, cold.blobs_read) == (1, 0, 0)
    assert (again.events, cold.events) == (0, 0)


async def test_a_warm_and_a_cold_publisher_send_only_what_is_new() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler = JobScheduler(store, recorder.registry, SETTINGS, clock=clock)
    executor = Executor(store, recorder.registry, SETTINGS, owner="x", clock=clock)
    await scheduler.schedule(JobRequest("echo", {"n": 1}))
    sink = MemoryEventSink()
    warm = LogPublisher(store, sink, "job-events", clock=clock)
    await warm.publish(0)
    await drain(executor, 1)
    await warm.publish(0)  # reads from its cursor: only started + succeeded
    await scheduler.schedule(JobRequest("echo", {"n": 2}))
    cold = await LogPublisher(store, sink, "job-events", clock=clock).publish(0)

    assert [e["state"] for e in sink.events("job-events")] == [
        "scheduled", "started", "succeeded", "scheduled"]
    assert cold.events == 1 and set(_ids(sink).values()) == {1}


async def test_a_dead_queue_holds_back_its_own_cursor_only() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler = JobScheduler(store, recorder.registry, SETTINGS, clock=clock)
    executor = Executor(store, recorder.registry, SETTINGS, owner="x", clock=clock)
    sink = FailingQueue(down={"billing"})
    publisher = LogPublisher(store, sink, "job-events", clock=clock)
    job = (await scheduler.schedule(JobRequest("echo", {}, notify="billing"))).job
    await publisher.publish(0)
    await drain(executor, 1)
    report = await publisher.publish(0)
    (blob,) = await store.list("shards/")

    assert [e["state"] for e in sink.events("job-events")] == ["scheduled", "started",
                                                               "succeeded"]
    assert sink.events("billing") == [] and report.lagging == {"billing": 1}
    assert blob.metadata[EVENTS_AT] == str(blob.size)
    assert blob.metadata[EVENTS_LAG] == "billing=0"
    kept = await purge_shards(store, SETTINGS, clock.now + timedelta(days=30),
                              timedelta(days=1), events=True)
    assert (kept.shards_kept_events, kept.shards_deleted) == (1, 0)

    sink.down.clear()
    clock.advance(600)  # past the back-off
    publisher._dead.clear()  # (this process's memory of the failure: another process)
    caught_up = await publisher.publish(0)

    assert [(e["job_id"], e["state"]) for e in sink.events("billing")] == [
        (job.id, "scheduled"), (job.id, "started"), (job.id, "succeeded")]
    assert len(sink.events("job-events")) == 3  # the healthy queue got nothing twice
    assert caught_up.lagging == {}
    (blob,) = await store.list("shards/")
    assert EVENTS_LAG not in blob.metadata
    purged = await purge_shards(store, SETTINGS, clock.now + timedelta(days=30),
                                timedelta(days=1), events=True)
    assert purged.shards_deleted == 1


async def test_a_summary_written_from_an_old_listing_only_causes_duplicates() -> None:
    """Cursor writes are not conditional: an older cursor put back re-sends, never skips."""
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler = JobScheduler(store, recorder.registry, SETTINGS, clock=clock)
    executor = Executor(store, recorder.registry, SETTINGS, owner="x", clock=clock)
    await scheduler.schedule(JobRequest("echo", {}))
    (old,) = await store.list("shards/")
    sink = MemoryEventSink()
    publisher = LogPublisher(store, sink, "job-events", clock=clock)
    await publisher.publish(0)
    await store.set_metadata(old.name, old.metadata)  # a stale summary write
    await drain(executor, 1)
    await publisher.publish(0)

    ids = _ids(sink)
    assert set(json.loads(m)["type"] for m in sink.queues["job-events"]) == {"job-events"}
    assert len(ids) == 3 and ids.most_common(1)[0][1] == 2  # "scheduled" twice, none lost


async def test_plans_ask_for_publishing_only_when_a_blob_has_new_events() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    sink = MemoryEventSink()
    scheduler = JobScheduler(store, recorder.registry, SETTINGS, clock=clock)
    executor = Executor(store, recorder.registry, SETTINGS, owner="x", clock=clock,
                        events=EventPublisher(sink))
    await scheduler.schedule(JobRequest("echo", {}, delay=600))
    assert (await executor.plan(0)).publish
    await LogPublisher(store, sink, "job-events", clock=clock).publish(0)
    assert not (await executor.plan(0)).publish


class RunsRightAfterTheAdd(InMemoryStore):
    """Runs ``after_add`` (another process's cycle) once an add record has landed."""

    def __init__(self) -> None:
        super().__init__()
        self.after_add = None

    async def append(self, name, data, *, create_metadata):  # type: ignore[no-untyped-def]
        result = await super().append(name, data, create_metadata=create_metadata)
        if b'"op":"add"' in data and self.after_add is not None:
            race, self.after_add = self.after_add, None
            await race()
        return result


async def test_a_keyed_job_that_started_before_its_post_answered_is_announced_as_added() -> None:
    """Seed 3112: the POST read its job back after it had started, and announced it as
    ``scheduled`` with attempt 1: an event the log never holds (I10)."""
    store, clock, recorder = RunsRightAfterTheAdd(), Clock(), Recorder()
    eager = MemoryEventSink()
    publisher = EventPublisher(eager)
    scheduler = JobScheduler(store, recorder.registry, SETTINGS, clock=clock, events=publisher)
    executor = Executor(store, recorder.registry, SETTINGS, owner="x", clock=clock)
    store.after_add = lambda: drain(executor, 1)
    scheduled = await scheduler.schedule(JobRequest("echo", {}, idempotency_key="k1"))
    assert scheduled.created and recorder.runs[scheduled.job.id] == 1
    from_log = MemoryEventSink()
    await LogPublisher(store, from_log, "job-events", clock=clock).publish(0)
    sent = [e for e in eager.events("job-events") if e["state"] == "scheduled"]
    assert len(sent) == 1 and sent[0]["attempt"] == 0
    assert set(_ids(eager)) <= set(_ids(from_log))


async def test_more_queues_behind_than_the_metadata_names_hold_the_cursor_not_lose_events(
        ) -> None:
    """A queue-service outage with many notify queues routed in one blob: past
    ``MAX_LAGGING_QUEUES`` behind, the publisher gave up on the queues with the oldest
    offsets ("events ... are not sent"): lost events, against I10. Now the blob's cursor is
    held back, so every queue gets its events once the service is back, and the queues that
    had them get them again (duplicates by id), no sooner than the blob's retry."""
    from jobs_core.event_log import EVENTS_HELD, MAX_LAGGING_QUEUES, needs_publishing

    settings = JobsSettings(slots=1, retry=RetryPolicy(jitter=0), notify_queues="t-*")
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler = JobScheduler(store, recorder.registry, settings, clock=clock)
    tenants = [f"t-{i:02d}" for i in range(MAX_LAGGING_QUEUES + 4)]
    jobs = {}
    for queue in tenants:  # one blob, each tenant's job announced to its own queue
        jobs[queue] = (await scheduler.schedule(JobRequest("echo", {}, delay=3600,
                                                           notify=queue))).job.id
        clock.advance(0.001)
    sink = FailingQueue(down=set(tenants))
    publisher = LogPublisher(store, sink, "job-events", clock=clock)
    first = await publisher.publish(0)
    (blob,) = await store.list("shards/")

    assert set(first.lagging) == set(tenants)  # every one reported behind
    assert blob.metadata[EVENTS_HELD] == "1" and int(blob.metadata[EVENTS_AT]) < blob.size
    assert len(blob.metadata.get(EVENTS_LAG, "").split(";")) <= MAX_LAGGING_QUEUES
    assert sum(_ids(sink).values()) == len(tenants)  # the healthy queue had them all
    await scheduler.schedule(JobRequest("echo", {}, delay=3600))  # the blob grows meanwhile
    (blob,) = await store.list("shards/")
    assert not needs_publishing(blob.metadata, blob.size, clock.now)  # its retry paces it

    sink.down.clear()
    clock.advance(600)
    publisher._dead.clear()  # (another process, or after this one's short memory)
    await publisher.publish(0)
    (blob,) = await store.list("shards/")

    for queue, job_id in jobs.items():  # nothing given up
        assert [(e["job_id"], e["state"]) for e in sink.events(queue)] == [
            (job_id, "scheduled")], queue
    counts = _ids(sink)
    assert len(counts) == len(tenants) + 1 and set(counts.values()) <= {1, 2}
    assert EVENTS_HELD not in blob.metadata and EVENTS_LAG not in blob.metadata
    assert blob.metadata[EVENTS_AT] == str(blob.size)


def test_a_summary_write_keeps_every_key_the_publisher_writes() -> None:
    """The planner rewrites a blob's metadata with its summary; a publisher key it dropped
    (``events_held`` at first) would make a held blob publish every cycle again."""
    from jobs_core.event_log import EVENT_KEYS
    from jobs_core.shard_summary import KEPT_KEYS

    assert set(EVENT_KEYS) <= set(KEPT_KEYS)
