"""Data types of the scheduler: job status, retry policy, recurrence, the job itself."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .backoff import backoff

JSON = Any  # a JSON-compatible value (dict, list, str, int, float, bool, None)


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its due time
    RUNNING = "running"  # an attempt started and has not reported back
    RETRYING = "retrying"  # an attempt failed; the next one waits for its backoff
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the last attempt failed and no retry is left (or it was permanent)
    CANCELLED = "cancelled"
    PAUSED = "paused"  # held by a pause: it does not run until it is resumed (or cancelled)

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def is_waiting(self) -> bool:
        return self in (JobStatus.SCHEDULED, JobStatus.RETRYING)


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: the n-th retry waits ``min(max_delay, base_delay * 2**(n-1))``
    seconds, scaled by a random factor in ``[1 - jitter, 1 + jitter]``."""

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.2

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        exp = backoff(failed_attempts, self.base_delay, self.max_delay)
        if self.jitter <= 0:
            return exp
        factor = 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return float(max(0.0, min(self.max_delay * (1 + self.jitter), exp * factor)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """Either a cron expression (5 fields) evaluated in ``timezone``, or a fixed interval:
    ``fixed_delay`` (the next run ``interval_seconds`` after the previous one finished, or
    was due if later) or ``fixed_rate`` (on the grid ``anchor + k * interval_seconds``, no
    drift). Optionally ending (no occurrence after ``until``, at most ``max_runs``), spread
    (each occurrence delayed by a random ``[0, jitter_seconds]``), and skipping occurrences
    that would start more than ``misfire_grace_seconds`` late."""

    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: float | None = None
    until: datetime | None = None
    max_runs: int | None = None
    interval_mode: str = "fixed_delay"
    anchor: datetime | None = None  # fixed_rate: the grid's origin (default: the first due)
    jitter_seconds: float | None = None
    # misfire policy: None runs a late occurrence once (run_once); a number skips an
    # occurrence that would start more than that many seconds late
    misfire_grace_seconds: float | None = None
    # misfire policy run_all: after downtime, every missed occurrence runs (the latest
    # ``catch_up_max`` of them, back to back); cron and fixed_rate only
    catch_up_max: int | None = None
    # an occurrence due while the previous one still runs: "skip" it (the default),
    # "buffer_one": run the first such one as soon as the previous finishes, or "allow": each
    # occurrence runs as a job of its own (attempts.AttemptRunner._fire), so they may overlap
    overlap: str = "skip"

    @property
    def needs_v4(self) -> bool:
        """Whether it uses a field a version-3 reader does not know."""
        return self.catch_up_max is not None or self.overlap != "skip"

    @property
    def extended(self) -> bool:
        """Whether it uses a field a version-2 reader does not know."""
        return self.until is not None or self.max_runs is not None or \
            self.interval_mode != "fixed_delay" or self.jitter_seconds is not None or \
            self.misfire_grace_seconds is not None or self.needs_v4

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = ({"cron": self.cron, "timezone": self.timezone}
                               if self.cron is not None
                               else {"interval_seconds": self.interval_seconds})
        if self.interval_mode != "fixed_delay":
            out["interval_mode"] = self.interval_mode
        if self.anchor is not None:
            out["anchor"] = iso(self.anchor)
        if self.jitter_seconds is not None:
            out["jitter_seconds"] = self.jitter_seconds
        if self.misfire_grace_seconds is not None:
            out["misfire_grace_seconds"] = self.misfire_grace_seconds
        if self.catch_up_max is not None:
            out["catch_up_max"] = self.catch_up_max
        if self.overlap != "skip":
            out["overlap"] = self.overlap
        if self.until is not None:
            out["until"] = iso(self.until)
        if self.max_runs is not None:
            out["max_runs"] = self.max_runs
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recurrence:
        """The stored form (``to_dict``) read back."""
        return cls(cron=data.get("cron"), timezone=data.get("timezone") or "UTC",
                   interval_seconds=data.get("interval_seconds"),
                   until=_parse_iso(data.get("until")), max_runs=data.get("max_runs"),
                   interval_mode=data.get("interval_mode") or "fixed_delay",
                   anchor=_parse_iso(data.get("anchor")),
                   jitter_seconds=data.get("jitter_seconds"),
                   misfire_grace_seconds=data.get("misfire_grace_seconds"),
                   catch_up_max=data.get("catch_up_max"),
                   overlap=data.get("overlap") or "skip")


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with ``Z``: how the API, the events and the reports write a time (the one
    formatter; the shard log's ``ts`` in record_codec is its own, fixed wire format)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def read_iso(text: str) -> datetime:
    """A caller's ISO-8601 date-time, spaces around it ignored; RFC 3339's lower-case ``z``
    for UTC is read like ``Z`` (``fromisoformat`` takes a lower-case ``t`` but not ``z``).
    Raises ``ValueError`` for text that is no date-time; the offset is the caller's to check."""
    text = text.strip()
    if text.endswith("z"):
        text = text[:-1] + "Z"
    return datetime.fromisoformat(text)


def _parse_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    type: str
    message: str
    attempt: int = 0
    permanent: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    handler: str
    due_at: datetime
    created_at: datetime
    payload: JSON = None
    status: JobStatus = JobStatus.SCHEDULED
    attempts: int = 0  # attempts of the current occurrence
    idempotency_key: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    recurrence: Recurrence | None = None
    notify: str | None = None
    timeout_seconds: float | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: ErrorInfo | None = None
    result: JSON = None
    runs: int = 0  # finished occurrences of a recurring job
    epoch: int = 0  # claim epoch of the executor that started the current attempt
    compensation: str | None = None  # "succeeded" or the compensation's error message
    cancel_reason: str | None = None
    token: str | None = None  # execution token of the current attempt (fences outcomes)
    lease_until: datetime | None = None  # the current execution owns the job until then
    version: int = 0  # records applied to the job so far (orders the states of one job)
    moving_to: str | None = None  # set while the job moves to another blob
    labels: dict[str, str] | None = None  # (labels.py)
    traceparent: str | None = None  # the scheduling request's trace (telemetry.py), if on
    # set when something other than the recurrence or the scheduling request set ``due_at``
    # (None: they did). Misfire grace: when a reschedule or run-now set it (the occurrence is
    # late only from then). Catch-up: where the count of missed occurrences starts once it
    # ran (a control's, or a retry's back-off: ``transitions.catch_up_from``)
    due_set_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "handler": self.handler,
            "status": self.status.value,
            "due_at": iso_or_none(self.due_at),
            "created_at": iso_or_none(self.created_at),
            "updated_at": iso_or_none(self.updated_at),
            "started_at": iso_or_none(self.started_at),
            "finished_at": iso_or_none(self.finished_at),
            "attempts": self.attempts,
            "max_attempts": self.retry.max_attempts,
            "runs": self.runs,
            "payload": self.payload,
            "result": self.result,
            "error": None if self.last_error is None else self.last_error.to_dict(),
            "compensation": self.compensation,
            "idempotency_key": self.idempotency_key,
            "retry": self.retry.to_dict(),
            "recurrence": None if self.recurrence is None else self.recurrence.to_dict(),
            "notify": self.notify,
            "cancel_reason": self.cancel_reason,
            "labels": self.labels or {},
        }

