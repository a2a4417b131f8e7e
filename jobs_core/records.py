"""The shard log format: one JSON object per line, each with a version ``v`` and an ``op``.

    op          what it records                                   keys (besides v, op, id, at)
    add         a job was scheduled, or arrived by a move        h due p k r rc n to; moved in:
                                                                  st a runs err res from
    cancel      cancelled before it ran                           why rid run
    run_now     due time moved to now                             rid run
    reschedule  due time moved                                    due rid run
    start       an attempt started                                a e x run lease
    ok          an attempt succeeded                              a e x res next
    fail        an attempt failed                                 a e x err retry next comp
    touch       planner hint: read that blob now                  shard
    move        the job is leaving this blob for ``to``           to
    moved       the job has arrived at ``to``: it is gone here    to
    ptr         (home blob only) the job now lives in ``to``      to
    full        the blob reached JOBS_EVACUATE_BLOCKS: no more    (none)
                starts or changes here; waiting jobs move out

Keys: ``id`` job id; ``at`` when (ISO-8601 UTC); ``h`` handler; ``due`` due time; ``p`` payload;
``k`` idempotency key; ``r`` retry policy; ``rc`` recurrence; ``n`` notify queue; ``to`` timeout
seconds in ``add``, destination blob in move/moved/ptr; ``st``/``a``/``runs``/``err``/``res``
the state a moved job carries (status, attempts, finished occurrences, last error and result);
``from`` the blob it came from; ``why`` cancel reason; ``rid`` random id of a control request
(the replay applies each rid once and remembers whether it applied, so the API can answer the
truth); ``run`` the occurrence the writer saw (a record for another occurrence is ignored, so a
block committed twice cannot touch the next occurrence); ``a`` attempt; ``e`` claim epoch
(informational since v2); on ``ok``/``fail``, ``rid`` is the outcome record's own random
id; ``x`` execution token: the random id of one execution, written with its start and its
outcome: an outcome applies only when its token is the job's current one
(fencing, per job); ``lease`` until when that execution owns the job (timeout + grace from its
real start); ``res`` result; ``next`` next occurrence; ``err`` error; ``retry`` retry time;
``comp`` compensation outcome; ``shard`` the blob a touch points at.

Version 2 added rid, run, x, lease, move/moved/ptr and the moved-in keys. Version 1 logs are
still read: their execution records are fenced by epoch as before.

Every block we append starts with a newline, so a torn or foreign partial line can never glue
itself to the next record: it stays a malformed line of its own, which the reader skips.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .model import ErrorInfo, Job, JobStatus, Recurrence, RetryPolicy

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
Record = dict[str, Any]


def ts(value: datetime) -> str:
    return value.isoformat()


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def encode_block(records: list[Record]) -> bytes:
    return b"\n" + b"".join(encode_line(r) for r in records)


def encode_line(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def add(job: Job) -> Record:
    rec: Record = {"v": FORMAT_VERSION, "op": "add", "id": job.id, "h": job.handler,
                   "due": ts(job.due_at), "at": ts(job.created_at)}
    if job.payload is not None:
        rec["p"] = job.payload
    if job.idempotency_key is not None:
        rec["k"] = job.idempotency_key
    if job.retry != RetryPolicy():
        rec["r"] = job.retry.to_dict()
    if job.recurrence is not None:
        rec["rc"] = job.recurrence.to_dict()
    if job.notify is not None:
        rec["n"] = job.notify
    if job.timeout_seconds is not None:
        rec["to"] = job.timeout_seconds
    return rec


def carry(job: Job, source: str, at: datetime) -> Record:
    """The ``add`` that re-creates a waiting job, with its state, in the blob it moves to."""
    rec = add(job)
    rec["at"] = ts(at)
    rec["ca"] = ts(job.created_at)
    rec["from"] = source
    rec["st"] = job.status.value
    rec["a"] = job.attempts
    rec["runs"] = job.runs
    if job.last_error is not None:
        rec["err"] = job.last_error.to_dict()
    if job.result is not None:
        rec["res"] = job.result
    return rec


def job_from_add(rec: Record) -> Job:
    rc = rec.get("rc")
    err = rec.get("err")
    return Job(
        id=rec["id"], handler=rec["h"], due_at=parse_ts(rec["due"]),
        created_at=parse_ts(rec.get("ca") or rec["at"]), updated_at=parse_ts(rec["at"]),
        payload=rec.get("p"), idempotency_key=rec.get("k"),
        retry=RetryPolicy(**rec["r"]) if "r" in rec else RetryPolicy(),
        recurrence=Recurrence(**rc) if rc else None,
        notify=rec.get("n"), timeout_seconds=rec.get("to"),
        status=JobStatus(rec.get("st", "scheduled")), attempts=int(rec.get("a", 0)),
        runs=int(rec.get("runs", 0)), last_error=ErrorInfo(**err) if err else None,
        result=rec.get("res"),
    )


def _control(op: str, job_id: str, at: datetime, rid: str | None, run: int | None) -> Record:
    rec: Record = {"v": FORMAT_VERSION, "op": op, "id": job_id, "at": ts(at)}
    if rid is not None:
        rec["rid"] = rid
    if run is not None:
        rec["run"] = run
    return rec


def cancel(job_id: str, at: datetime, reason: str | None = None, *, rid: str | None = None,
           run: int | None = None) -> Record:
    rec = _control("cancel", job_id, at, rid, run)
    if reason:
        rec["why"] = reason
    return rec


def run_now(job_id: str, at: datetime, *, rid: str | None = None,
            run: int | None = None) -> Record:
    return _control("run_now", job_id, at, rid, run)


def reschedule(job_id: str, due: datetime, at: datetime, *, rid: str | None = None,
               run: int | None = None) -> Record:
    rec = _control("reschedule", job_id, at, rid, run)
    rec["due"] = ts(due)
    return rec


def start(job_id: str, attempt: int, epoch: int, at: datetime, *, token: str | None = None,
          run: int | None = None, lease: datetime | None = None) -> Record:
    rec: Record = {"v": FORMAT_VERSION, "op": "start", "id": job_id, "a": attempt, "e": epoch,
                   "at": ts(at)}
    if token is not None:
        rec["x"] = token
    if run is not None:
        rec["run"] = run
    if lease is not None:
        rec["lease"] = ts(lease)
    return rec


def ok(job_id: str, attempt: int, epoch: int, at: datetime, result: Any,
       next_due: datetime | None, *, token: str | None = None) -> Record:
    rec: Record = {"v": FORMAT_VERSION, "op": "ok", "id": job_id, "a": attempt, "e": epoch,
                   "at": ts(at), "res": result}
    if next_due is not None:
        rec["next"] = ts(next_due)
    if token is not None:
        rec["x"] = token
    return rec


def fail(job_id: str, attempt: int, epoch: int, at: datetime, error: ErrorInfo, *,
         retry_at: datetime | None, next_due: datetime | None = None,
         compensation: str | None = None, token: str | None = None) -> Record:
    rec: Record = {"v": FORMAT_VERSION, "op": "fail", "id": job_id, "a": attempt, "e": epoch,
                   "at": ts(at), "err": error.to_dict()}
    if retry_at is not None:
        rec["retry"] = ts(retry_at)
    if next_due is not None:
        rec["next"] = ts(next_due)
    if compensation is not None:
        rec["comp"] = compensation
    if token is not None:
        rec["x"] = token
    return rec


def touch(shard_blob: str, at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "touch", "shard": shard_blob, "at": ts(at)}


def move(job_id: str, to: str, at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "move", "id": job_id, "to": to, "at": ts(at)}


def moved(job_id: str, to: str, at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "moved", "id": job_id, "to": to, "at": ts(at)}


def full(at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "full", "at": ts(at)}


def pointer(job_id: str, to: str, at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "ptr", "id": job_id, "to": to, "at": ts(at)}
