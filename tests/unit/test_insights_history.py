"""read_job_history (GET /api/jobs/{id}/history) on the in-memory store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from jobs_core import InMemoryStore, JobRequest, JobStatus, RetryPolicy, records
from jobs_core.errors import InvalidJobIdError, JobNotFoundError
from jobs_core.ids import parse_job_id
from jobs_core.job_history import read_job_history
from jobs_core.model import ErrorInfo
from tests.jobs_helpers import Clock, Recorder, drain, make

THREE_TRIES = RetryPolicy(max_attempts=3, base_delay=10, max_delay=10, jitter=0)


async def test_a_retried_then_failed_job_shows_every_attempt_with_its_error() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("always_fails", {"x": 1}, retry=THREE_TRIES))).job
    neighbour = (await scheduler.schedule(JobRequest("echo", 2))).job  # same blob, not shown
    failed_at = []
    for _ in range(3):
        await drain(executor, 1)
        failed_at.append(clock.now)
        clock.advance(10)

    history = await read_job_history(store, job.id)

    assert [r.type for r in history.records] == ["add", "start", "fail", "start", "fail",
                                                  "start", "fail"]
    assert all(r.applied and r.note is None for r in history.records)
    add, *attempts = history.records
    assert (add.handler, add.due_at, add.at) == ("always_fails", job.due_at, job.created_at)
    starts, fails = attempts[0::2], attempts[1::2]
    assert [r.attempt for r in starts] == [r.attempt for r in fails] == [1, 2, 3]
    assert {r.epoch for r in attempts} == {1}
    assert [r.error for r in fails] == [ErrorInfo("RuntimeError", "always", n).to_dict()
                                        for n in (1, 2, 3)]
    assert [r.retry_at for r in fails] == [failed_at[0] + timedelta(seconds=10),
                                           failed_at[1] + timedelta(seconds=10), None]
    assert fails[-1].compensation == "succeeded"
    assert [r.at for r in fails] == failed_at
    offsets = [r.offset for r in history.records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert history.job == await scheduler.get(job.id)
    assert history.job.status is JobStatus.FAILED
    ok = await read_job_history(store, neighbour.id)
    assert [(r.type, r.result) for r in ok.records] == [
        ("add", None), ("start", None), ("ok", {"echo": 2, "attempt": 1})]


async def test_records_the_replay_ignored_say_why() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, _ = make(store, recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", 1))).job
    other = (await scheduler.schedule(JobRequest("echo", 2, delay=60))).job
    blob = parse_job_id(job.id).name
    at = clock.now

    async def write(*batch: records.Record) -> None:
        await store.append(blob, records.encode_block(list(batch)), create_metadata={})

    await write(records.start(job.id, 1, 1, at), records.start(job.id, 1, 1, at))  # two executors
    await write(records.start(other.id, 1, 2, at))  # a newer owner (epoch 2) wrote in this blob
    await write(records.ok(job.id, 1, 1, at, "late", None))  # the stale owner's outcome
    await write(records.cancel(job.id, at), records.add(job))
    await store.append(blob, b"\n{torn", create_metadata={})

    history = await read_job_history(store, job.id)

    got = [(r.type, r.applied, r.note) for r in history.records]
    assert got[:2] == [("add", True, None), ("start", True, None)]
    assert got[2] == ("start", False, "ignored: the job was running on attempt 1")
    assert got[3] == ("ok", False, "fenced off: epoch 1 is older than epoch 2 already "
                                   "recorded in this blob")
    assert got[4] == ("cancel", False, "ignored: the job was running on attempt 1")
    assert got[5] == ("add", False, "ignored: a duplicate add")
    assert len(got) == 6
    assert history.job == await scheduler.get(job.id)
    assert history.job.status is JobStatus.RUNNING


async def test_in_a_version_1_log_the_loser_of_a_key_is_not_found() -> None:
    """Before the key index, a blob deduplicated idempotency keys: a later add of the key
    (another id) is a duplicate, for the history as for GET."""
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, _ = make(store, recorder, clock, slots=1)
    other = (await scheduler.schedule(JobRequest("echo"))).job  # (the blob exists)
    blob, at = parse_job_id(other.id).name, clock.now.isoformat()
    winner_id, loser_id = other.id[:-16] + "0" * 15 + "1", other.id[:-16] + "0" * 16
    await store.append(blob, b"".join(
        f'\n{{"v":1,"op":"add","id":"{i}","h":"echo","due":"{at}","at":"{at}","k":"k1"}}'
        .encode() for i in (winner_id, loser_id)), create_metadata={})
    assert [r.type for r in (await read_job_history(store, winner_id)).records] == ["add"]
    with pytest.raises(JobNotFoundError):
        await read_job_history(store, loser_id)
    with pytest.raises(JobNotFoundError):
        await scheduler.get(loser_id)


async def test_since_the_key_index_a_second_job_of_a_key_has_a_history() -> None:
    """From review (stop 27): a key whose claim expired names a new job, also in the blob of
    its first job; GET found it, its history answered 404 (it still dropped repeated keys)."""
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, _ = make(store, recorder, clock, slots=1)
    first = (await scheduler.schedule(JobRequest("echo", idempotency_key="k1"))).job
    second_id = first.id[:-16] + "0" * 16
    await store.append(parse_job_id(first.id).name,
                       records.encode_block([records.add(replace(first, id=second_id))]),
                       create_metadata={})
    history = await read_job_history(store, second_id)
    assert history.job == await scheduler.get(second_id)
    assert [(r.type, r.applied) for r in history.records] == [("add", True)]


async def test_unknown_and_malformed_ids() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, _ = make(store, recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo"))).job
    with pytest.raises(JobNotFoundError):  # its blob exists, the id does not
        await read_job_history(store, job.id[:-16] + "f" * 16)
    with pytest.raises(JobNotFoundError):  # no such blob
        await read_job_history(store, "j20261122T1400-s003-0000-1a2b3c4d5e6f7a8b")
    with pytest.raises(InvalidJobIdError):
        await read_job_history(store, "not-a-job")


async def test_the_history_of_a_job_that_moved_on_follows_it_across_blobs() -> None:
    """A recurring job leaves its home blob a day after the bucket ended (moves.py): its
    history goes on in the blobs it moved to, and answers what GET answers."""
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest(
        "echo", {"tick": 1}, recurrence={"interval_seconds": 3600}))).job
    for _ in range(3 * 24):  # three days, hourly
        clock.now = max(clock.now, (await scheduler.get(job.id)).due_at)
        await executor.run_cycle(0)
        await executor.run_cycle(0)  # the cycle after a run moves the job when it is time

    history = await read_job_history(store, job.id)

    now = await scheduler.get(job.id)
    blobs = list(dict.fromkeys(r.blob for r in history.records))
    assert blobs[0] == parse_job_id(job.id).name and len(blobs) >= 3
    assert history.job.runs == now.runs == recorder.runs[job.id] >= 70
    assert (history.job.due_at, history.job.status) == (now.due_at, JobStatus.SCHEDULED)
    oks = [r for r in history.records if r.type == "ok"]
    assert len(oks) == now.runs and all(r.applied for r in oks)
    moved = [r for r in history.records if r.type == "moved" and r.applied]
    assert [r.to for r in moved] == blobs[1:]
    carried = [r for r in history.records if r.type == "add" and r.blob != blobs[0]]
    assert len(carried) == len(blobs) - 1 and all(r.applied for r in carried)
