"""RFC 9457 problem details (``application/problem+json``) and the jobs_core error mapping.

Mapping (documented choice): every ``JobValidationError`` - including ``UnknownHandlerError``
and a malformed job id - is **400**, except ``PayloadTooLargeError`` (**413**).
``JobNotFoundError`` 404; ``InvalidTransitionError``, ``IdempotencyConflictError``,
``ShardFullError`` and ``JobConflictError`` 409; ``StoreError`` (transient or not) 503 with
``Retry-After``, and so ``UnsupportedRecordVersionError`` (a blob holds a record of a newer
release: this process cannot read it until it is replaced; the request may have been written
before the replay met it, so never a 400), ``JobUnreachableError`` (a job whose path of moves
is too long to follow: it may live on, so it is not a 404) and ``SettingsError`` (the app's
settings would misread its container: ``jobs_core/layout.py``; never a 400, the request is not
at fault).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from jobs_core.errors import (
    IdempotencyConflictError,
    InvalidTransitionError,
    JobConflictError,
    JobNotFoundError,
    JobsError,
    JobUnreachableError,
    JobValidationError,
    PayloadTooLargeError,
    SettingsError,
    ShardFullError,
    StoreError,
    UnknownHandlerError,
    UnsupportedRecordVersionError,
)

log = logging.getLogger(__name__)
PROBLEM_TYPE = "https://jobs.example/problems/"
RETRY_AFTER_SECONDS = 5


class ApiProblem(Exception):
    """A problem detected by the HTTP layer itself (bad JSON, content type, body size...)."""

    def __init__(self, status: int, kind: str, title: str, detail: str, field: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.field = field


def problem_dict(status: int, kind: str, title: str, detail: str,
                 field: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM_TYPE + kind, "title": title, "status": status,
                            "detail": detail}
    if field:
        body["field"] = field
    return body


def problem_of(exc: Exception) -> dict[str, Any]:
    """The problem object for an error (an ``ApiProblem`` or a jobs_core error)."""
    if isinstance(exc, ApiProblem):
        return problem_dict(exc.status, exc.kind, exc.title, exc.detail, exc.field)
    detail = str(exc)
    if isinstance(exc, PayloadTooLargeError):
        return problem_dict(413, "payload-too-large", "Payload too large", detail, exc.field)
    if isinstance(exc, UnknownHandlerError):
        return problem_dict(400, "unknown-handler", "Unknown handler", detail, exc.field)
    if isinstance(exc, JobValidationError):
        return problem_dict(400, "invalid-request", "Invalid request", detail, exc.field)
    if isinstance(exc, JobNotFoundError):
        return problem_dict(404, "job-not-found", "Job not found", detail)
    if isinstance(exc, InvalidTransitionError):
        return problem_dict(409, "invalid-transition", "Operation does not fit the job's state",
                            detail)
    if isinstance(exc, IdempotencyConflictError):
        return problem_dict(409, "idempotency-conflict", "Idempotency key reused", detail,
                            "idempotency_key")
    if isinstance(exc, ShardFullError):
        return problem_dict(409, "shard-full", "Shard full", detail)
    if isinstance(exc, JobConflictError):
        return problem_dict(409, "job-changing", "The job changed during the request", detail)
    if isinstance(exc, JobUnreachableError):  # (the job may live on: never a 404)
        return problem_dict(503, "job-unreachable", "Job unreachable", detail)
    if isinstance(exc, UnsupportedRecordVersionError):  # a rolling upgrade: not the request's
        # fault, and a keyed add may have landed before its replay met the record (a 400 said
        # "nothing written" for a job that runs)
        return problem_dict(503, "unsupported-record-version",
                            "Storage written by a newer release", detail)
    if isinstance(exc, SettingsError):  # the app's settings, not the request (jobs_core/layout)
        return problem_dict(503, "misconfigured", "The app is misconfigured", detail)
    if isinstance(exc, StoreError):
        return problem_dict(503, "storage-unavailable", "Storage unavailable",
                            "the job store could not be reached; retry later")
    if isinstance(exc, JobsError):
        return problem_dict(400, "invalid-request", "Invalid request", detail)
    raise exc


def problem_response(problem: dict[str, Any]) -> func.HttpResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if problem["status"] == 503 else {}
    return func.HttpResponse(json.dumps(problem), status_code=int(problem["status"]),
                             mimetype="application/problem+json", charset="utf-8",
                             headers=headers)


def error_response(exc: Exception) -> func.HttpResponse:
    if isinstance(exc, SettingsError):
        log.error("answered with 503, the app is misconfigured: %s", exc)
    if isinstance(exc, UnsupportedRecordVersionError):
        log.error("answered with 503: %s", exc)
    if isinstance(exc, StoreError):
        log.warning("store error answered with 503: %r", exc)
    return problem_response(problem_of(exc))
