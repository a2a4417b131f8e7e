"""The handler registry: only registered functions can ever run as jobs."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import Clock, utcnow
from .errors import InvalidHandlerNameError, InvalidPayloadError, JobsError, UnknownHandlerError
from .errors import PermanentJobError as PermanentJobError  # (re-exported: their home was here)
from .errors import RetryLaterError as RetryLaterError
from .limits import HANDLER_NAME_PATTERN
from .model import ErrorInfo

HANDLER_NAME = re.compile(HANDLER_NAME_PATTERN)


@dataclass(frozen=True)
class JobContext:
    job_id: str
    handler: str
    payload: Any
    attempt: int
    max_attempts: int
    due_at: datetime
    deadline: datetime
    error: ErrorInfo | None = None  # for compensation: the failure being compensated
    run: int = 0  # occurrence number of a recurring job (0 for the first); with job_id, an
    # idempotency key for downstream side effects
    execution: str | None = None  # this execution's token (a retry or a re-run gets another)
    clock: Clock = field(default=utcnow, repr=False, compare=False)  # the executor's clock

    def remaining_seconds(self) -> float:
        """Seconds until ``deadline`` (the attempt's timeout), on the executor's clock."""
        return (self.deadline - self.clock()).total_seconds()


HandlerFunc = Callable[[JobContext], Any | Awaitable[Any]]


@dataclass
class Handler:
    name: str
    func: HandlerFunc
    compensate_func: HandlerFunc | None = None
    timeout_seconds: float | None = None
    # checks a payload when a job is scheduled or updated: raises JobValidationError (400)
    check_payload: Callable[[Any], None] | None = None
    max_concurrency: int | None = None  # attempts running at once, everywhere (handler_limits)
    max_per_second: float | None = None  # starts per second, everywhere

    def check(self, payload: Any) -> None:
        """Run ``check_payload`` on ``payload``. A ``JobsError`` it raises goes out as it is;
        a ``ValueError``, ``TypeError`` or ``LookupError`` (what a plain validator raises for
        a payload of the wrong shape: a pydantic ``ValidationError``, ``payload["to"]`` on a
        payload without it) is an ``InvalidPayloadError`` (400, nothing written). Anything
        else is the check's own failure and goes out as it is (a 500)."""
        if self.check_payload is None:
            return
        try:
            self.check_payload(payload)
        except JobsError:
            raise
        except (ValueError, TypeError, LookupError) as error:
            raise InvalidPayloadError(
                f"handler {self.name!r} refused the payload: {type(error).__name__}: {error}"
            ) from error

    def compensate(self, func: HandlerFunc) -> HandlerFunc:
        """Decorator: ``@send_email.compensate`` registers the compensation step."""
        self.compensate_func = func
        return func


@dataclass
class HandlerRegistry:
    _handlers: dict[str, Handler] = field(default_factory=dict)

    def handler(self, name: str, *, compensate: HandlerFunc | None = None,
                timeout_seconds: float | None = None,
                check_payload: Callable[[Any], None] | None = None,
                max_concurrency: int | None = None, max_per_second: float | None = None,
                ) -> Callable[[HandlerFunc], Handler]:
        """Register a sync or async function ``f(ctx: JobContext)`` under ``name``."""
        validate_handler_name(name)
        from .handler_limits import HandlerLimit  # (checks the limits: SettingsError)

        HandlerLimit(max_concurrency, max_per_second)
        if name in self._handlers:
            raise ValueError(f"a handler named {name!r} is already registered")

        def register(func: HandlerFunc) -> Handler:
            entry = Handler(name, func, compensate, timeout_seconds, check_payload,
                            max_concurrency, max_per_second)
            self._handlers[name] = entry
            return entry

        return register

    def include(self, other: HandlerRegistry) -> None:
        """Add every handler of ``other`` (as registered so far). A name that already names
        another handler here is refused, and then nothing is added; adding the same handlers
        again changes nothing."""
        if not isinstance(other, HandlerRegistry):
            raise TypeError(f"expected a HandlerRegistry, got {type(other).__name__}")
        clash = sorted(name for name, entry in other._handlers.items()
                       if self._handlers.get(name, entry) is not entry)
        if clash:
            raise ValueError(f"handler names registered twice: {', '.join(clash)}")
        self._handlers.update(other._handlers)

    def get(self, name: str) -> Handler:
        entry = self._handlers.get(name)
        if entry is None:
            raise UnknownHandlerError(name, list(self._handlers))
        return entry

    def find(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def limits(self, overrides: str = "") -> dict[str, Any]:
        """``HandlerLimit`` per limited handler: its registration's, or the setting's
        (``JOBS_HANDLER_LIMITS``, ``overrides``) where that names it."""
        from .handler_limits import HandlerLimit, parse_limit_overrides

        out: dict[str, Any] = {name: HandlerLimit(h.max_concurrency, h.max_per_second)
                               for name, h in self._handlers.items()}
        out.update({name: limit for name, limit in parse_limit_overrides(overrides).items()
                    if name in self._handlers})
        return {name: limit for name, limit in out.items() if limit.limited}

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers


def validate_handler_name(name: object) -> str:
    if not isinstance(name, str) or not HANDLER_NAME.fullmatch(name):
        raise InvalidHandlerNameError(
            f"handler name {name!r} is invalid: use 1-64 characters, a letter first, then "
            "letters, digits, '_', '.' or '-'")
    return name
