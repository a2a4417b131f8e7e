"""Updating a waiting job (``PATCH /api/jobs/{id}``): what may change, checked like scheduling.

A request names the fields it sets: ``payload``, ``retry`` (merged onto the job's policy),
``recurrence`` (a recurring job's cron, time zone or interval: the next occurrence is then
computed from the time of the update), ``timeout_seconds`` (``null``: back to the handler's
or the default) and ``labels`` (replaced whole; ``null`` or ``{}`` removes them). Only a
waiting or paused job changes; a running attempt is never disturbed (409: update it once the
attempt is over). The writer resolves every value, the new due time included, and records
them in one ``update`` record, so every replay agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .errors import InvalidRecurrenceError, JobValidationError
from .labels import parse_labels
from .model import JSON, Job, Recurrence
from .recurrence import first_anchor, next_occurrence, parse_recurrence
from .settings import JobsSettings
from .validation import check_json_size, check_within_horizon, parse_retry, parse_timeout

UPDATABLE = ("payload", "retry", "recurrence", "timeout_seconds", "labels")


@dataclass(frozen=True)
class JobUpdate:
    """The fields a request sets (``fields``), checked; ``retry`` is the request's partial
    policy, merged onto the job's own when applied."""

    fields: frozenset[str]
    payload: JSON = None
    retry: dict[str, Any] | None = None
    recurrence: Recurrence | None = None
    timeout_seconds: float | None = None
    labels: dict[str, str] | None = None


def parse_update(body: Any, settings: JobsSettings, now: datetime) -> JobUpdate:
    """Raises ``JobValidationError`` (400) naming the field; nothing is read or written."""
    if not isinstance(body, dict):
        raise JobValidationError("the body must be a JSON object of the fields to change: "
                                 f"{', '.join(UPDATABLE)}")
    unknown = sorted(set(body) - set(UPDATABLE))
    if unknown:
        raise JobValidationError(f"unknown fields: {unknown}; an update may set "
                                 f"{', '.join(UPDATABLE)}", field=unknown[0])
    if not body:
        raise JobValidationError(f"nothing to change: give one of {', '.join(UPDATABLE)}")
    if "payload" in body:
        check_json_size(body["payload"], settings.max_payload_bytes, "payload")
    retry = body.get("retry")
    if "retry" in body:
        if not isinstance(retry, dict):
            raise JobValidationError("retry must be an object", field="retry")
        parse_retry(retry, settings.retry)  # (the same checks as scheduling)
    recurrence = None
    if "recurrence" in body:
        if body["recurrence"] is None:
            raise JobValidationError("recurrence cannot be removed; cancel the job to stop it",
                                     field="recurrence")
        recurrence = parse_recurrence(body["recurrence"])
        assert recurrence is not None
        check_within_horizon(recurrence, settings.horizon_days, now)
    timeout = parse_timeout(body.get("timeout_seconds"))
    labels = parse_labels(body.get("labels"))
    return JobUpdate(frozenset(body), body.get("payload"), retry, recurrence, timeout, labels)


def updated_values(job: Job, update: JobUpdate, at: datetime) -> dict[str, Any]:
    """The job's new field values (raises ``JobValidationError`` for a change that does not
    fit this job: a recurrence for a one-off job)."""
    values: dict[str, Any] = {}
    if "payload" in update.fields:
        values["payload"] = update.payload
    if "retry" in update.fields:
        values["retry"] = parse_retry(update.retry, job.retry)
    if "recurrence" in update.fields:
        if job.recurrence is None:
            raise JobValidationError("a one-off job has no recurrence to change; schedule a "
                                     "recurring job instead", field="recurrence")
        assert update.recurrence is not None
        values["recurrence"] = first_anchor(update.recurrence,
                                            next_occurrence(update.recurrence, at))
    if "timeout_seconds" in update.fields:
        values["timeout_seconds"] = update.timeout_seconds
    if "labels" in update.fields:
        values["labels"] = update.labels
    return values


def updated_due(job: Job, values: dict[str, Any], at: datetime) -> datetime:
    """A recurring job whose recurrence changed waits for the new one's next occurrence from
    ``at`` (unless a retry of the current occurrence is waiting); else its due time stays."""
    new: Recurrence | None = values.get("recurrence")
    if new is None or new == job.recurrence or job.attempts > 0:
        return job.due_at
    due = next_occurrence(new, at)
    if new.until is not None and due > new.until:
        raise InvalidRecurrenceError(f"recurrence.until {new.until.isoformat()} is before the "
                                     f"next occurrence ({due.isoformat()})")
    if new.max_runs is not None and job.runs >= new.max_runs:
        raise InvalidRecurrenceError(f"recurrence.max_runs {new.max_runs}: the job has already "
                                     f"run {job.runs} times")
    return due


def apply_values(job: Job, values: dict[str, Any], due: datetime, at: datetime) -> Job:
    return replace(job, **values, due_at=due, updated_at=at)
