"""The records that carry a job's fields: ``Add`` (a job scheduled, or carried in by a move
with its state), ``Retry`` (a finished job's new state) and ``Update`` (new field values).
Their wire format is the job's own (``_job_wire``), not a fixed field table; ``records.py``
documents every key and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from .model import Job, JobStatus, Recurrence, RetryPolicy
from .record_codec import Op, Wire, as_error, as_int, as_str, parse_ts, ts


@dataclass(frozen=True, slots=True)
class Add:
    """A job as scheduled (``source`` None: ``at`` is its creation), or carried into this blob
    by a move with its state (``source`` the blob it left, ``at`` when it moved)."""

    OP: ClassVar[Op] = Op.ADD
    job: Job
    at: datetime
    source: str | None = None
    # a version-1 add: before the key index (version 2), a blob deduplicated idempotency keys
    # itself, so a later add of another id with its key is dropped (never written: the
    # version the line carries says it)
    v1: bool = False

    @property
    def id(self) -> str:
        return self.job.id

    def encode(self) -> Wire:
        return {**_job_wire(self.job, self.at, full=self.source is not None),
                **({} if self.source is None else {"from": self.source})}

    @classmethod
    def decode(cls, wire: Wire) -> Add:
        source = wire.get("from")
        return cls(_job_of(wire), parse_ts(wire["at"]), None if source is None else as_str(source),
                   wire.get("v") == 1)


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed or cancelled job runs again as a new run: the record carries the job's whole
    state after the retry (``transitions.retry``), so a replay that dropped the finished job
    (executors keep only unfinished ones) re-creates it. Version 4."""

    OP: ClassVar[Op] = Op.RETRY
    VERSION: ClassVar[int] = 4
    job: Job
    at: datetime
    rid: str | None = None
    run: int | None = None  # the run it retries (the job's ``runs`` when it failed)

    @property
    def id(self) -> str:
        return self.job.id

    def encode(self) -> Wire:
        return _with_request({**_job_wire(self.job, self.at, full=True), "v": self.VERSION,
                              "op": self.OP.value}, self.rid, self.run)

    @classmethod
    def decode(cls, wire: Wire) -> Retry:
        return cls(_job_of(wire), parse_ts(wire["at"]), *_request_of(wire))


def _with_request(out: Wire, rid: str | None, run: int | None) -> Wire:
    """A control's request id and occurrence, when it has them (custom-coded records)."""
    if rid is not None:
        out["rid"] = rid
    if run is not None:
        out["run"] = run
    return out


def _request_of(wire: Wire) -> tuple[str | None, int | None]:
    rid, run = wire.get("rid"), wire.get("run")
    return None if rid is None else as_str(rid), None if run is None else as_int(run)


def _job_wire(job: Job, at: datetime, *, full: bool) -> Wire:
    """A job's fields on the wire: as scheduled, or (``full``) with its state, as a move or a
    retry re-creates it."""
    # a paused job, or a recurrence with an end, is only readable by a v3 reader; labels by v4
    newer = job.status is JobStatus.PAUSED or (job.recurrence is not None and
                                               job.recurrence.extended)
    v4 = bool(job.labels) or (job.recurrence is not None and job.recurrence.needs_v4)
    out: Wire = {"v": 4 if v4 else 3 if newer else 2, "op": "add", "id": job.id,
                 "h": job.handler, "due": ts(job.due_at), "at": ts(at)}
    if job.payload is not None:
        out["p"] = job.payload
    if job.idempotency_key is not None:
        out["k"] = job.idempotency_key
    if job.retry != RetryPolicy():
        out["r"] = job.retry.to_dict()
    if job.recurrence is not None:
        out["rc"] = job.recurrence.to_dict()
    if job.notify is not None:
        out["n"] = job.notify
    if job.timeout_seconds is not None:
        out["to"] = job.timeout_seconds
    if job.labels:
        out["lb"] = job.labels
    if job.traceparent is not None:
        out["tp"] = job.traceparent
    if full:
        out.update({"ca": ts(job.created_at), "st": job.status.value, "a": job.attempts,
                    "runs": job.runs})
        if job.last_error is not None:
            out["err"] = job.last_error.to_dict()
        if job.result is not None:
            out["res"] = job.result
        if job.due_set_at is not None:
            out["dsa"] = ts(job.due_set_at)
            out["v"] = 6  # (an older reader counts lateness and catch-up from the due time)
    return out


def _job_of(wire: Wire) -> Job:
    rc, err, at = wire.get("rc"), wire.get("err"), parse_ts(wire["at"])
    return Job(
        id=as_str(wire["id"]), handler=as_str(wire["h"]), due_at=parse_ts(wire["due"]),
        created_at=parse_ts(wire["ca"]) if wire.get("ca") else at, updated_at=at,
        payload=wire.get("p"), idempotency_key=wire.get("k"),
        retry=RetryPolicy(**wire["r"]) if "r" in wire else RetryPolicy(),
        recurrence=Recurrence.from_dict(rc) if rc else None,
        notify=wire.get("n"), timeout_seconds=wire.get("to"),
        status=JobStatus(wire.get("st", "scheduled")), attempts=as_int(wire.get("a", 0)),
        runs=as_int(wire.get("runs", 0)), last_error=as_error(err) if err else None,
        result=wire.get("res"), labels=_labels(wire.get("lb")),
        traceparent=as_str(wire["tp"]) if wire.get("tp") else None,
        due_set_at=parse_ts(wire["dsa"]) if wire.get("dsa") else None,
    )


def _labels(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError(f"labels must be an object of strings, got {value!r:.60}")
    return value or None


@dataclass(frozen=True, slots=True)
class Update:
    """New values for the fields named in ``values`` (payload, retry, recurrence,
    timeout_seconds), and the due time that follows from them."""

    OP: ClassVar[Op] = Op.UPDATE
    VERSION: ClassVar[int] = 3
    _KEYS: ClassVar[dict[str, str]] = {"payload": "p", "retry": "r", "recurrence": "rc",
                                       "timeout_seconds": "to", "labels": "lb"}
    id: str
    at: datetime
    due: datetime
    values: dict[str, Any]
    rid: str | None = None
    run: int | None = None

    def encode(self) -> Wire:
        recurrence = self.values.get("recurrence")
        v4 = "labels" in self.values or (recurrence is not None and recurrence.needs_v4)
        version = 4 if v4 else self.VERSION  # (a v3 reader refuses it)
        out: Wire = {"v": version, "op": self.OP.value, "id": self.id, "at": ts(self.at),
                     "due": ts(self.due), "set": sorted(self.values)}
        for name, value in self.values.items():
            out[self._KEYS[name]] = value.to_dict() if hasattr(value, "to_dict") else value
        return _with_request(out, self.rid, self.run)

    @classmethod
    def decode(cls, wire: Wire) -> Update:
        values: dict[str, Any] = {}
        for name in wire["set"]:
            raw: Any = wire.get(cls._KEYS[name])  # KeyError: a field we do not know
            if name == "retry":
                values[name] = RetryPolicy(**raw)
            elif name == "recurrence":
                values[name] = Recurrence.from_dict(raw)
            elif name == "labels":
                values[name] = _labels(raw)
            else:
                values[name] = raw
        return cls(as_str(wire["id"]), parse_ts(wire["at"]), parse_ts(wire["due"]), values,
                   *_request_of(wire))
