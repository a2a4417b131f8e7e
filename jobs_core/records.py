"""The shard log format: one JSON object per line, each with a version ``v`` and an ``op``.

Every record is one small frozen type that encodes itself (``encode``) and is read back by
``decode``: below, by a field table (``record_codec.Fields``); in ``job_records.py``, the three
that carry a job's fields (``Add``, ``Retry``, ``Update``). The replay (``shard_state.py``),
the events (``event_log.py``) and the history (``job_history.py``) dispatch on the type, never
on raw keys.

    op          type        what it records                              keys (besides v, op, at)
    add         Add         a job was scheduled, or arrived by a move    id h due p k r rc n to
                                                                         lb (v4);
                                                                         moved in: ca from st a
                                                                         runs err res dsa
    cancel      Cancel      cancelled before it ran                      id why rid run
    run_now     RunNow      due time moved to now                        id rid run
    reschedule  Reschedule  due time moved                               id due rid run
    pause       Pause       held: it does not run until resumed (v3)     id rid run
    resume      Resume      waiting again, due at ``due`` (v3)            id due rid run
    update      Update      new field values, due at ``due`` (v3)         id due set p r rc
                                                                         to lb rid run
    misfire     Misfire     occurrence skipped (too late), next ``due``  id due rid run late
                            (v3)
    retry       Retry       a finished job runs again: its new state     as a moved-in add
                            (a new run, no attempts yet) (v4)            but ``from``; rid run
    start       Start       an attempt started                           id a e x run lease
    ok          Ok          an attempt succeeded                         id a e x res next rid
    fail        Fail        an attempt failed                            id a e x err retry next
                                                                         comp rid
    take_over   TakeOver    a lost execution's job taken over to         id a x px lease rid
                            compensate its last attempt (v5)
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
    px     (take_over) the token of the lost execution it replaces
    runs   (moved in) finished occurrences
    err    error: type, message, attempt, permanent; (moved in) the last error
    res    result; (moved in) the last result
    dsa    (moved in; v6) when a reschedule or run-now set the due time (misfire grace:
           lateness counts from it); for catch-up, where the count of missed occurrences
           starts (``transitions.catch_up_from``; also set by a retry's back-off)
    late   (misfire; v6) what the skipped occurrence's lateness was counted from: the
           record applies only while the job still counts from it
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
still read: their execution records (no ``x``) are fenced by epoch as before, and their adds
deduplicate idempotency keys in their blob as before (since version 2 the key index does, and a
key whose claim expired may name a new job in the same blob). The typed module
did not change the wire. Version 3 added ``pause``, ``resume``, ``update`` and ``misfire``,
the ``paused`` status a moved-in add may carry, and the v3 keys of ``rc``: only those records
are written as version 3, so a blob without them stays readable by a version-2 reader, and a
version-2 reader refuses a blob with them rather than misread it. Version 4 added ``retry``
(a finished job runs again; the record carries the job's whole state, like a moved-in add)
and labels (``lb``, in an add or an update): only records that use them are version 4.
Version 5 added ``take_over`` (only that record is version 5: it is written only when a lost
execution's last attempt is compensated). Version 6 added ``late`` (a misfire that names it
applies in fewer cases than an older reader would apply it) and ``dsa`` (a moved job whose
due time a control or a retry's back-off set: an older process would judge and count it from
the due time): only records with them are version 6, so an older reader refuses a blob it
would replay, or act on, differently.

Every block we append starts with a newline, so a torn or foreign partial line can never glue
itself to the next record: it stays a malformed line of its own, which the reader skips.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

from .job_records import Add, Retry, Update
from .model import ErrorInfo, Job
from .record_codec import Fields, Op, Wire, parse_ts, ts

FORMAT_VERSION = 6  # the newest version written (late, dsa; take_over 5; retry 4; pause... 3)
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)


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


@dataclass(frozen=True, slots=True)
class Misfire(Fields):
    """An occurrence skipped as too late. ``late_from``: what its lateness was counted from
    when it was judged (``recurrence.late_from``: the due time, or when a reschedule or
    run-now set it). The record applies only while the job still counts from it: a
    reschedule or run-now committed before it makes it void. A record without it (written
    before 2026-12; a reader that ignores it) applies as before."""

    OP = Op.MISFIRE
    VERSION = 3
    WIRE = (*_DUE_CONTROL, ("late_from", "late", "time"))
    id: str
    at: datetime
    due: datetime
    rid: str | None = None
    run: int | None = None
    late_from: datetime | None = None

    def encode(self) -> Wire:
        # with ``late`` it applies in fewer cases than a reader before version 6 would apply
        # it: that reader must refuse the blob rather than replay it to another state
        out = Fields.encode(self)
        if self.late_from is not None:
            out["v"] = 6
        return out


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
class TakeOver(Fields):
    """An executor takes a running job over from a lost execution (``prev``, its token) to
    compensate the job's last attempt: the job stays running on that attempt, under this
    execution's token and lease, so no planner takes it for abandoned while the compensation
    runs; the final ``fail`` carries this token. Version 5."""

    OP = Op.TAKE_OVER
    VERSION: ClassVar[int] = 5
    WIRE = (("id", "id", "str"), ("at", "at", "time"), ("attempt", "a", "int"),
            ("token", "x", "str"), ("prev", "px", "str"), ("lease", "lease", "time"),
            ("rid", "rid", "str"))
    id: str
    at: datetime
    attempt: int
    token: str
    prev: str | None = None
    lease: datetime | None = None
    rid: str | None = None


@dataclass(frozen=True, slots=True)
class Full(Fields):
    OP = Op.FULL
    WIRE = (("at", "at", "time"),)
    at: datetime


Record: TypeAlias = (Add | Cancel | RunNow | Reschedule | Pause | Resume | Update | Misfire |
                     Retry | Start | Ok | Fail | TakeOver | Touch | Move | Moved | Pointer | Full)
RECORD_TYPES: tuple[type, ...] = (Add, Cancel, RunNow, Reschedule, Pause, Resume, Update,
                                  Misfire, Retry, Start, Ok, Fail, TakeOver, Touch, Move, Moved,
                                  Pointer, Full)
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
            run: int | None = None, late_from: datetime | None = None) -> Misfire:
    return Misfire(job_id, at, next_due, rid, run, late_from)


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


def take_over(job_id: str, attempt: int, at: datetime, *, token: str, prev: str | None,
              lease: datetime, rid: str) -> TakeOver:
    return TakeOver(job_id, at, attempt, token, prev, lease, rid)


def pointer(job_id: str, to: str, at: datetime) -> Pointer:
    return Pointer(job_id, to, at)



__all__ = [
    "FORMAT_VERSION", "READABLE_VERSIONS", "RECORD_TYPES", "Add", "Cancel", "Fail", "Full",
    "Misfire", "Move", "Moved", "Ok", "Op", "Pause", "Pointer", "Record", "Reschedule",
    "Resume", "Retry", "RunNow", "Start", "TakeOver", "Touch", "Update", "Wire", "add", "cancel",
    "carry",
    "decode", "encode_block", "encode_line", "fail", "full", "misfire", "move", "moved", "ok",
    "parse_ts", "pause", "pointer", "reschedule", "resume", "retry", "run_now", "start",
    "take_over", "touch", "ts", "update",
]
