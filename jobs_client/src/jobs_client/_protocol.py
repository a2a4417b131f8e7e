"""The client's logic without I/O, shared by ``JobsClient`` and ``AsyncJobsClient``.

A *flow* is a generator that yields steps and returns its result:

- ``Request``: the driver sends it and sends the ``httpx.Response`` back in (or throws a
  ``TransportFailure`` in when nothing came back);
- ``Sleep``: the driver sleeps (``time.sleep`` or ``asyncio.sleep``);
- ``Emit``: the driver hands the value to the caller of an iterator (pages, jobs, changes).

Everything else (bodies, headers, retries, waiting, paging) is decided here once, so the two
clients cannot behave differently: each only has a small loop that performs steps.
"""

from __future__ import annotations

import json
import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from ._codec import decode
from .errors import (
    JobsClientError,
    JobsConnectionError,
    ServiceUnavailable,
    TooManyRequests,
    UnexpectedResponse,
    error_from_response,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # under /api, e.g. "/jobs/{id}"
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None  # None: no body
    headers: dict[str, str] = field(default_factory=dict)
    extra_read_seconds: float = 0.0  # the server may hold the answer this long (Prefer: wait)
    retry_unavailable: bool = True  # safe to send again after a 503 (a refused connection
    # sent nothing: any request goes again)


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    value: Any


SAFE_METHODS = frozenset({"GET", "HEAD"})  # requests that change nothing on the server


class TransportFailure(Exception):
    """Thrown into a flow when a request got no answer."""

    def __init__(self, error: httpx.TransportError) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def sent(self) -> bool:
        """Whether the request may have reached the server (not a refused connection)."""
        return not isinstance(self.error, httpx.ConnectError | httpx.ConnectTimeout)

    @property
    def refused(self) -> bool:
        """Whether httpx refused to send the request (a URL without http:// or https://):
        sent again, it fails the same."""
        return isinstance(self.error, httpx.UnsupportedProtocol)


Step = Request | Sleep | Emit
Flow = Generator[Step, Any, T]


@dataclass(frozen=True)
class RetryConfig:
    """Retries of one request after ``503`` or ``429`` (with ``Retry-After``) or a refused
    connection:
    at most ``attempts`` tries in all; each wait is the exponential backoff (``backoff``
    doubling, +0-25 % jitter) or the server's ``Retry-After``, whichever is longer. The client
    gives up (raising the last error) rather than wait longer than ``max_delay`` once or
    ``budget`` seconds in all."""

    attempts: int = 4
    backoff: float = 0.5
    max_delay: float = 30.0
    budget: float = 60.0

    def delay(self, retry: int, retry_after: float | None) -> float:
        backoff = min(self.max_delay, self.backoff * 2.0 ** retry * random.uniform(1.0, 1.25))
        return max(backoff, retry_after or 0.0)


NO_RETRIES = RetryConfig(attempts=1)


@dataclass(frozen=True)
class PollConfig:
    """Polling while waiting for a job: ``initial`` seconds, growing by ``factor`` up to
    ``max``; never sooner than a ``Retry-After`` the server gave."""

    initial: float = 0.5
    factor: float = 1.5
    max: float = 5.0


def send(request: Request, retry: RetryConfig) -> Flow[httpx.Response]:
    """Send ``request``; a 2xx answer is returned, any other raised as its typed error.
    Refused connections and ``429`` (nothing done) are retried as ``retry`` says, any failed
    connection for a read (GET), and ``503`` when the request is safe to repeat
    (``retry_unavailable``)."""
    slept = 0.0
    attempt = 0
    maybe_applied = False  # an earlier try got a 503 (a refused one sent nothing)
    while True:
        error: JobsClientError
        hint: float | None = None
        try:
            response: httpx.Response = yield request
        except TransportFailure as failure:
            error = JobsConnectionError(
                f"{request.method} {request.path}: no answer: {failure.error!r}")
            error.__cause__ = failure.error
            # never sent: any request may go again; a read changes nothing, so a reset, a
            # closed keep-alive connection or a read timeout does not end it either (a long
            # wait() ended on one stale pooled connection)
            repeatable = not failure.refused and (
                not failure.sent or request.method in SAFE_METHODS)
        else:
            if response.is_success:
                return response
            error = error_from_response(response)
            # a 429 was refused before it ran (the app itself never answers one): any request
            # goes again, like a refused connection; it was an error at once before
            repeatable = isinstance(error, TooManyRequests) or (
                isinstance(error, ServiceUnavailable) and request.retry_unavailable)
            hint = error.retry_after if isinstance(error, ServiceUnavailable | TooManyRequests) \
                else None
        error.maybe_applied = maybe_applied
        maybe_applied = maybe_applied or isinstance(error, ServiceUnavailable)
        attempt += 1
        if not repeatable or attempt >= retry.attempts:
            raise error
        delay = retry.delay(attempt - 1, hint)
        if delay > retry.max_delay or slept + delay > retry.budget:
            raise error
        slept += delay
        yield Sleep(delay)


def body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise UnexpectedResponse(f"{response.status_code} with a body that is not JSON: "
                                 f"{response.text[:200]!r}", status=response.status_code) \
            from exc


def parse(cls: type[T], response: httpx.Response) -> T:
    """The answer's body as a model; ``UnexpectedResponse`` if it does not fit."""
    try:
        return decode(cls, body(response))
    except (TypeError, ValueError, KeyError) as exc:
        raise UnexpectedResponse(f"{response.status_code}: the body is not a "
                                 f"{cls.__name__}: {exc}", status=response.status_code) \
            from exc


def call(request: Request, cls: type[T], retry: RetryConfig) -> Flow[T]:
    response = yield from send(request, retry)
    return parse(cls, response)


def build(http: httpx.Client | httpx.AsyncClient, request: Request) -> httpx.Request:
    """The ``httpx.Request`` for a step (both clients build it the same way)."""
    timeout = http.timeout
    if request.extra_read_seconds and timeout.read is not None:
        timeout = httpx.Timeout(timeout.connect, read=timeout.read + request.extra_read_seconds,
                                write=timeout.write, pool=timeout.pool)
    kwargs: dict[str, Any] = {"params": request.params or None, "headers": request.headers,
                              "timeout": timeout}
    if request.json is not None:
        kwargs["json"] = request.json
    return http.build_request(request.method, request.path.lstrip("/"), **kwargs)
