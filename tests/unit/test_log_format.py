"""Record format and replay: transitions, torn tails, versions, fencing at the record level."""

from __future__ import annotations

import pytest

from jobs_core import InMemoryStore, JobStatus
from jobs_core import records as rec
from jobs_core import transitions as tr
from jobs_core.errors import InvalidTransitionError, UnsupportedRecordVersionError
from jobs_core.model import ErrorInfo, Job
from jobs_core.shard_cache import ShardCache
from jobs_core.shard_state import ShardState
from tests.jobs_helpers import T0

BLOB = "shards/s000/20261122T1400-0000.jsonl"
JOB_ID = "j20261122T1400-s000-0000-00000000000000aa"


def a_job(**kw: object) -> Job:
    return Job(id=JOB_ID, handler="echo", due_at=T0, created_at=T0, **kw)  # type: ignore[arg-type]


def test_invalid_transition_names_operation_from_and_to() -> None:
    running = tr.start(a_job(), 1, 1, T0)
    with pytest.raises(InvalidTransitionError) as err:
        tr.cancel(running, T0)
    assert (err.value.operation, err.value.from_status, err.value.to_status) == \
        ("cancel", "running", "cancelled")
    assert "running now" in str(err.value)
    done = tr.succeed(running, 1, T0, "r")
    with pytest.raises(InvalidTransitionError, match="already succeeded"):
        tr.run_now(done, T0)
    with pytest.raises(InvalidTransitionError, match="attempt 3 does not follow attempt 0"):
        tr.start(a_job(), 3, 1, T0)


def test_retry_then_final_failure_keeps_the_error() -> None:
    job = tr.start(a_job(), 1, 1, T0)
    err = ErrorInfo("RuntimeError", "boom", 1)
    job = tr.fail(job, 1, T0, err, retry_at=T0)
    assert job.status is JobStatus.RETRYING and job.last_error == err
    job = tr.fail(tr.start(job, 2, 1, T0), 2, T0, err, retry_at=None, compensation="succeeded")
    assert job.status is JobStatus.FAILED and job.compensation == "succeeded"


async def test_torn_tail_is_skipped_and_the_next_block_survives() -> None:
    store = InMemoryStore()
    await store.append(BLOB, rec.encode_block([rec.add(a_job())]), create_metadata={})
    store.raw_append(BLOB, b'{"v":1,"op":"start","id":"' + JOB_ID.encode())  # torn, no newline
    cache = ShardCache(store)
    state = await cache.refresh(BLOB)
    assert state.jobs[JOB_ID].status is JobStatus.SCHEDULED  # the partial line waits
    await store.append(BLOB, rec.encode_block([rec.cancel(JOB_ID, T0)]), create_metadata={})
    state = await cache.refresh(BLOB)
    assert state.jobs[JOB_ID].status is JobStatus.CANCELLED
    assert state.skipped == 1  # the torn line, now complete but malformed, was skipped


def test_newer_record_version_is_refused_with_a_clear_error() -> None:
    state = ShardState(BLOB)
    with pytest.raises(UnsupportedRecordVersionError, match="upgrade"):
        state.apply({"v": rec.FORMAT_VERSION + 1, "op": "add", "id": JOB_ID})


def test_malformed_records_are_skipped_not_fatal() -> None:
    state = ShardState(BLOB)
    state.feed_lines([b"not json", b"[1,2]", b'{"v":1,"op":"add"}', rec.encode_line(
        rec.add(a_job()))])
    assert list(state.jobs) == [JOB_ID]
    assert state.skipped == 3


def test_execution_records_of_an_older_epoch_are_fenced() -> None:
    state = ShardState(BLOB)
    state.apply(rec.add(a_job()))
    state.apply(rec.start(JOB_ID, 1, 1, T0))  # epoch 1 (old owner)
    state.apply(rec.fail(JOB_ID, 1, 2, T0, ErrorInfo("ExecutorLost", "x", 1), retry_at=T0))
    state.apply(rec.start(JOB_ID, 2, 2, T0))  # the new owner, epoch 2
    state.apply(rec.ok(JOB_ID, 1, 1, T0, "stale", None))  # the old owner reports late
    assert state.fenced == 1
    assert state.jobs[JOB_ID].status is JobStatus.RUNNING
    state.apply(rec.ok(JOB_ID, 2, 2, T0, "fresh", None))
    assert state.jobs[JOB_ID].result == "fresh"


def test_duplicate_idempotency_key_first_add_wins() -> None:
    state = ShardState(BLOB)
    first = a_job(idempotency_key="k1")
    second = Job(id=JOB_ID[:-2] + "bb", handler="echo", due_at=T0, created_at=T0,
                 idempotency_key="k1")
    state.apply(rec.add(first))
    state.apply(rec.add(second))
    assert list(state.jobs) == [JOB_ID] and state.keys["k1"] == JOB_ID


def test_executor_state_drops_finished_jobs_but_keeps_counts() -> None:
    state = ShardState(BLOB, keep_finished=False)
    state.apply(rec.add(a_job()))
    state.apply(rec.start(JOB_ID, 1, 1, T0))
    state.apply(rec.ok(JOB_ID, 1, 1, T0, None, None))
    assert state.jobs == {} and state.counts()["succeeded"] == 1
