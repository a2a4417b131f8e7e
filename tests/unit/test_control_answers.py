"""A control, and the executor's misfire skip, answer and announce the state their own record
made (``GroupCommitter.write_made``), even when later records of other processes are already
read back, or the blob cannot be read again (soak seed 31191, and the reviews after it)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from jobs_core import (
    InMemoryStore,
    JobRequest,
    JobScheduler,
    JobsSettings,
    JobStatus,
    records,
    transitions,
)
from jobs_core.errors import TransientStoreError
from jobs_core.events import EventPublisher, MemoryEventSink
from jobs_core.ids import ShardBlob, ShardKey, new_job_id
from jobs_core.model import Job, Recurrence
from jobs_core.shard_cache import ShardCache
from tests.jobs_helpers import T0, Clock, Recorder, make


class Between(InMemoryStore):
    """Around the first block with ``marker``: ``before`` and ``after`` (other processes'
    writes) land just before and just after it; then the next ``fail_whole_reads`` reads of
    a whole blob fail."""

    def __init__(self, marker: bytes) -> None:
        super().__init__()
        self.marker = marker
        self.before: Any = None
        self.after: Any = None
        self.fail_whole_reads = 0
        self._failing = 0

    async def append(self, name, data, *, create_metadata):  # type: ignore[no-untyped-def]
        if self.marker not in data or self.before is None:
            return await super().append(name, data, create_metadata=create_metadata)
        before, after, self.before, self.after = self.before, self.after, None, None
        await before()
        result = await super().append(name, data, create_metadata=create_metadata)
        await after()
        self._failing = self.fail_whole_reads
        return result

    async def read(self, name, offset=0):  # type: ignore[no-untyped-def]
        if offset == 0 and self._failing > 0:
            self._failing -= 1
            raise TransientStoreError(f"{name}: 503 (injected)")
        return await super().read(name, offset)


async def test_a_control_answers_and_announces_the_state_its_own_change_made() -> None:
    """Soak seed 31191 (I10): a block of another process landed just before an update's, so
    the update's process read the blob back, and that read also held the start committed just
    after it: the update was announced as `scheduled` with that start's attempt (an event the
    log does not hold) and answered `running`."""
    clock, recorder, sink = Clock(), Recorder(), MemoryEventSink()
    store = Between(b'"op":"update"')
    cfg = JobsSettings(slots=1)
    api = JobScheduler(store, recorder.registry, cfg, clock=clock,
                       events=EventPublisher(sink, "job-events"))
    other, executor = make(store, recorder, clock, slots=1)
    job = (await api.schedule(JobRequest("echo", {"n": 1}, delay=5))).job
    clock.advance(5)
    store.before = lambda: other.schedule(JobRequest("echo", {"other": 1}, delay=60))
    store.after = lambda: executor.run_cycle(0)  # starts it (and runs it) right after
    answer = await api.update(job.id, {"payload": {"n": 2}})
    assert recorder.runs[job.id] == 1
    assert answer.status is JobStatus.SCHEDULED and answer.attempts == 0
    assert answer.payload == {"n": 2}
    announced = [e for e in sink.events("job-events") if e["state"] == "scheduled"]
    assert (announced[-1]["attempt"], announced[-1]["at"]) == (0, answer.updated_at.isoformat()
                                                               .replace("+00:00", "Z"))
    final = await api.get(job.id)
    assert final.status is JobStatus.SUCCEEDED and final.version > answer.version


class MisfireBetween(InMemoryStore):
    """Around a misfire block: another process's block just before it (so the executor
    reads the tail back) and a cancel of the job just after it; then one whole-blob read
    fails. (From review.)"""

    def __init__(self) -> None:
        super().__init__()
        self.fail_full_read = False

    async def append(self, name, data, *, create_metadata):  # type: ignore[no-untyped-def]
        if b'"op":"misfire"' not in data:
            return await super().append(name, data, create_metadata=create_metadata)
        misfire = records.decode(json.loads(data.strip().split(b"\n")[0]))
        await super().append(name, b"\n" + records.encode_line(records.touch(name, misfire.at)),
                             create_metadata={})
        result = await super().append(name, data, create_metadata=create_metadata)
        await super().append(name, b"\n" + records.encode_line(
            records.cancel(misfire.id, misfire.at, rid="other", run=0)), create_metadata={})
        self.fail_full_read = True
        return result

    async def read(self, name, offset=0):  # type: ignore[no-untyped-def]
        if offset == 0 and self.fail_full_read:
            self.fail_full_read = False
            raise TransientStoreError(f"{name}: 503")
        return await super().read(name, offset)


async def test_a_misfire_skip_whose_state_cannot_be_read_back_does_not_fail_its_batch() -> None:
    clock, recorder = Clock(), Recorder()
    store = MisfireBetween()
    scheduler, executor = make(store, recorder, clock, slots=1, commit_linger_ms=0)
    await scheduler.schedule(JobRequest("echo", recurrence={
        "cron": "* * * * *", "misfire_grace_seconds": 1}))
    clock.advance(150)
    _, result = await executor.run_cycle(0)
    assert result.skipped == 1 and recorder.runs == {}


async def test_a_revived_job_never_reuses_a_version_so_a_control_finds_its_own_state() -> None:
    """An executor's replay drops finished jobs; a retry revived one at version 1, so a later
    start could carry the version an earlier misfire made, and be taken for its state."""
    store = InMemoryStore()
    blob = ShardBlob(ShardKey(T0, 0), 0)
    job = Job(new_job_id(blob), "echo", T0, T0, recurrence=Recurrence(interval_seconds=60))
    at = T0 + timedelta(seconds=600)
    nxt = at + timedelta(seconds=60)
    cancelled = transitions.cancel(transitions.misfire(job, nxt, at), at)
    for record in [records.add(job), records.misfire(job.id, nxt, at, rid="M", run=0),
                   records.cancel(job.id, at, rid="C", run=0),
                   records.retry(transitions.retry(cancelled, at), at, rid="R", run=0),
                   records.start(job.id, 1, 0, at, token="t", run=1)]:
        await store.append(blob.name, records.encode_line(record), create_metadata={})
    for keep_finished in (False, True):
        cache = ShardCache(store, keep_finished=keep_finished)
        state = await cache.refresh(blob.name)
        made = await cache.as_made(blob.name, state, "M", job.id)
        assert made.applied and made.job is not None
        assert made.job.status is JobStatus.SCHEDULED and made.job.due_at == nxt
        assert state.jobs[job.id].version == 5  # add, misfire, cancel, retry, start


async def test_run_now_and_cancel_answer_their_own_state_when_the_blob_cannot_be_reread() -> None:
    """From review: with a later record already in the read-back and the whole-blob read
    failing, a run_now was answered `succeeded` (and a cancel `scheduled`): the latest state.
    The replay now keeps the state a watched request's record made."""
    clock, recorder = Clock(), Recorder()
    store = Between(b'"op":"run_now"')
    api = JobScheduler(store, recorder.registry, JobsSettings(slots=1), clock=clock)
    other, executor = make(store, recorder, clock, slots=1)
    job = (await api.schedule(JobRequest("echo", {"n": 1}, delay=3600))).job
    store.before = lambda: other.schedule(JobRequest("echo", {"other": 1}, delay=3600))
    store.after = lambda: executor.run_cycle(0)  # starts (and runs) it right after
    store.fail_whole_reads = 1
    answer = await api.run_now(job.id)
    assert recorder.runs[job.id] == 1 and answer.status is JobStatus.SCHEDULED
    assert answer.attempts == 0 and store._failing == 1  # the replay kept it: no whole read

    store = Between(b'"op":"cancel"')
    api = JobScheduler(store, recorder.registry, JobsSettings(slots=1), clock=clock)
    other = JobScheduler(store, recorder.registry, JobsSettings(slots=1), clock=clock)
    job = (await api.schedule(JobRequest("echo", {"n": 1}, delay=3600))).job
    await other.get(job.id)
    store.before = lambda: other.schedule(JobRequest("echo", {"other": 1}, delay=3600))
    store.after = lambda: other.retry(job.id)  # a concurrent retry applies right after
    store.fail_whole_reads = 1
    answer = await api.cancel(job.id)
    assert answer.status is JobStatus.CANCELLED
    assert (await api.get(job.id)).status is JobStatus.SCHEDULED  # (retried since)

