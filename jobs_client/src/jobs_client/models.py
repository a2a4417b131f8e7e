"""The jobs API's data as dataclasses: jobs, pages, batches, history, and the request bodies.

Field names are the JSON names (``jobs_client.drift`` checks them against the served OpenAPI
document). Responses may carry members a model does not know yet: they land in ``extra`` (and
members put in a request's ``extra`` are sent as they are).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ._codec import EXTRA, KEEP_NULL, UNSET


class JobStatus(StrEnum):
    """A job's status. ``Job.status`` is a plain ``str`` (a newer server may add one), so
    compare with these: ``job.status == JobStatus.SUCCEEDED``."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff. In a request, fields left ``None`` take the deployment's defaults
    (or, in an update, the job's own); in a job every field is set."""

    max_attempts: int | None = None
    base_delay: float | None = None
    max_delay: float | None = None
    jitter: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class Recurrence:
    """A cron expression in a time zone (``Recurrence(cron="0 2 * * *",
    timezone="Europe/Berlin")``) or an interval (``Recurrence(interval_seconds=60)``), with
    optional ends (``until``, ``max_runs``), ``jitter_seconds``, the misfire policy
    (``misfire_grace_seconds`` or ``catch_up_max``) and ``overlap``."""

    cron: str | None = None
    timezone: str | None = None
    interval_seconds: float | None = None
    interval_mode: str | None = None
    anchor: datetime | None = None
    until: datetime | None = None
    max_runs: int | None = None
    jitter_seconds: float | None = None
    misfire_grace_seconds: float | None = None
    catch_up_max: int | None = None
    overlap: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class ErrorInfo:
    """The error of a job's last failed attempt."""

    type: str
    message: str
    attempt: int = 0
    permanent: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class Job:
    id: str
    handler: str
    status: str
    due_at: datetime
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    max_attempts: int = 0
    runs: int = 0
    payload: Any = None
    result: Any = None
    error: ErrorInfo | None = None
    compensation: str | None = None
    idempotency_key: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    recurrence: Recurrence | None = None
    notify: str | None = None
    cancel_reason: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)

    @property
    def is_final(self) -> bool:
        """Succeeded, failed or cancelled: nothing will change it any more."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class NewJob:
    """A job to schedule (the body of ``POST /api/jobs``, an item of a batch). ``due_at``
    (with a time zone), ``delay`` (seconds) or neither (now)."""

    handler: str
    payload: Any = None
    due_at: datetime | str | None = None
    delay: float | None = None
    idempotency_key: str | None = None
    retry: RetryPolicy | None = None
    recurrence: Recurrence | None = None
    notify: str | None = None
    timeout_seconds: float | None = None
    labels: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class JobUpdate:
    """The body of ``PATCH /api/jobs/{id}``: only the fields given are changed; ``None`` is
    sent as ``null`` (a ``null`` payload; ``timeout_seconds=None``: back to the default;
    ``labels=None``: no labels)."""

    payload: Any = field(default=UNSET, metadata=KEEP_NULL)
    retry: RetryPolicy | None = UNSET
    recurrence: Recurrence | None = UNSET
    timeout_seconds: float | None = field(default=UNSET, metadata=KEEP_NULL)
    labels: dict[str, str] | None = field(default=UNSET, metadata=KEEP_NULL)
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class Reschedule:
    """The body of ``POST /api/jobs/{id}/reschedule``: ``due_at`` or ``delay``."""

    due_at: datetime | str | None = None
    delay: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem (``application/problem+json``)."""

    type: str = ""
    title: str = ""
    status: int = 0
    detail: str = ""
    field: str | None = None
    extra: dict[str, Any] = dataclasses.field(  # `field` is a member here
        default_factory=dict, repr=False, compare=False, metadata=EXTRA)


@dataclass(frozen=True)
class BatchRequest:
    jobs: list[NewJob]
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class BatchResult:
    """One item of a batch: ``status`` 201 (created) or 200 (idempotent replay) with the
    ``job``, or an error status with its ``problem`` (the other items were still
    scheduled)."""

    status: int
    job: Job | None = None
    problem: Problem | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)

    @property
    def ok(self) -> bool:
        return self.job is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class BatchResponse:
    results: list[BatchResult]
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class HistoryRecord:
    """One record of a job's log, with what the replay did with it."""

    type: str
    offset: int = 0
    applied: bool = False
    at: datetime | None = None
    note: str | None = None
    attempt: int | None = None
    epoch: int | None = None
    error: dict[str, Any] | None = None
    retry_at: datetime | None = None
    result: Any = None
    due_at: datetime | None = None
    next_due: datetime | None = None
    compensation: str | None = None
    reason: str | None = None
    handler: str | None = None
    blob: str | None = None
    to: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class JobHistory:
    job_id: str
    records: list[HistoryRecord]
    job: Job
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)
