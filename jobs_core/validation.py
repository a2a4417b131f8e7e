"""Turning a scheduling request into a valid job, or a typed error that says what to fix."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import (
    HorizonExceededError,
    InvalidDueTimeError,
    InvalidIdempotencyKeyError,
    InvalidPayloadError,
    InvalidRecurrenceError,
    InvalidRetryPolicyError,
    JobValidationError,
    PayloadTooLargeError,
)
from .handlers import HandlerRegistry, validate_handler_name
from .labels import parse_labels
from .limits import (
    IDEMPOTENCY_KEY_PATTERN,
    MAX_RETRY_DELAY_SECONDS,
    MAX_TIMEOUT_SECONDS,
    SECONDS_PER_DAY,
)
from .model import JSON, Recurrence, RetryPolicy, read_iso
from .notify_targets import parse_notify
from .recurrence import finite, first_anchor, next_occurrence, parse_recurrence, with_jitter
from .settings import JobsSettings
from .telemetry import current_traceparent

IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
OCCURRENCE_KEY_PREFIX = "occurrence:"
# Deeper JSON could parse when the request arrives and hit Python's recursion limit later,
# when the shard is replayed in a deeper call stack: the whole shard would become unreadable.
MAX_JSON_DEPTH = 100


@dataclass(frozen=True)
class JobRequest:
    """What a caller asks for. ``due_at`` (ISO-8601 with offset, or an aware datetime) and
    ``delay`` (seconds) are exclusive; with neither the job is due now."""

    handler: str
    payload: JSON = None
    due_at: str | datetime | None = None
    delay: float | None = None
    idempotency_key: str | None = None
    retry: RetryPolicy | dict[str, Any] | None = None
    recurrence: Recurrence | dict[str, Any] | None = None
    notify: str | None = None
    timeout_seconds: float | None = None
    labels: dict[str, str] | None = None
    traceparent: str | None = None  # the request's W3C trace context header, if any


@dataclass(frozen=True)
class ValidJob:
    handler: str
    payload: JSON
    due_at: datetime
    idempotency_key: str | None
    retry: RetryPolicy
    recurrence: Recurrence | None
    notify: str | None
    timeout_seconds: float | None
    labels: dict[str, str] | None = None
    traceparent: str | None = None
    # what the idempotency key is claimed with (None: the fingerprint of handler and payload,
    # so a key reused for another job conflicts); the scheduler's own occurrence keys set it
    claim_fingerprint: str | None = None


def validate(request: JobRequest, registry: HandlerRegistry, settings: JobsSettings,
             now: datetime, rng: random.Random | None = None) -> ValidJob:
    """The job ``request`` asks for, checked. A computed first occurrence is spread by the
    recurrence's jitter, drawn from ``rng`` (the scheduler's own: a seeded scheduler, as in
    the simulation, then schedules the same job every time; None: a fresh generator)."""
    handler = registry.get(validate_handler_name(request.handler))
    check_json_size(request.payload, settings.max_payload_bytes, "payload")
    handler.check(request.payload)
    recurrence = parse_recurrence(request.recurrence)
    if recurrence is not None:
        check_within_horizon(recurrence, settings.horizon_days, now)
    due = resolve_due(request.due_at, request.delay, settings, now)
    computed = recurrence is not None and request.due_at is None and request.delay is None
    if recurrence is not None:
        if computed:
            due = next_occurrence(recurrence, now)
        recurrence = first_anchor(recurrence, due)  # (the grid starts at the nominal time)
        if recurrence.until is not None and due > recurrence.until:
            raise InvalidRecurrenceError(
                f"recurrence.until {recurrence.until.isoformat()} is before the first "
                f"occurrence ({due.isoformat()}): the job would never run")
        if computed:  # a computed occurrence is spread by the jitter, an explicit time not
            # (after the until check: an occurrence at until runs, even jittered past it)
            due = with_jitter(recurrence, due, rng or random.Random())
    return ValidJob(
        handler=request.handler,
        payload=request.payload,
        due_at=due,
        idempotency_key=parse_idempotency_key(request.idempotency_key),
        retry=parse_retry(request.retry, settings.retry),
        recurrence=recurrence,
        notify=parse_notify(request.notify, settings.notify_queues),
        timeout_seconds=parse_timeout(request.timeout_seconds),
        labels=parse_labels(request.labels),
        traceparent=current_traceparent(request.traceparent),
    )


def check_within_horizon(recurrence: Recurrence, horizon_days: int, now: datetime) -> None:
    """A recurrence whose interval, or whose fixed-rate grid's anchor (its first occurrence),
    is further than the horizon away is refused like a ``due_at`` that far (an anchor in
    year 9999 was accepted, and its jitter overflowed the calendar)."""
    if recurrence.interval_seconds is not None and \
            recurrence.interval_seconds > horizon_days * SECONDS_PER_DAY:
        raise InvalidRecurrenceError(
            f"interval_seconds {recurrence.interval_seconds} is beyond the horizon of "
            f"{horizon_days} days (JOBS_HORIZON_DAYS)")
    if recurrence.anchor is not None and recurrence.anchor > now + timedelta(days=horizon_days):
        raise InvalidRecurrenceError(
            f"recurrence.anchor {recurrence.anchor.isoformat()} is more than {horizon_days} "
            "days ahead (JOBS_HORIZON_DAYS): an occurrence would be due there; anchor the "
            "grid closer")


def check_json_size(value: JSON, limit: int, what: str) -> int:
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise InvalidPayloadError(f"the {what} is nested deeper than {MAX_JSON_DEPTH} levels",
                                  field=what)
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadError(f"the {what} is not JSON-serialisable: {exc}",
                                  field=what) from None
    if size > limit:
        raise PayloadTooLargeError(size, limit, what)
    return size


def json_depth_exceeds(value: JSON, limit: int) -> bool:
    """Whether arrays/objects nest deeper than ``limit`` (iterative: no recursion limit)."""
    stack: list[tuple[JSON, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list | tuple) else None
        if children is None:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_due_at(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = read_iso(value)
        except ValueError:
            raise InvalidDueTimeError(
                f"due_at {value!r} is not an ISO-8601 date-time; write it like "
                "'2026-11-22T14:05:00Z' or '2026-11-22T15:05:00+01:00'") from None
    else:
        raise InvalidDueTimeError(f"due_at must be a string, got {type(value).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidDueTimeError(
            f"due_at {value!s} has no UTC offset, so it is ambiguous; add 'Z' for UTC or an "
            "offset such as '+01:00'")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # (0001-01-01 with a positive offset: a 500 before, hunt of stop 28)
        raise InvalidDueTimeError(f"due_at {value!s} is out of range") from None


def resolve_due(due_at: str | datetime | None, delay: float | None, settings: JobsSettings,
                now: datetime) -> datetime:
    if due_at is not None and delay is not None:
        raise InvalidDueTimeError("give either due_at or delay, not both", field="delay")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or \
                not finite(delay) or delay < 0:
            raise InvalidDueTimeError(f"delay must be a number of seconds >= 0, got {delay!r}",
                                      field="delay")
        if delay > settings.horizon_days * SECONDS_PER_DAY:
            raise HorizonExceededError(
                f"delay {delay} s is beyond the horizon of {settings.horizon_days} days",
                field="delay")
        return now + timedelta(seconds=delay)
    if due_at is None:
        return now
    due = parse_due_at(due_at)
    if due > now + timedelta(days=settings.horizon_days):
        raise HorizonExceededError(
            f"due_at {due.isoformat()} is more than {settings.horizon_days} days ahead "
            f"(JOBS_HORIZON_DAYS); schedule it closer or raise the horizon")
    if due < now - timedelta(seconds=settings.max_past_seconds):
        raise InvalidDueTimeError(
            f"due_at {due.isoformat()} is more than {settings.max_past_seconds} s in the past; "
            "check the date (a due time in the recent past runs at once)")
    return due


def parse_retry(value: RetryPolicy | dict[str, Any] | None, default: RetryPolicy) -> RetryPolicy:
    if value is None:
        return default
    if isinstance(value, RetryPolicy):
        policy = value
    elif isinstance(value, dict):
        unknown = set(value) - {"max_attempts", "base_delay", "max_delay", "jitter"}
        if unknown:
            raise InvalidRetryPolicyError(f"unknown retry fields: {sorted(unknown)}")
        for name, raw in value.items():  # (a string "5" was taken, 2.9 attempts cut to 2)
            if isinstance(raw, bool) or not isinstance(raw, int | float) or \
                    (name == "max_attempts" and isinstance(raw, float) and not raw.is_integer()):
                kind = "a whole number" if name == "max_attempts" else "a number"
                raise InvalidRetryPolicyError(f"retry.{name} must be {kind}, got {raw!r}")
        try:
            merged = {**default.to_dict(), **value}
            policy = RetryPolicy(int(merged["max_attempts"]), float(merged["base_delay"]),
                                 float(merged["max_delay"]), float(merged["jitter"]))
        except (TypeError, ValueError, OverflowError):
            raise InvalidRetryPolicyError("retry fields must be finite numbers") from None
    else:
        raise InvalidRetryPolicyError("retry must be an object")
    if not 1 <= policy.max_attempts <= 100:
        raise InvalidRetryPolicyError("retry.max_attempts must be 1..100")
    if not (0 <= policy.base_delay <= policy.max_delay <= MAX_RETRY_DELAY_SECONDS):
        raise InvalidRetryPolicyError("need 0 <= retry.base_delay <= retry.max_delay <= "
                                      f"{MAX_RETRY_DELAY_SECONDS}")
    if not 0 <= policy.jitter <= 1:
        raise InvalidRetryPolicyError("retry.jitter must be between 0 and 1")
    return policy


def parse_idempotency_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidIdempotencyKeyError(
            "idempotency key must be 1-200 printable ASCII characters without spaces")
    if value.startswith(OCCURRENCE_KEY_PREFIX):
        raise InvalidIdempotencyKeyError(
            f"idempotency keys starting with {OCCURRENCE_KEY_PREFIX!r} are the app's own (the "
            "jobs of a recurrence with overlap 'allow'); use another key")
    return value


def occurrence_key(schedule_id: str, run: int) -> str:
    """The key of the job that occurrence ``run`` of schedule ``schedule_id`` creates
    (overlap ``allow``); clients may not use the prefix."""
    return f"{OCCURRENCE_KEY_PREFIX}{schedule_id}:{run}"


def parse_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise JobValidationError(f"timeout_seconds must be a number in (0, {MAX_TIMEOUT_SECONDS}]",
                                 field="timeout_seconds")
    return float(value)
