"""One job's records, in log order, from its shard blobs (``GET /api/jobs/{id}/history``).

Every record of the job is returned, including those the replay ignores, each with
``applied`` and, when not applied, a ``note`` saying why: an execution record fenced off by a
newer claim epoch, a second ``start`` of the same attempt by another executor (at-least-once),
a ``cancel`` that came after the job had started, a duplicate ``add``.

The job's id names its home blob, so this starts with one read of that blob: the whole blob
(one GET per 4 MiB), without a cache, since operators ask for it rarely. A job that moved on
(a recurring job, a long retry chain, an evacuated blob: see ``moves.py``) ends in its home
with a ``moved`` record naming the next blob, which starts with the job's carried ``add``; the
history follows those hops (at most ``MAX_HOPS``), one read per blob, and every record says
which blob it is in. Blobs of the chain that retention purged are skipped by jumping to the
newest ``ptr`` the home holds (their records are gone; the job's state is not).

To decide what applied, each blob is replayed exactly as ``ShardState`` replays it, but
holding only this job: the other jobs' execution records are fed too (they move the blob's
highest epoch, which fences), and the idempotency keys of the other jobs' version-1 adds are
remembered (in a version-1 log, an earlier job with the same key makes this add a duplicate;
since the key index, a key whose claim expired may name a new job in the same blob). Memory:
the blob's bytes plus one job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import records
from .errors import BlobNotFoundError, JobNotFoundError, JobUnreachableError
from .ids import parse_job_id
from .model import Job
from .moves import MAX_HOPS
from .shard_state import ShardState
from .store import JobStore

EXECUTION_OPS = (records.Op.START, records.Op.OK, records.Op.FAIL)


@dataclass(frozen=True)
class HistoryRecord:
    type: str  # the record's op: add, cancel, run_now, reschedule, retry, start, ok, fail...
    at: datetime | None
    offset: int  # byte offset of the record's line in its blob
    applied: bool
    note: str | None = None  # why the replay ignored it
    attempt: int | None = None
    epoch: int | None = None
    error: dict[str, Any] | None = None  # type, message, attempt, permanent
    retry_at: datetime | None = None
    result: Any = None
    due_at: datetime | None = None  # add, reschedule, retry...: the due time it sets
    next_due: datetime | None = None  # ok/fail of a recurring job: the next occurrence
    compensation: str | None = None
    reason: str | None = None  # cancel
    handler: str | None = None  # add
    blob: str = ""  # the shard blob holding the record (the job's home, or where it moved)
    to: str | None = None  # move, moved, ptr: the blob the job moves to


@dataclass(frozen=True)
class JobHistory:
    job: Job  # the job as its log says it is now (what GET /api/jobs/{id} answers)
    records: list[HistoryRecord]


async def read_job_history(store: JobStore, job_id: str) -> JobHistory:
    """Raises ``InvalidJobIdError`` for a malformed id, ``JobNotFoundError`` for an unknown
    one (and for the loser of an idempotency-key race, which no caller was ever given)."""
    blob: str | None = parse_job_id(job_id).name
    found: list[HistoryRecord] = []
    job: Job | None = None
    seen: set[str] = set()
    pointer: str | None = None  # the home's latest hint of where the job lives
    while blob is not None and blob not in seen and len(seen) < MAX_HOPS:
        seen.add(blob)
        try:
            data = (await store.read(blob)).data
        except BlobNotFoundError:  # purged by retention: skip to the home's pointer
            blob = pointer if pointer not in seen else None
            continue
        state = _replay_blob(blob, data, job_id, found)
        pointer = state.pointers.get(job_id, pointer)
        job = state.jobs.get(job_id, job)
        blob = state.moved.get(job_id)
        if blob is None and job_id not in state.jobs and pointer not in seen:
            blob = pointer
    if blob is not None and blob not in seen:  # (as GET: never an old state, nor a 404)
        raise JobUnreachableError(job_id, MAX_HOPS)
    if job is None:
        raise JobNotFoundError(job_id)
    return JobHistory(job, found)


def _replay_blob(blob: str, data: bytes, job_id: str,
                 found: list[HistoryRecord]) -> ShardState:
    state = ShardState(blob, keep_finished=True)  # it will only ever hold this job
    keys_before: set[str] = set()
    offset = 0
    for line in data.split(b"\n"):
        at_offset, offset = offset, offset + len(line) + 1
        wire = _parse(line)
        if wire is None:
            continue
        if wire.get("id") != job_id:
            if wire.get("op") in EXECUTION_OPS:
                state.apply(wire)
            elif wire.get("op") == "add" and wire.get("v") == 1 and "from" not in wire and \
                    isinstance(wire.get("k"), str):
                keys_before.add(wire["k"])  # (as ShardState: only version-1 adds, see Add.v1)
            continue
        found.append(_replay(state, wire, job_id, keys_before, blob, at_offset))
    return state


def _parse(line: bytes) -> records.Wire | None:
    line = line.strip()
    if not line:
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None  # torn or foreign line: ShardState skips it too
    return record if isinstance(record, dict) and "op" in record else None


def _replay(state: ShardState, wire: records.Wire, job_id: str, keys_before: set[str],
            blob: str, offset: int) -> HistoryRecord:
    op = str(wire["op"])
    try:
        record: records.Record | None = records.decode(wire)
    except (KeyError, TypeError, ValueError):
        record = None
    if record is None or wire.get("v") not in records.READABLE_VERSIONS:
        state.apply(wire)  # (a newer version raises, as it does for GET)
        return HistoryRecord(type=op, at=None, offset=offset, applied=False, blob=blob,
                             note="ignored: not a valid record of a known version")
    before = state.jobs.get(job_id)
    skipped, fenced, max_epoch = state.skipped, state.fenced, state.max_epoch
    note: str | None = None
    if isinstance(record, records.Add) and before is None and record.source is None and \
            record.v1 and record.job.idempotency_key in keys_before:
        note = "ignored: an earlier job in this blob has the same idempotency key"
    elif isinstance(record, records.Pointer):
        state.apply(record)  # a hint in the home blob: where the job lives now
    else:
        state.apply(record)
        after = state.jobs.get(job_id)
        if state.fenced > fenced:
            note = (f"fenced off: epoch {getattr(record, 'epoch', None)} is older than epoch "
                    f"{max_epoch} already recorded in this blob")
        elif state.skipped > skipped:
            note = ("ignored: does not fit the job's state then" if before is None else
                    f"ignored: the job was {before.status.value} on attempt {before.attempts}")
        elif isinstance(record, records.Moved) and job_id in state.moved:
            pass  # applied: the job left this blob
        elif after is None:
            note = ("ignored: the job had already left this blob" if job_id in state.moved
                    else "ignored: no add record for the job before it")
        elif isinstance(record, records.Add) and before is not None:
            note = "ignored: a duplicate add"
    return _entry(record, blob, offset, note)


def _entry(r: records.Record, blob: str, offset: int, note: str | None) -> HistoryRecord:
    add = r.job if isinstance(r, records.Add) else None
    error = r.error if isinstance(r, records.Fail) else (add.last_error if add else None)
    return HistoryRecord(
        type=r.OP.value, at=r.at, offset=offset, applied=note is None, note=note,
        attempt=getattr(r, "attempt", None), epoch=getattr(r, "epoch", None),
        error=error.to_dict() if error is not None else None,
        retry_at=getattr(r, "retry_at", None),
        result=r.result if isinstance(r, records.Ok) else (add.result if add else None),
        due_at=add.due_at if add else r.job.due_at if isinstance(r, records.Retry) else
        getattr(r, "due", None),
        next_due=getattr(r, "next_due", None), compensation=getattr(r, "compensation", None),
        reason=getattr(r, "reason", None), handler=add.handler if add else None, blob=blob,
        to=r.to if isinstance(r, records.Move | records.Moved | records.Pointer) else None)
