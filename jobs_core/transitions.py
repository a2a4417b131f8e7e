"""Pure status transitions. Each returns a new ``Job`` or raises ``InvalidTransitionError``
naming the operation, the current status and the status it would have led to."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from .errors import InvalidTransitionError
from .model import ErrorInfo, Job, JobStatus
from .recurrence import late_from


def _require(job: Job, operation: str, to: JobStatus, allowed: tuple[JobStatus, ...]) -> None:
    if job.status not in allowed:
        detail = {
            JobStatus.RUNNING: "it is running now; it will finish or fail on its own",
            JobStatus.SUCCEEDED: "it has already succeeded",
            JobStatus.FAILED: "it has already failed for good",
            JobStatus.CANCELLED: "it was cancelled",
            JobStatus.PAUSED: "it is paused; resume it first",
        }.get(job.status, "")
        raise InvalidTransitionError(operation, job.status.value, to.value, detail)


def _require_waiting(job: Job, operation: str, to: JobStatus, run: int | None,
                     also: tuple[JobStatus, ...] = ()) -> None:
    _require(job, operation, to, (JobStatus.SCHEDULED, JobStatus.RETRYING, *also))
    if job.moving_to is not None:
        raise InvalidTransitionError(operation, job.status.value, to.value,
                                     f"it is moving to {job.moving_to}")
    if run is not None and run != job.runs:
        raise InvalidTransitionError(
            operation, job.status.value, to.value,
            f"the request was for occurrence {run}, the job is on occurrence {job.runs}")


def cancel(job: Job, at: datetime, reason: str | None = None, run: int | None = None) -> Job:
    _require_waiting(job, "cancel", JobStatus.CANCELLED, run, also=(JobStatus.PAUSED,))
    return replace(job, status=JobStatus.CANCELLED, finished_at=at, updated_at=at,
                   cancel_reason=reason)


def pause(job: Job, at: datetime, run: int | None = None) -> Job:
    """A waiting job (a recurring job's next occurrence, or a retry's back-off) is held: it
    keeps its id, due time and history, and does not run until it is resumed."""
    _require_waiting(job, "pause", JobStatus.PAUSED, run)
    return replace(job, status=JobStatus.PAUSED, updated_at=at)


def resume(job: Job, due_at: datetime, at: datetime, run: int | None = None) -> Job:
    """A paused job waits again, due at ``due_at`` (the writer computes it from the time of
    the resume and records it, so every replay agrees). A job paused during a retry's back-off
    resumes as ``retrying``."""
    _require(job, "resume", JobStatus.SCHEDULED, (JobStatus.PAUSED,))
    if job.moving_to is not None:
        raise InvalidTransitionError("resume", job.status.value, JobStatus.SCHEDULED.value,
                                     f"it is moving to {job.moving_to}")
    if run is not None and run != job.runs:
        raise InvalidTransitionError(
            "resume", job.status.value, JobStatus.SCHEDULED.value,
            f"the request was for occurrence {run}, the job is on occurrence {job.runs}")
    retrying = job.attempts > 0 and job.last_error is not None
    status = JobStatus.RETRYING if retrying else JobStatus.SCHEDULED
    regridded = job.recurrence is not None and job.attempts == 0 and due_at != job.due_at
    return replace(job, status=status, due_at=due_at, updated_at=at,
                   due_set_at=None if regridded else job.due_set_at)


def update(job: Job, values: dict[str, Any], due_at: datetime, at: datetime,
           run: int | None = None) -> Job:
    """A waiting or paused job gets new field values (``job_update.py`` resolves them); a
    running attempt is never changed under its feet."""
    _require_waiting(job, "update", job.status, run, also=(JobStatus.PAUSED,))
    # a new recurrence waits for its own next occurrence: the due time is its grid's again
    regridded = "recurrence" in values and values["recurrence"] != job.recurrence and \
        job.attempts == 0
    return replace(job, **values, due_at=due_at, updated_at=at,
                   due_set_at=None if regridded else job.due_set_at)


def misfire(job: Job, next_due: datetime, at: datetime, run: int | None = None,
            judged_from: datetime | None = None) -> Job:
    """A recurring occurrence that came due too late for its misfire policy is skipped: the
    job waits for ``next_due`` without running (``runs`` counts occurrences that ran)."""
    _require_waiting(job, "skip a misfire", JobStatus.SCHEDULED, run)
    if job.attempts > 0 or job.recurrence is None:
        raise InvalidTransitionError("skip a misfire", job.status.value, JobStatus.SCHEDULED.value,
                                     "only a recurring occurrence that has not run is skipped")
    if at < job.due_at:  # planned on an older due time: a reschedule was committed first
        raise InvalidTransitionError("skip a misfire", job.status.value, JobStatus.SCHEDULED.value,
                                     f"it is not due until {job.due_at.isoformat()}")
    if judged_from is not None and judged_from != late_from(job.due_at, job.due_set_at):
        # judged before a reschedule (into the recent past) or a run-now committed first: the
        # occurrence that control asked for is another, and it runs
        raise InvalidTransitionError("skip a misfire", job.status.value, JobStatus.SCHEDULED.value,
                                     "a reschedule or run-now set its due time since")
    return replace(job, due_at=next_due, updated_at=at, due_set_at=None)


def run_now(job: Job, at: datetime, run: int | None = None) -> Job:
    _require_waiting(job, "run now", job.status, run)
    due_at = min(job.due_at, at)
    return replace(job, due_at=due_at, updated_at=at, due_set_at=_set_at(job, due_at, at))


def reschedule(job: Job, due_at: datetime, at: datetime, run: int | None = None) -> Job:
    _require_waiting(job, "reschedule", job.status, run)
    return replace(job, due_at=due_at, updated_at=at, due_set_at=_set_at(job, due_at, at))


def _set_at(job: Job, due_at: datetime, at: datetime) -> datetime:
    """``Job.due_set_at`` after a reschedule or run-now at ``at`` to ``due_at``. For the
    misfire grace, the request: lateness counts from it. For catch-up (its own misfire
    policy: never with a grace) it is where the count of missed occurrences starts
    (``catch_up_from``): if the count already started before the request (the occurrence
    was overdue: its missed ones had neither run nor been skipped), there still, wherever
    the occurrence moves; else after the new due time and the request (the occurrences the
    move passes over are skipped on purpose)."""
    if job.recurrence is None or job.recurrence.catch_up_max is None:
        return at
    counted = catch_up_from(job)
    return counted if counted < at else max(due_at, at)


def catch_up_from(job: Job) -> datetime:
    """After which time a catch-up recurrence's occurrences count as missed once the current
    one ran: its own due time, unless a control or a retry's back-off moved it
    (``Job.due_set_at``)."""
    return job.due_at if job.due_set_at is None else job.due_set_at


def retry(job: Job, at: datetime, run: int | None = None) -> Job:
    """A failed or cancelled job runs again, now, as a new run (``runs`` + 1) with a fresh
    attempt budget; its id and history stay. (The ``retry`` record carries this state, so a
    replay that no longer holds the finished job re-creates it from the record.)"""
    _require(job, "retry", JobStatus.SCHEDULED, (JobStatus.FAILED, JobStatus.CANCELLED))
    if run is not None and run != job.runs:
        raise InvalidTransitionError(
            "retry", job.status.value, JobStatus.SCHEDULED.value,
            f"the request was for run {run}, the job is on run {job.runs}")
    return replace(job, status=JobStatus.SCHEDULED, due_at=at, attempts=0, runs=job.runs + 1,
                   updated_at=at, started_at=None, finished_at=None, last_error=None,
                   result=None, compensation=None, cancel_reason=None, token=None,
                   lease_until=None, moving_to=None, due_set_at=None)


def move(job: Job, to: str) -> Job:
    """The job starts moving to blob ``to`` (only a waiting or paused job moves)."""
    _require_waiting(job, "move", job.status, None, also=(JobStatus.PAUSED,))
    return replace(job, moving_to=to)


def start(job: Job, attempt: int, epoch: int, at: datetime, *, token: str | None = None,
          run: int | None = None, lease: datetime | None = None) -> Job:
    """An attempt starts. Only a job that is due at ``at`` starts: a start planned before a
    reschedule (or a retry's back-off) that was committed first is void, like one planned
    before a cancel."""
    _require_waiting(job, "start", JobStatus.RUNNING, run)
    if attempt != job.attempts + 1:
        raise InvalidTransitionError(
            "start", job.status.value, JobStatus.RUNNING.value,
            f"attempt {attempt} does not follow attempt {job.attempts}",
        )
    if at < job.due_at:  # planned on an older due time: a reschedule was committed first
        raise InvalidTransitionError(
            "start", job.status.value, JobStatus.RUNNING.value,
            f"it is not due until {job.due_at.isoformat()}",
        )
    return replace(job, status=JobStatus.RUNNING, attempts=attempt, epoch=epoch, started_at=at,
                   updated_at=at, token=token, lease_until=lease)


def take_over(job: Job, attempt: int, at: datetime, *, token: str, prev: str | None,
              lease: datetime | None) -> Job:
    """A lost execution's job is taken over (to compensate its last attempt): it stays
    running on that attempt, under the new execution's token and lease. Only from the
    execution it names (``prev``): a second taker, or a late outcome, finds another token."""
    _require_attempt(job, "take over", JobStatus.RUNNING, attempt, prev)
    if prev != job.token:  # (also a job started by a version-1 record: no token either way)
        raise InvalidTransitionError("take over", job.status.value, JobStatus.RUNNING.value,
                                     f"execution {prev} is not the job's ({job.token})")
    return replace(job, token=token, lease_until=lease, updated_at=at)


def _require_attempt(job: Job, operation: str, to: JobStatus, attempt: int,
                     token: str | None) -> None:
    _require(job, operation, to, (JobStatus.RUNNING,))
    if attempt != job.attempts:
        raise InvalidTransitionError(
            operation, job.status.value, to.value,
            f"the record is for attempt {attempt}, the job is on attempt {job.attempts}",
        )
    if token is not None and job.token is not None and token != job.token:
        raise InvalidTransitionError(
            operation, job.status.value, to.value,
            f"execution {token} was superseded by execution {job.token}")


def succeed(job: Job, attempt: int, at: datetime, result: object,
            next_due: datetime | None = None, token: str | None = None) -> Job:
    """The attempt succeeded; a recurring job goes back to ``scheduled`` at ``next_due``."""
    _require_attempt(job, "succeed", JobStatus.SUCCEEDED, attempt, token)
    if next_due is not None:
        return replace(job, status=JobStatus.SCHEDULED, due_at=next_due, attempts=0, result=result,
                       runs=job.runs + 1, finished_at=at, updated_at=at, last_error=None,
                       token=None, lease_until=None, due_set_at=None)
    return replace(job, status=JobStatus.SUCCEEDED, result=result, runs=job.runs + 1,
                   finished_at=at, updated_at=at, token=None, lease_until=None)


def fail(job: Job, attempt: int, at: datetime, error: ErrorInfo, *,
         retry_at: datetime | None, next_due: datetime | None = None,
         compensation: str | None = None, token: str | None = None) -> Job:
    """The attempt failed. With ``retry_at`` the job waits for another attempt; otherwise it
    fails for good (a recurring job then moves on to its next occurrence at ``next_due``)."""
    if retry_at is not None:
        _require_attempt(job, "retry", JobStatus.RETRYING, attempt, token)
        # (catch-up: the occurrences the back-off passes are missed, counted from the due
        # time the occurrence had, not from the retry's)
        catch_up = job.recurrence is not None and job.recurrence.catch_up_max is not None
        return replace(job, status=JobStatus.RETRYING, due_at=retry_at, last_error=error,
                       updated_at=at, token=None, lease_until=None,
                       due_set_at=catch_up_from(job) if catch_up else job.due_set_at)
    _require_attempt(job, "fail", JobStatus.FAILED, attempt, token)
    if next_due is not None:
        return replace(job, status=JobStatus.SCHEDULED, due_at=next_due, attempts=0,
                       last_error=error, runs=job.runs + 1, finished_at=at, updated_at=at,
                       compensation=compensation, token=None, lease_until=None,
                       due_set_at=None)
    return replace(job, status=JobStatus.FAILED, last_error=error, finished_at=at, updated_at=at,
                   compensation=compensation, token=None, lease_until=None)
