"""Record format and replay: transitions, torn tails, versions, fencing at the record level."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from jobs_core import InMemoryStore, JobStatus, records, transitions
from jobs_core.errors import InvalidTransitionError, UnsupportedRecordVersionError
from jobs_core.model import ErrorInfo, Job, Recurrence, RetryPolicy
from jobs_core.shard_cache import ShardCache
from jobs_core.shard_state import ShardState
from tests.jobs_helpers import T0

BLOB = "shards/s000/20261122T1400-0000.jsonl"
JOB_ID = "j20261122T1400-s000-0000-00000000000000aa"


def a_job(**kw: object) -> Job:
    return Job(id=JOB_ID, handler="echo", due_at=T0, created_at=T0, **kw)  # type: ignore[arg-type]


def test_invalid_transition_names_operation_from_and_to() -> None:
    running = transitions.start(a_job(), 1, 1, T0)
    with pytest.raises(InvalidTransitionError) as err:
        transitions.cancel(running, T0)
    assert (err.value.operation, err.value.from_status, err.value.to_status) == \
        ("cancel", "running", "cancelled")
    assert "running now" in str(err.value)
    done = transitions.succeed(running, 1, T0, "r")
    with pytest.raises(InvalidTransitionError, match="already succeeded"):
        transitions.run_now(done, T0)
    with pytest.raises(InvalidTransitionError, match="attempt 3 does not follow attempt 0"):
        transitions.start(a_job(), 3, 1, T0)


def test_retry_then_final_failure_keeps_the_error() -> None:
    job = transitions.start(a_job(), 1, 1, T0)
    err = ErrorInfo("RuntimeError", "boom", 1)
    job = transitions.fail(job, 1, T0, err, retry_at=T0)
    assert job.status is JobStatus.RETRYING and job.last_error == err
    job = transitions.fail(transitions.start(job, 2, 1, T0), 2, T0, err, retry_at=None,
                           compensation="succeeded")
    assert job.status is JobStatus.FAILED and job.compensation == "succeeded"


async def test_torn_tail_is_skipped_and_the_next_block_survives() -> None:
    store = InMemoryStore()
    await store.append(BLOB, records.encode_block([records.add(a_job())]), create_metadata={})
    store.raw_append(BLOB, b'{"v":1,"op":"start","id":"' + JOB_ID.encode())  # torn, no newline
    cache = ShardCache(store)
    state = await cache.refresh(BLOB)
    assert state.jobs[JOB_ID].status is JobStatus.SCHEDULED  # the partial line waits
    await store.append(BLOB, records.encode_block([records.cancel(JOB_ID, T0)]), create_metadata={})
    state = await cache.refresh(BLOB)
    assert state.jobs[JOB_ID].status is JobStatus.CANCELLED
    assert state.skipped == 1  # the torn line, now complete but malformed, was skipped


def test_newer_record_version_is_refused_with_a_clear_error() -> None:
    state = ShardState(BLOB)
    with pytest.raises(UnsupportedRecordVersionError, match="upgrade"):
        state.apply({"v": records.FORMAT_VERSION + 1, "op": "add", "id": JOB_ID})


def test_malformed_records_are_skipped_not_fatal() -> None:
    state = ShardState(BLOB)
    state.feed_lines([b"not json", b"[1,2]", b'{"v":1,"op":"add"}', records.encode_line(
        records.add(a_job()))])
    assert list(state.jobs) == [JOB_ID]
    assert state.skipped == 3


def test_execution_records_of_an_older_epoch_are_fenced() -> None:
    state = ShardState(BLOB)
    state.apply(records.add(a_job()))
    state.apply(records.start(JOB_ID, 1, 1, T0))  # epoch 1 (old owner)
    state.apply(records.fail(JOB_ID, 1, 2, T0, ErrorInfo("ExecutorLost", "x", 1), retry_at=T0))
    state.apply(records.start(JOB_ID, 2, 2, T0))  # the new owner, epoch 2
    state.apply(records.ok(JOB_ID, 1, 1, T0, "stale", None))  # the old owner reports late
    assert state.fenced == 1
    assert state.jobs[JOB_ID].status is JobStatus.RUNNING
    state.apply(records.ok(JOB_ID, 2, 2, T0, "fresh", None))
    assert state.jobs[JOB_ID].result == "fresh"


def test_in_a_version_1_log_the_first_add_of_a_key_wins() -> None:
    """Before the key index (version 2), a blob deduplicated idempotency keys itself."""
    at, other = T0.isoformat(), JOB_ID[:-2] + "bb"
    state = ShardState(BLOB)
    state.feed_lines(f'{{"v":1,"op":"add","id":"{i}","h":"echo","due":"{at}","at":"{at}",'
                     f'"k":"k1"}}'.encode() for i in (JOB_ID, other))
    state.apply(records.add(Job(id=JOB_ID[:-2] + "cc", handler="echo", due_at=T0,
                                created_at=T0, idempotency_key="k1")))  # (after an upgrade)
    assert list(state.jobs) == [JOB_ID] and state.keys["k1"] == JOB_ID


def test_since_the_key_index_a_blob_keeps_every_job_of_a_key() -> None:
    """From review (stop 27): a key may name a new job once its claim expired; its add, to
    the blob of the key's first job (same due bucket), was dropped by that blob's own
    deduplication, and the request answered with a job that GET answers 404 for."""
    state = ShardState(BLOB)
    second = Job(id=JOB_ID[:-2] + "bb", handler="echo", due_at=T0, created_at=T0,
                 idempotency_key="k1")
    state.apply(records.add(a_job(idempotency_key="k1")))
    state.apply(records.add(second))
    state.apply(records.add(second))  # (the same id again: the first add wins)
    assert list(state.jobs) == [JOB_ID, second.id] and state.keys == {}


def test_executor_state_drops_finished_jobs_but_keeps_counts() -> None:
    state = ShardState(BLOB, keep_finished=False)
    state.apply(records.add(a_job()))
    state.apply(records.start(JOB_ID, 1, 1, T0))
    state.apply(records.ok(JOB_ID, 1, 1, T0, None, None))
    assert state.jobs == {} and state.counts()["succeeded"] == 1


def _every_record() -> list[records.Record]:
    """One record of each type, every optional field set."""
    later = T0 + timedelta(hours=1)
    error = ErrorInfo("RuntimeError", "boom", 2, permanent=True)
    moved_in = a_job(payload={"n": 1}, idempotency_key="k", notify="q", timeout_seconds=9,
                     recurrence=Recurrence(interval_seconds=60), status=JobStatus.RETRYING,
                     attempts=2, runs=3, last_error=error, result={"r": 1},
                     retry=RetryPolicy(max_attempts=7))
    return [records.add(a_job(payload=[1, "x"])), records.carry(moved_in, BLOB, later),
            records.add(a_job(labels={"team": "billing"})),
            records.add(a_job(recurrence=Recurrence(cron="0 * * * *", catch_up_max=5,
                                                    overlap="buffer_one"))),
            records.update(JOB_ID, {"labels": {"a": "b"}}, later, T0, rid="r11", run=0),
            records.cancel(JOB_ID, T0, "no", rid="r1", run=2),
            records.run_now(JOB_ID, T0, rid="r2", run=1),
            records.reschedule(JOB_ID, later, T0, rid="r3", run=0),
            records.pause(JOB_ID, T0, rid="r6", run=1),
            records.resume(JOB_ID, later, T0, rid="r7", run=1),
            records.misfire(JOB_ID, later, T0, rid="r9", run=3),
            records.misfire(JOB_ID, later, T0, rid="r13", run=3, late_from=T0),
            records.carry(replace(moved_in, due_set_at=T0), BLOB, later),
            records.retry(replace(moved_in, status=JobStatus.SCHEDULED, attempts=0, result=None,
                                  last_error=None), later, rid="r10", run=2),
            records.carry(a_job(status=JobStatus.PAUSED), BLOB, later),
            records.add(a_job(recurrence=Recurrence(interval_seconds=60, until=later, max_runs=4))),
            records.add(a_job(recurrence=Recurrence(interval_seconds=60, interval_mode="fixed_rate",
                                                    anchor=T0, jitter_seconds=5.0,
                                                    misfire_grace_seconds=30.0))),
            records.update(JOB_ID, {"payload": None, "retry": RetryPolicy(max_attempts=2),
                                    "recurrence": Recurrence(cron="0 2 * * *",
                                                         timezone="Europe/Berlin"),
                                    "timeout_seconds": 7.5}, later, T0, rid="r8", run=2),
            records.start(JOB_ID, 2, 5, T0, token="x1", run=3, lease=later),
            replace(records.ok(JOB_ID, 2, 5, T0, {"ok": True}, later, token="x1"), rid="r4"),
            replace(records.fail(JOB_ID, 2, 5, T0, error, retry_at=later, next_due=later,
                                 compensation="succeeded", token="x1"), rid="r5"),
            records.touch(BLOB, T0), records.move(JOB_ID, BLOB, T0),
            records.moved(JOB_ID, BLOB, T0),
            records.pointer(JOB_ID, BLOB, T0), records.full(T0),
            records.take_over(JOB_ID, 2, T0, token="x2", prev="x1", lease=later, rid="r12")]


def test_every_record_type_reads_back_what_it_wrote() -> None:
    batch = _every_record()
    assert {type(r) for r in batch} == set(records.RECORD_TYPES)
    for record in batch:
        wire = json.loads(records.encode_line(record))
        v3_ops = records.Pause | records.Resume | records.Update | records.Misfire
        newer = isinstance(record, v3_ops) or (
            isinstance(record, records.Add) and (record.job.status is JobStatus.PAUSED or (
                record.job.recurrence is not None and record.job.recurrence.extended)))
        labelled = (isinstance(record, records.Add) and (record.job.labels or (
            record.job.recurrence is not None and record.job.recurrence.needs_v4))) or \
            (isinstance(record, records.Update) and "labels" in record.values)
        counted = (isinstance(record, records.Misfire) and record.late_from is not None) or \
            (isinstance(record, records.Add) and record.job.due_set_at is not None)
        version = 6 if counted else 5 if isinstance(record, records.TakeOver) else \
            4 if isinstance(record, records.Retry) or labelled else 3 if newer else 2
        assert wire["v"] == version and wire["op"] == record.OP.value
        back = records.decode(wire)
        assert back.encode() == wire, record.OP
        if isinstance(record, records.Add | records.Retry):  # read back: last updated when written
            assert back == replace(record, job=replace(record.job, updated_at=record.at))
        else:
            assert back == record, record.OP


def test_one_table_documents_every_key_and_op() -> None:
    doc = records.__doc__ or ""
    keys_section = doc[doc.index("    key    meaning"):doc.index("Version 2 added")]
    documented = {line.split()[0] for line in keys_section.splitlines()
                  if line.startswith("    ") and not line.startswith("      ")}
    written = {key for record in _every_record() for key in record.encode()}
    assert written <= documented, written - documented
    ops_section = doc[:doc.index("Keys (")]
    for op in records.Op:
        assert f"    {op.value} " in ops_section, op


def test_the_wire_is_version_2_as_before_the_typed_records() -> None:
    # lines exactly as the dict-based writer of version 2 wrote them (key order aside)
    start = {"v": 2, "op": "start", "id": JOB_ID, "a": 1, "e": 3, "at": T0.isoformat(),
             "x": "tok", "run": 0, "lease": T0.isoformat()}
    ok = {"v": 2, "op": "ok", "id": JOB_ID, "a": 1, "e": 3, "at": T0.isoformat(), "res": None,
          "x": "tok"}
    cancel = {"v": 2, "op": "cancel", "id": JOB_ID, "at": T0.isoformat(), "rid": "r",
              "run": 0, "why": "because"}
    for wire in (start, ok, cancel):
        assert records.decode(wire).encode() == wire


def test_a_version_1_log_is_still_read_and_fenced_by_epoch() -> None:
    at = T0.isoformat()
    lines = [
        f'{{"v":1,"op":"add","id":"{JOB_ID}","h":"echo","due":"{at}","at":"{at}"}}',
        f'{{"v":1,"op":"start","id":"{JOB_ID}","a":1,"e":1,"at":"{at}"}}',
        f'{{"v":1,"op":"start","id":"{JOB_ID}","a":1,"e":2,"at":"{at}"}}',
        f'{{"v":1,"op":"ok","id":"{JOB_ID}","a":1,"e":1,"at":"{at}","res":"stale"}}',
        f'{{"v":1,"op":"ok","id":"{JOB_ID}","a":1,"e":2,"at":"{at}","res":"fresh"}}',
    ]
    state = ShardState(BLOB)
    state.feed_lines(line.encode() for line in lines)
    assert state.fenced == 1 and state.jobs[JOB_ID].result == "fresh"


def test_a_record_with_a_field_of_the_wrong_type_is_skipped() -> None:
    state = ShardState(BLOB)
    state.apply(records.add(a_job()))
    bad = records.start(JOB_ID, 1, 1, T0, token="x").encode()
    state.apply({**bad, "x": 7})  # a token must be a string
    state.apply({**bad, "a": True})  # an attempt must be an integer
    assert state.skipped == 2 and state.jobs[JOB_ID].status is JobStatus.SCHEDULED


def test_a_version_2_reader_refuses_a_pause_it_could_not_apply() -> None:
    wire = records.pause(JOB_ID, T0, rid="r").encode()
    assert wire["v"] == 3 and records.add(a_job()).encode()["v"] == 2  # the rest stays readable
    state = ShardState(BLOB)
    state.apply(records.add(a_job()).encode())
    state.apply(wire)
    assert state.jobs[JOB_ID].status is JobStatus.PAUSED and state.rids["r"]


def test_a_reader_before_version_6_refuses_what_it_would_replay_differently(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """From the second review of ``due_set_at`` (stop 33): a misfire with ``late`` (voided
    after a control by a new reader, applied by an older one) and a moved-in add with ``dsa``
    were written as version 3 and 2: a process of the release before, during a rolling
    upgrade, replayed the same log to another state (the occurrence a run-now asked for
    skipped, then started again). Now they are version 6, which that reader refuses (the
    README's rule for a rolling upgrade), and a misfire without ``late`` stays version 3."""
    fenced = records.misfire(JOB_ID, T0, T0, rid="r", run=0, late_from=T0).encode()
    assert fenced["v"] == 6
    assert records.misfire(JOB_ID, T0, T0, rid="r", run=0).encode()["v"] == 3
    carried = records.carry(replace(a_job(), due_set_at=T0), BLOB, T0).encode()
    assert carried["v"] == 6 and records.carry(a_job(), BLOB, T0).encode()["v"] == 2
    monkeypatch.setattr(records, "READABLE_VERSIONS", (1, 2, 3, 4, 5))
    monkeypatch.setattr(records, "FORMAT_VERSION", 5)
    for wire in (fenced, carried):
        state = ShardState(BLOB)
        with pytest.raises(UnsupportedRecordVersionError):
            state.apply(wire)


def test_pause_holds_a_waiting_job_and_resume_lets_it_go() -> None:
    job = a_job()
    paused = transitions.pause(job, T0)
    assert paused.status is JobStatus.PAUSED and paused.due_at == job.due_at
    with pytest.raises(InvalidTransitionError, match="paused; resume it first"):
        transitions.run_now(paused, T0)
    with pytest.raises(InvalidTransitionError, match="paused"):
        transitions.start(paused, 1, 1, T0)
    with pytest.raises(InvalidTransitionError):
        transitions.pause(paused, T0)  # already paused
    later = T0 + timedelta(hours=1)
    resumed = transitions.resume(paused, later, T0)
    assert resumed.status is JobStatus.SCHEDULED and resumed.due_at == later
    with pytest.raises(InvalidTransitionError):
        transitions.resume(resumed, later, T0)  # not paused
    # a paused job can be cancelled
    assert transitions.cancel(paused, T0).status is JobStatus.CANCELLED
    retrying = transitions.fail(transitions.start(job, 1, 1, T0), 1, T0, ErrorInfo("E", "x", 1),
                                retry_at=later)
    paused_retrying = transitions.pause(retrying, T0)
    assert transitions.resume(paused_retrying, later, T0).status is JobStatus.RETRYING


def test_a_retry_of_a_succeeded_job_is_refused_by_every_replay() -> None:
    # (a foreign or crafted record: the writer never writes one) the replay that dropped the
    # finished job refuses it like the one that kept it
    batch = [records.add(a_job()), records.start(JOB_ID, 1, 1, T0),
             records.ok(JOB_ID, 1, 1, T0, None, None)]
    retry = records.retry(replace(a_job(), runs=2), T0, rid="r", run=1)
    for keep in (True, False):
        state = ShardState(BLOB, keep_finished=keep)
        for record in [*batch, retry]:
            state.apply(json.loads(records.encode_line(record)))
        assert state.rids == {"r": False}, keep
        assert state.counts()["succeeded"] == 1 and state.counts()["scheduled"] == 0, keep
