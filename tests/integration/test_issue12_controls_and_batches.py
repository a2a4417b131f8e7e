"""Regression tests for three defects of issue #12 (fixed in 0eefd1c), on the in-memory store:

- defect 5: a control (cancel, run-now) whose record lost a race to another writer was
  answered 200 and announced, though the replay ignored its record (I6, I10). It now raises
  ``InvalidTransitionError`` (409) naming the job's real state, and sends no event.
- defect 6d: one item of ``schedule_many`` whose idempotency key was used for another payload
  failed the whole batch. It is now answered alone as a conflict (409); the others are
  scheduled, durable and readable (core, and through ``jobs_api.http_api.create_batch``) (I5).
- defect 11b: a batch spanning two shards made one durable, failed on the other and sent no
  events. Each shard is now answered on its own: the committed shard's jobs as created, with
  their ``scheduled`` events; the failed shard's items as storage errors (503) (I1, I10).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import azure.functions as func
import pytest

import function_app  # noqa: F401  (registers the sample handlers: echo)
from jobs_api import http_api
from jobs_api import runtime as runtime_module
from jobs_api.problems import problem_of
from jobs_core import InMemoryStore, JobRequest, JobScheduler, JobsSettings, JobStatus
from jobs_core.errors import (
    IdempotencyConflictError,
    InvalidTransitionError,
    StoreError,
    TransientStoreError,
)
from jobs_core.events import EventPublisher, MemoryEventSink
from jobs_core.handlers import JobContext
from jobs_core.ids import parse_job_id, slot_prefix
from jobs_core.scheduler import Scheduled
from jobs_core.store import AppendResult
from tests.jobs_helpers import Clock, Recorder, make

QUEUE = "job-events"


class WriteFirst(InMemoryStore):
    """On the first append whose block holds ``marker``: ``competing()`` (another writer's
    change) lands first, between the control's read and its append."""

    def __init__(self, marker: bytes) -> None:
        super().__init__()
        self.marker = marker
        self.competing: Callable[[], Awaitable[object]] | None = None

    async def append(self, name: str, data: bytes, *,
                     create_metadata: dict[str, str]) -> AppendResult:
        if self.marker in data and self.competing is not None:
            competing, self.competing = self.competing, None
            await competing()
        return await super().append(name, data, create_metadata=create_metadata)


