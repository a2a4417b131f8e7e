"""The shard log format: one JSON object per line, each with a version ``v`` and an ``op``.

Every record is one small frozen type below that encodes itself (``encode``) and is read back
by ``decode``; the replay (``shard_state.py``), the events (``event_log.py``) and the history
(``job_history.py``) dispatch on the type, never on raw keys.

    op          type        what it records                              keys (besides v, op, at)
    add         Add         a job was scheduled, or arrived by a move    id h due p k r rc n to
                                                                         lb (v4);
                                                                         moved in: ca from st a
                                                                         runs err res
    cancel      Cancel      cancelled before it ran                      id why rid run
    run_now     RunNow      due time moved to now                        id rid run
    reschedule  Reschedule  due time moved                               id due rid run
    pause       Pause       held: it does not run until resumed (v3)     id rid run
    resume      Resume      waiting again, due at ``due`` (v3)            id due rid run
    update      Update      new field values, due at ``due`` (v3)         id due set p r rc
                                                                         to lb rid run
    misfire     Misfire     occurrence skipped (too late), next ``due``  id due rid run
                            (v3)
    retry       Retry       a finished job runs again: its new state     as a moved-in add
                            (a new run, no attempts yet) (v4)            but ``from``; rid run
    start       Start       an attempt started                           id a e x run lease
    ok          Ok          an attempt succeeded                         id a e x res next rid
    fail        Fail        an attempt failed                            id a e x err retry next
                                                                         comp rid
    touch       Touch       planner hint: read that blob now             shard
    move        Move        the job is leaving this blob for ``to``      id to
    moved       Moved       the job has arrived at ``to``: gone here     id to
    ptr         Pointer     (home blob only) the job now lives in ``to`` id to
    full        Full        the blob reached JOBS_EVACUATE_BLOCKS: no    (none)
                            more starts or changes; waiting jobs move out

Keys (every key any record writes; ``tests/unit/test_log_format.py`` checks the table):

    key    meaning
    v      format version of the record
    op     the record type (the table above)
    at     when it was written (ISO-8601 UTC); a moved-in add: when the job moved
    id     job id
    h      handler name
    due    due time
    p      payload
    k      idempotency key
    r      retry policy
    rc     recurrence: cron + timezone or interval_seconds; (v3) until, max_runs,
           interval_mode, anchor, jitter_seconds, misfire_grace_seconds
    n      notify queue
    lb     (v4) labels: an object of strings
    tp     the scheduling request's W3C traceparent (telemetry on; any reader may ignore it)
    to     timeout seconds in ``add`` and ``update``; the destination blob in move, moved, ptr
    set    (update) the fields the update sets: payload, retry, recurrence, timeout_seconds,
           labels
    ca     (moved in) when the job was created
    from   (moved in) the blob the job came from
    st     (moved in) status
    a      attempt; (moved in) attempts so far
    runs   (moved in) finished occurrences
    err    error: type, message, attempt, permanent; (moved in) the last error
    res    result; (moved in) the last result
    why    cancel reason
    rid    random id of a control request, or of an outcome record: the replay applies each
           rid once and remembers whether it applied, so the writer can answer the truth
    run    the occurrence the writer saw: a record for another occurrence is ignored, so a
           block committed twice cannot touch the next occurrence
    e      claim epoch (fences v1 execution records; informational since v2)
    x      execution token: the random id of one execution, written with its start and its
           outcome; an outcome applies only when its token is the job's current one
    lease  until when that execution owns the job (timeout + grace from its real start)
    next   the next occurrence of a recurring job
    retry  when the next attempt is due
    comp   compensation outcome
    shard  the blob a touch points at

Version 2 added rid, run, x, lease, move/moved/ptr and the moved-in keys. Version 1 logs are
still read: their execution records (no ``x``) are fenced by epoch as before. The typed module
did not change the wire. Version 3 added ``pause``, ``resume``, ``update`` and ``misfire``,
the ``paused`` status a moved-in add may carry, and the v3 keys of ``rc``: only those records
are written as version 3, so a blob without them stays readable by a version-2 reader, and a
version-2 reader refuses a blob with them rather than misread it. Version 4 added ``retry``
(a finished job runs again; the record carries the job's whole state, like a moved-in add)
and labels (``lb``, in an add or an update): only records that use them are version 4.

Every block we append starts with a newline, so a torn or foreign partial line can never glue
itself to the next record: it stays a malformed line of its own, which the reader skips.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from .model import ErrorInfo, Job, JobStatus, Recurrence, RetryPolicy
from .record_codec import Fields, Wire, as_error, as_int, as_str, parse_ts, ts

FORMAT_VERSION = 4  # the newest version written (by retry; pause, resume... 3; the others 2)
READABLE_VERSIONS = (1, 2, 3, 4)


class Op(StrEnum):
    ADD = "add"
    CANCEL = "cancel"
    RUN_NOW = "run_now"
    RESCHEDULE = "reschedule"
    PAUSE = "pause"
    RESUME = "resume"
    UPDATE = "update"
    MISFIRE = "misfire"
    RETRY = "retry"
    START = "start"
    OK = "ok"
    FAIL = "fail"
    TOUCH = "touch"
    MOVE = "move"
    MOVED = "moved"
    POINTER = "ptr"
    FULL = "full"


_CONTROL = (("id", "id", "str"), ("at", "at", "time"), ("rid", "rid", "str"),
            ("run", "run", "int"))
_DUE_CONTROL = (*_CONTROL[:2], ("due", "due", "time"), *_CONTROL[2:])  # with the new due time


@dataclass(frozen=True, slots=True)
class Cancel(Fields):
    OP = Op.CANCEL
    WIRE = (*_CONTROL, ("reason", "why", "str"))
    id: str
    at: datetime
    rid: str | None = None
    run: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class _Control(Fields):
    """A control of one job: which job, when, which request (``rid``), which occurrence."""

    WIRE = _CONTROL
    id: str
    at: datetime
    rid: str | None = None
    run: int | None = None


class RunNow(_Control):
    __slots__ = ()
    OP = Op.RUN_NOW


@dataclass(frozen=True, slots=True)
class _DueControl(Fields):
    """A control that gives the job a new due time."""

    WIRE = _DUE_CONTROL
    id: str
    at: datetime
    due: datetime
    rid: str | None = None
    run: int | None = None


class Reschedule(_DueControl):
    __slots__ = ()
    OP = Op.RESCHEDULE


class Pause(_Control):
    __slots__ = ()
    OP = Op.PAUSE
    VERSION = 3


class Misfire(_DueControl):
    __slots__ = ()
    OP = Op.MISFIRE
    VERSION = 3


class Resume(_DueControl):
    __slots__ = ()
    OP = Op.RESUME
    VERSION = 3


_EXECUTION = (("id", "id", "str"), ("at", "at", "time"), ("attempt", "a", "int"),
              ("epoch", "e", "int"), ("token", "x", "str"))


@dataclass(frozen=True, slots=True)
class Start(Fields):
    OP = Op.START
    WIRE = (*_EXECUTION, ("run", "run", "int"), ("lease", "lease", "time"))
    id: str
    at: datetime
    attempt: int
    epoch: int
    token: str | None = None
    run: int | None = None
    lease: datetime | None = None


@dataclass(frozen=True, slots=True)
class Ok(Fields):
    OP = Op.OK
    WIRE = (*_EXECUTION, ("result", "res", "json"), ("next_due", "next", "time"),
            ("rid", "rid", "str"))
    id: str
    at: datetime
    attempt: int
    epoch: int
    result: Any
    token: str | None = None
    next_due: datetime | None = None
    rid: str | None = None


@dataclass(frozen=True, slots=True)
class Fail(Fields):
    OP = Op.FAIL
    WIRE = (*_EXECUTION, ("error", "err", "error"), ("retry_at", "retry", "time"),
            ("next_due", "next", "time"), ("compensation", "comp", "str"),
            ("rid", "rid", "str"))
    id: str
    at: datetime
    attempt: int
    epoch: int
    error: ErrorInfo
    token: str | None = None
    retry_at: datetime | None = None
    next_due: datetime | None = None
    compensation: str | None = None
    rid: str | None = None


@dataclass(frozen=True, slots=True)
class Touch(Fields):
    OP = Op.TOUCH
    WIRE = (("shard", "shard", "str"), ("at", "at", "time"))
    shard: str
    at: datetime


_WHERE = (("id", "id", "str"), ("to", "to", "str"), ("at", "at", "time"))


@dataclass(frozen=True, slots=True)
class _Where(Fields):
    """Where a job goes: the blob ``to``."""

    WIRE = _WHERE
    id: str
    to: str
    at: datetime


class Move(_Where):
    __slots__ = ()
    OP = Op.MOVE


class Moved(_Where):
    __slots__ = ()
    OP = Op.MOVED


class Pointer(_Where):
    __slots__ = ()
    OP = Op.POINTER


@dataclass(frozen=True, slots=True)
class Full(Fields):
    OP = Op.FULL
    WIRE = (("at", "at", "time"),)
    at: datetime


@dataclass(frozen=True, slots=True)
class Add:
    """A job as scheduled (``source`` None: ``at`` is its creation), or carried into this blob
    by a move with its state (``source`` the blob it left, ``at`` when it moved)."""

    OP: ClassVar[Op] = Op.ADD
    job: Job
    at: datetime
    source: str | None = None

    @property
    def id(self) -> str:
        return self.job.id

    def encode(self) -> Wire:
        return {**_job_wire(self.job, self.at, full=self.source is not None),
                **({} if self.source is None else {"from": self.source})}

    @classmethod
    def decode(cls, wire: Wire) -> Add:
        source = wire.get("from")
        return cls(_job_of(wire), parse_ts(wire["at"]), None if source is None else as_str(source))


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
        out = {**_job_wire(self.job, self.at, full=True), "v": self.VERSION,
               "op": self.OP.value}
        if self.rid is not None:
            out["rid"] = self.rid
        if self.run is not None:
            out["run"] = self.run
        return out

    @classmethod
    def decode(cls, wire: Wire) -> Retry:
        rid, run = wire.get("rid"), wire.get("run")
        return cls(_job_of(wire), parse_ts(wire["at"]), None if rid is None else as_str(rid),
                   None if run is None else as_int(run))


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
        if self.rid is not None:
            out["rid"] = self.rid
        if self.run is not None:
            out["run"] = self.run
        return out

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
        rid, run = wire.get("rid"), wire.get("run")
        return cls(as_str(wire["id"]), parse_ts(wire["at"]), parse_ts(wire["due"]), values,
                   None if rid is None else as_str(rid), None if run is None else as_int(run))


Record: TypeAlias = (Add | Cancel | RunNow | Reschedule | Pause | Resume | Update | Misfire |
                     Retry | Start | Ok | Fail | Touch | Move | Moved | Pointer | Full)
RECORD_TYPES: tuple[type, ...] = (Add, Cancel, RunNow, Reschedule, Pause, Resume, Update,
                                  Misfire, Retry, Start, Ok, Fail, Touch, Move, Moved, Pointer,
                                  Full)
_BY_OP: dict[str, Any] = {t.OP.value: t for t in RECORD_TYPES}  # type: ignore[attr-defined]


def decode(wire: Wire) -> Record:
    """The typed record of a JSON object of a readable version. Raises ``KeyError``,
    ``TypeError`` or ``ValueError`` for an invalid one (the reader skips it)."""
    kind = _BY_OP.get(wire.get("op"))  # type: ignore[arg-type]
    if kind is None:
        raise ValueError(f"unknown op {wire.get('op')!r}")
    return kind.decode(wire)  # type: ignore[no-any-return]


def encode_block(records: Iterable[Record | Wire]) -> bytes:
    return b"\n" + b"".join(encode_line(r) for r in records)


def encode_line(record: Record | Wire) -> bytes:
    wire = record if isinstance(record, dict) else record.encode()
    return json.dumps(wire, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


# --- builders: the records the scheduler, the executor and the mover write ------------------
def add(job: Job) -> Add:
    return Add(job, job.created_at)


def carry(job: Job, source: str, at: datetime) -> Add:
    """The ``add`` that re-creates a waiting job, with its state, in the blob it moves to."""
    return Add(job, at, source)


def cancel(job_id: str, at: datetime, reason: str | None = None, *, rid: str | None = None,
           run: int | None = None) -> Cancel:
    return Cancel(job_id, at, rid, run, reason or None)


def run_now(job_id: str, at: datetime, *, rid: str | None = None,
            run: int | None = None) -> RunNow:
    return RunNow(job_id, at, rid, run)


def reschedule(job_id: str, due: datetime, at: datetime, *, rid: str | None = None,
               run: int | None = None) -> Reschedule:
    return Reschedule(job_id, at, due, rid, run)


def pause(job_id: str, at: datetime, *, rid: str | None = None, run: int | None = None) -> Pause:
    return Pause(job_id, at, rid, run)


def resume(job_id: str, due: datetime, at: datetime, *, rid: str | None = None,
           run: int | None = None) -> Resume:
    return Resume(job_id, at, due, rid, run)


def update(job_id: str, values: dict[str, Any], due: datetime, at: datetime, *,
           rid: str | None = None, run: int | None = None) -> Update:
    return Update(job_id, at, due, values, rid, run)


def misfire(job_id: str, next_due: datetime, at: datetime, *, rid: str | None = None,
            run: int | None = None) -> Misfire:
    return Misfire(job_id, at, next_due, rid, run)


def retry(job: Job, at: datetime, *, rid: str | None = None, run: int | None = None) -> Retry:
    return Retry(job, at, rid, run)


def start(job_id: str, attempt: int, epoch: int, at: datetime, *, token: str | None = None,
          run: int | None = None, lease: datetime | None = None) -> Start:
    return Start(job_id, at, attempt, epoch, token, run, lease)


def ok(job_id: str, attempt: int, epoch: int, at: datetime, result: Any,
       next_due: datetime | None, *, token: str | None = None) -> Ok:
    return Ok(job_id, at, attempt, epoch, result, token, next_due)


def fail(job_id: str, attempt: int, epoch: int, at: datetime, error: ErrorInfo, *,
         retry_at: datetime | None, next_due: datetime | None = None,
         compensation: str | None = None, token: str | None = None) -> Fail:
    return Fail(job_id, at, attempt, epoch, error, token, retry_at, next_due, compensation)


def touch(shard_blob: str, at: datetime) -> Touch:
    return Touch(shard_blob, at)


def move(job_id: str, to: str, at: datetime) -> Move:
    return Move(job_id, to, at)


def moved(job_id: str, to: str, at: datetime) -> Moved:
    return Moved(job_id, to, at)


def full(at: datetime) -> Full:
    return Full(at)


def pointer(job_id: str, to: str, at: datetime) -> Pointer:
    return Pointer(job_id, to, at)



__all__ = [
    "FORMAT_VERSION", "READABLE_VERSIONS", "RECORD_TYPES", "Add", "Cancel", "Fail", "Full",
    "Misfire", "Move", "Moved", "Ok", "Op", "Pause", "Pointer", "Record", "Reschedule",
    "Resume", "Retry", "RunNow", "Start", "Touch", "Update", "Wire", "add", "cancel", "carry",
    "decode", "encode_block", "encode_line", "fail", "full", "misfire", "move", "moved", "ok",
    "parse_ts", "pause", "pointer", "reschedule", "resume", "retry", "run_now", "start",
    "touch", "ts", "update",
]
