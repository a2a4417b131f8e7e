"""Typed errors: one root, ``JobsClientError``, and a subclass per kind of answer.

An error answer of the API is an RFC 9457 problem; its ``status``, ``title``, ``detail`` and
``field`` (the request field at fault) are on the exception, the whole problem in ``problem``.

    JobsClientError
    ├── BadRequest            400 and its subclasses: the request is invalid, nothing written
    │   ├── PayloadTooLarge   413
    │   └── UnsupportedMediaType 415
    ├── Unauthorized          401 (no or wrong function key)
    ├── NotFound              404
    ├── Conflict              409 (the job's state does not allow it; nothing changed)
    ├── ServerError           5xx
    │   └── ServiceUnavailable 503 (after the client's retries; ``retry_after`` seconds)
    ├── TooManyRequests       429 from the platform or a gateway in front (after the retries)
    ├── JobsConnectionError   the server could not be reached
    ├── UnexpectedResponse    a 2xx whose body is not what the API documents
    └── WaitTimeout           ``wait`` ran out of time (``job``: the job as last seen)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

from ._codec import decode
from .models import Problem

if TYPE_CHECKING:
    from .models import Job


class JobsClientError(Exception):
    """Root of every error this client raises."""

    def __init__(self, message: str, *, status: int | None = None,
                 problem: Problem | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem
        # an answer to a repeat after a 503: the first try may have taken effect
        self.maybe_applied = False

    @property
    def title(self) -> str | None:
        return self.problem.title if self.problem else None

    @property
    def detail(self) -> str | None:
        return self.problem.detail if self.problem else None

    @property
    def field(self) -> str | None:
        return self.problem.field if self.problem else None


class BadRequest(JobsClientError):
    """The request is invalid (400, 413, 415); ``field`` names the field at fault."""


ValidationError = BadRequest


class PayloadTooLarge(BadRequest):
    """413: the body, the payload or the batch is over the deployment's limit."""


class UnsupportedMediaType(BadRequest):
    """415."""


class Unauthorized(JobsClientError):
    """401: no function key, or a wrong one."""


class NotFound(JobsClientError):
    """404: no job with this id (or it was purged)."""


class Conflict(JobsClientError):
    """409: the job's state does not allow the operation (or an idempotency key was used for
    another job); nothing changed."""


class ServerError(JobsClientError):
    """A 5xx answer."""


class ServiceUnavailable(ServerError):
    """503: the job store could not be reached, still after the client's retries."""

    def __init__(self, message: str, *, status: int | None = None,
                 problem: Problem | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status, problem=problem)
        self.retry_after = retry_after


class TooManyRequests(JobsClientError):
    """429: the Functions platform (or a gateway in front of the app) refused the request
    before it ran, still after the client's retries; ``retry_after`` seconds."""

    def __init__(self, message: str, *, status: int | None = None,
                 problem: Problem | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status, problem=problem)
        self.retry_after = retry_after


class JobsConnectionError(JobsClientError):
    """The server could not be reached (or the connection broke)."""


class UnexpectedResponse(JobsClientError):
    """A success answer whose body is not what the API documents."""


class WaitTimeout(JobsClientError):
    """The job did not finish in time; ``job`` is its last known state."""

    def __init__(self, message: str, job: Job) -> None:
        super().__init__(message)
        self.job = job


BY_STATUS: dict[int, type[JobsClientError]] = {
    400: BadRequest, 401: Unauthorized, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
    415: UnsupportedMediaType, 429: TooManyRequests, 503: ServiceUnavailable,
}


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), if any."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _problem(response: httpx.Response) -> Problem | None:
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (media == "application/json" or media.endswith("+json")):
        return None
    try:
        body: Any = json.loads(response.content)
        if not (isinstance(body, dict) and ("title" in body or "detail" in body)):
            # JSON of a gateway, not a problem: its text is the message (every member of a
            # Problem has a default, so it was read as one and the message was "502 : ")
            return None
        return decode(Problem, body)
    except (ValueError, TypeError):
        return None


def error_from_response(response: httpx.Response) -> JobsClientError:
    """The typed error for a non-2xx answer."""
    status = response.status_code
    cls = BY_STATUS.get(status) or (ServerError if status >= 500 else JobsClientError)
    problem = _problem(response)
    where = f"{response.request.method} {response.request.url.path}"
    if problem is not None:
        message = f"{status} {problem.title}: {problem.detail}"
        if problem.field:
            message += f" (field {problem.field!r})"
    elif status == 401:
        message = "401 Unauthorized: send the function key (JOBS_KEY / key=...)"
    else:
        message = f"{status} {response.reason_phrase}: {response.text[:200]}".rstrip(": ")
    message = f"{message} [{where}]"
    if cls is ServiceUnavailable or cls is TooManyRequests:
        return cls(message, status=status, problem=problem,
                                  retry_after=retry_after(response))
    return cls(message, status=status, problem=problem)