class ShardDown(InMemoryStore):
    """Every append to a blob under ``prefix`` (one slot's shard blobs) fails before writing
    (a 503 that outlasts the adapter's retries)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.refused = 0

    async def append(self, name: str, data: bytes, *,
                     create_metadata: dict[str, str]) -> AppendResult:
        if name.startswith(self.prefix):
            self.refused += 1
            raise TransientStoreError(f"{name}: 503 ServerBusy (injected)")
        return await super().append(name, data, create_metadata=create_metadata)


def api_with_events(store: InMemoryStore, recorder: Recorder, clock: Clock,
                    sink: MemoryEventSink, **settings: Any) -> JobScheduler:
    return JobScheduler(store, recorder.registry, JobsSettings(**settings), clock=clock,
                        events=EventPublisher(sink, QUEUE), rng=random.Random(12))


def states_of(sink: MemoryEventSink, job_id: str) -> list[str]:
    return [e["state"] for e in sink.events(QUEUE) if e["job_id"] == job_id]


# --- defect 5 ---------------------------------------------------------------------------------

async def test_a_cancel_that_lost_to_a_start_is_a_409_naming_running_and_is_not_announced(
        ) -> None:
    """#12 defect 5: a start landed between a cancel's read and its append; the replay
    ignored the cancel, yet it answered 200 (status running) and sent a `cancelled` event,
    and the job then succeeded. Now: a conflict (409) naming `running`, no event, and the job
    runs to success as the log says."""
    clock, recorder, sink = Clock(), Recorder(), MemoryEventSink()
    store = WriteFirst(b'"op":"cancel"')
    api = api_with_events(store, recorder, clock, sink, slots=1)
    _, executor = make(store, recorder, clock, slots=1, commit_linger_ms=0)
    started, release = asyncio.Event(), asyncio.Event()

    @recorder.registry.handler("gated")
    async def gated(ctx: JobContext) -> str:  # runs once its start is durable
        started.set()
        await release.wait()
        return "done"

    job = (await api.schedule(JobRequest("gated", {"n": 1}))).job
    await api.get(job.id)  # the cancel's process has read the job: scheduled
    cycle: list[asyncio.Task[object]] = []

    async def start() -> None:  # the executor starts the job (its start is durable) first
        cycle.append(asyncio.create_task(executor.run_cycle(0)))
        async with asyncio.timeout(10):
            await started.wait()

    store.competing = start
    with pytest.raises(InvalidTransitionError) as raised:
        await api.cancel(job.id, "too late")
    assert raised.value.from_status == "running" and "job is running" in str(raised.value)
    assert problem_of(raised.value)["status"] == 409
    assert store.competing is None  # (the start did land between read and append)
    assert (await api.get(job.id)).status is JobStatus.RUNNING
    release.set()
    await cycle[0]
    done = await api.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.cancel_reason is None
    assert states_of(sink, job.id) == ["scheduled"]  # no `cancelled`: it did not apply


async def test_a_run_now_that_lost_to_a_cancel_is_a_409_naming_cancelled_and_is_not_announced(
        ) -> None:
    """#12 defect 5 (run-now): another process's cancel landed between a run-now's read and
    its append; the run-now was answered 200 and announced (`scheduled`). Now: a conflict
    (409) naming `cancelled`, no event for it, and the job stays cancelled."""
    clock, recorder, sink = Clock(), Recorder(), MemoryEventSink()
    store = WriteFirst(b'"op":"run_now"')
    api = api_with_events(store, recorder, clock, sink, slots=1)
    other, executor = make(store, recorder, clock, slots=1)
    job = (await api.schedule(JobRequest("echo", {"n": 1}, delay=3600))).job
    await api.get(job.id)
    store.competing = lambda: other.cancel(job.id, "changed my mind")
    with pytest.raises(InvalidTransitionError) as raised:
        await api.run_now(job.id)
    assert raised.value.from_status == "cancelled" and "was cancelled" in str(raised.value)
    assert problem_of(raised.value)["status"] == 409
    assert store.competing is None
    assert states_of(sink, job.id) == ["scheduled"]  # the schedule's own; none for run-now
    await executor.run_cycle(0)
    after = await api.get(job.id)
    assert after.status is JobStatus.CANCELLED and recorder.runs[job.id] == 0


# --- defect 6d --------------------------------------------------------------------------------

async def test_one_idempotency_conflict_in_a_batch_fails_that_item_alone() -> None:
    """#12 defect 6d: one item whose idempotency key was used before for another payload
    failed the whole `schedule_many`. Now that item alone is an idempotency conflict (409);
    the keyed and unkeyed items beside it are created, durable and readable."""
    clock, recorder, sink = Clock(), Recorder(), MemoryEventSink()
    store = InMemoryStore()
    api = api_with_events(store, recorder, clock, sink, slots=2)
    first = await api.schedule(JobRequest("echo", {"order": 1}, idempotency_key="order-1"))
    results = await api.schedule_many([
        JobRequest("echo", {"n": 0}),
        JobRequest("echo", {"order": "another"}, idempotency_key="order-1"),
        JobRequest("echo", {"order": 2}, idempotency_key="order-2"),
        JobRequest("echo", {"n": 3}, delay=60),
    ])
    assert len(results) == 4
    conflict = results[1]
    assert isinstance(conflict, IdempotencyConflictError) and "order-1" in str(conflict)
    assert problem_of(conflict)["status"] == 409
    created = [r for r in results if isinstance(r, Scheduled)]
    assert len(created) == 3 and all(r.created for r in created)
    fresh = JobScheduler(store, recorder.registry, JobsSettings(slots=2), clock=clock)
    for r, payload in zip(created, [{"n": 0}, {"order": 2}, {"n": 3}], strict=True):
        assert (await fresh.get(r.job.id)).payload == payload
    assert (await fresh.get(first.job.id)).payload == {"order": 1}  # the key's job, unchanged
    announced = {e["job_id"] for e in sink.events(QUEUE)}
    assert announced == {first.job.id, *(r.job.id for r in created)}


class Client:
    """The Durable client as far as waking slots needs it."""

    async def get_status(self, instance_id: str) -> None:
        return None

    async def raise_event(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture
def api_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryStore]:
    """The API's runtime on an in-memory store (no events queue)."""
    monkeypatch.setenv("JOBS_EVENTS_QUEUE", "off")
    memory = InMemoryStore()
    runtime = runtime_module.Runtime()
    runtime._store = memory  # type: ignore[assignment]
    monkeypatch.setattr(runtime_module, "_runtime", runtime)
    yield memory


