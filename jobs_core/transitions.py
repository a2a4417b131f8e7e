"""Pure status transitions. Each returns a new ``Job`` or raises ``InvalidTransitionError``
naming the operation, the current status and the status it would have led to."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from .errors import InvalidTransitionError
from .model import ErrorInfo, Job, JobStatus

S = JobStatus


def _require(job: Job, operation: str, to: JobStatus, allowed: tuple[JobStatus, ...]) -> None:
    if job.status not in allowed:
        detail = {
            S.RUNNING: "it is running now; it will finish or fail on its own",
            S.SUCCEEDED: "it has already succeeded",
            S.FAILED: "it has already failed for good",
            S.CANCELLED: "it was cancelled",
        }.get(job.status, "")
        raise InvalidTransitionError(operation, job.status.value, to.value, detail)


def cancel(job: Job, at: datetime, reason: str | None = None) -> Job:
    _require(job, "cancel", S.CANCELLED, (S.SCHEDULED, S.RETRYING))
    return replace(job, status=S.CANCELLED, finished_at=at, updated_at=at, cancel_reason=reason)


def run_now(job: Job, at: datetime) -> Job:
    _require(job, "run now", job.status, (S.SCHEDULED, S.RETRYING))
    return replace(job, due_at=min(job.due_at, at), updated_at=at)


def reschedule(job: Job, due_at: datetime, at: datetime) -> Job:
    _require(job, "reschedule", job.status, (S.SCHEDULED, S.RETRYING))
    return replace(job, due_at=due_at, updated_at=at)


def start(job: Job, attempt: int, epoch: int, at: datetime) -> Job:
    _require(job, "start", S.RUNNING, (S.SCHEDULED, S.RETRYING))
    if attempt != job.attempts + 1:
        raise InvalidTransitionError(
            "start", job.status.value, S.RUNNING.value,
            f"attempt {attempt} does not follow attempt {job.attempts}",
        )
    return replace(job, status=S.RUNNING, attempts=attempt, epoch=epoch, started_at=at,
                   updated_at=at)


def _require_attempt(job: Job, operation: str, to: JobStatus, attempt: int) -> None:
    _require(job, operation, to, (S.RUNNING,))
    if attempt != job.attempts:
        raise InvalidTransitionError(
            operation, job.status.value, to.value,
            f"the record is for attempt {attempt}, the job is on attempt {job.attempts}",
        )


def succeed(job: Job, attempt: int, at: datetime, result: object,
            next_due: datetime | None = None) -> Job:
    """The attempt succeeded; a recurring job goes back to ``scheduled`` at ``next_due``."""
    _require_attempt(job, "succeed", S.SUCCEEDED, attempt)
    if next_due is not None:
        return replace(job, status=S.SCHEDULED, due_at=next_due, attempts=0, result=result,
                       runs=job.runs + 1, finished_at=at, updated_at=at, last_error=None)
    return replace(job, status=S.SUCCEEDED, result=result, runs=job.runs + 1, finished_at=at,
                   updated_at=at)


def fail(job: Job, attempt: int, at: datetime, error: ErrorInfo, *,
         retry_at: datetime | None, next_due: datetime | None = None,
         compensation: str | None = None) -> Job:
    """The attempt failed. With ``retry_at`` the job waits for another attempt; otherwise it
    fails for good (a recurring job then moves on to its next occurrence at ``next_due``)."""
    if retry_at is not None:
        _require_attempt(job, "retry", S.RETRYING, attempt)
        return replace(job, status=S.RETRYING, due_at=retry_at, last_error=error, updated_at=at)
    _require_attempt(job, "fail", S.FAILED, attempt)
    if next_due is not None:
        return replace(job, status=S.SCHEDULED, due_at=next_due, attempts=0, last_error=error,
                       runs=job.runs + 1, finished_at=at, updated_at=at,
                       compensation=compensation)
    return replace(job, status=S.FAILED, last_error=error, finished_at=at, updated_at=at,
                   compensation=compensation)
