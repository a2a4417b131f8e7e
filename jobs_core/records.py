"""The shard log format: one JSON object per line, each with ``"v": 1`` and an ``op``.

    add         a job was scheduled (id, handler, due, payload, key, retry, recurrence, ...)
    cancel      cancelled before it ran
    run_now     due time moved to now
    reschedule  due time moved
    start       an attempt started (attempt, epoch of the executor's claim)
    ok          an attempt succeeded (result; next due time for a recurring job)
    fail        an attempt failed (error; retry time, or final + compensation outcome)
    touch       planner hint: another shard of this slot got an earlier due time

Every block we append starts with a newline, so a torn or foreign partial line can never glue
itself to the next record: it stays a malformed line of its own, which the reader skips.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .model import ErrorInfo, Job, Recurrence, RetryPolicy

FORMAT_VERSION = 1
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


def job_from_add(rec: Record) -> Job:
    rc = rec.get("rc")
    return Job(
        id=rec["id"], handler=rec["h"], due_at=parse_ts(rec["due"]),
        created_at=parse_ts(rec["at"]), updated_at=parse_ts(rec["at"]),
        payload=rec.get("p"), idempotency_key=rec.get("k"),
        retry=RetryPolicy(**rec["r"]) if "r" in rec else RetryPolicy(),
        recurrence=Recurrence(**rc) if rc else None,
        notify=rec.get("n"), timeout_seconds=rec.get("to"),
    )


def cancel(job_id: str, at: datetime, reason: str | None = None) -> Record:
    rec: Record = {"v": FORMAT_VERSION, "op": "cancel", "id": job_id, "at": ts(at)}
    if reason:
        rec["why"] = reason
    return rec


def run_now(job_id: str, at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "run_now", "id": job_id, "at": ts(at)}


def reschedule(job_id: str, due: datetime, at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "reschedule", "id": job_id, "due": ts(due), "at": ts(at)}


def start(job_id: str, attempt: int, epoch: int, at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "start", "id": job_id, "a": attempt, "e": epoch,
            "at": ts(at)}


def ok(job_id: str, attempt: int, epoch: int, at: datetime, result: Any,
       next_due: datetime | None) -> Record:
    rec: Record = {"v": FORMAT_VERSION, "op": "ok", "id": job_id, "a": attempt, "e": epoch,
                   "at": ts(at), "res": result}
    if next_due is not None:
        rec["next"] = ts(next_due)
    return rec


def fail(job_id: str, attempt: int, epoch: int, at: datetime, error: ErrorInfo, *,
         retry_at: datetime | None, next_due: datetime | None = None,
         compensation: str | None = None) -> Record:
    rec: Record = {"v": FORMAT_VERSION, "op": "fail", "id": job_id, "a": attempt, "e": epoch,
                   "at": ts(at), "err": error.to_dict()}
    if retry_at is not None:
        rec["retry"] = ts(retry_at)
    if next_due is not None:
        rec["next"] = ts(next_due)
    if compensation is not None:
        rec["comp"] = compensation
    return rec


def touch(shard_blob: str, at: datetime) -> Record:
    return {"v": FORMAT_VERSION, "op": "touch", "shard": shard_blob, "at": ts(at)}