async def post(handler: Any, body: Any, url: str) -> tuple[int, Any]:
    req = func.HttpRequest(method="POST", url=f"http://localhost{url}",
                           headers={"content-type": "application/json"}, params={},
                           body=json.dumps(body).encode())
    response = await http_api.guarded(handler)(req, Client())
    return response.status_code, json.loads(response.get_body())


async def test_one_idempotency_conflict_in_a_posted_batch_is_a_409_item_alone(
        api_store: InMemoryStore) -> None:
    """#12 defect 6d, through `POST /api/jobs/batch`: the answer is 200 with one result per
    item; the reused key's item is a 409 idempotency conflict, the others 201, and their jobs
    can be read."""
    code, body = await post(http_api.create_job, {"handler": "echo", "payload": {"v": 1},
                                                  "idempotency_key": "k-1"}, "/api/jobs")
    assert code == 201, body
    code, body = await post(http_api.create_batch, {"jobs": [
        {"handler": "echo", "payload": {"i": 0}},
        {"handler": "echo", "payload": {"v": 2}, "idempotency_key": "k-1"},
        {"handler": "echo", "payload": {"i": 2}, "idempotency_key": "k-2"},
    ]}, "/api/jobs/batch")
    assert code == 200, body
    results = body["results"]
    assert [r["status"] for r in results] == [201, 409, 201]
    assert results[1]["problem"]["field"] == "idempotency_key"
    scheduler = await runtime_module.get_runtime().scheduler()
    for r, payload in ((results[0], {"i": 0}), (results[2], {"i": 2})):
        assert (await scheduler.get(r["job"]["id"])).payload == payload


# --- defect 11b -------------------------------------------------------------------------------

async def test_a_batch_whose_second_shard_fails_answers_and_announces_the_first() -> None:
    """#12 defect 11b: a batch over two shards committed one, failed on the other, and the
    caller got one error for all and no events were sent for the durable jobs. Now each shard
    is answered on its own: its jobs created and announced (`scheduled`) when its append
    committed, a storage error (503) for each item of the shard whose append failed."""
    clock, recorder, sink = Clock(), Recorder(), MemoryEventSink()
    store = ShardDown(slot_prefix(1))
    api = api_with_events(store, recorder, clock, sink, slots=2, commit_linger_ms=0)
    results = await api.schedule_many([JobRequest("echo", {"i": i}) for i in range(20)])
    assert len(results) == 20 and store.refused >= 1
    created = [r for r in results if isinstance(r, Scheduled)]
    failed = [r for r in results if not isinstance(r, Scheduled)]
    assert created and failed  # (the batch did span both slots)
    assert {parse_job_id(r.job.id).key.slot for r in created} == {0}
    assert all(r.created for r in created)
    assert all(isinstance(e, StoreError) and problem_of(e)["status"] == 503 for e in failed)
    announced = [e for e in sink.events(QUEUE) if e["state"] == "scheduled"]
    assert sorted(e["job_id"] for e in announced) == sorted(r.job.id for r in created)
    fresh = JobScheduler(store, recorder.registry, JobsSettings(slots=2), clock=clock)
    assert {j.id for j in (await fresh.list(slot=0)).jobs} == {r.job.id for r in created}
    assert (await fresh.list(slot=1)).jobs == []
