"""Turning a scheduling request into a valid job, or a typed error that says what to fix."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

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
from .model import JSON, Recurrence, RetryPolicy
from .notify_targets import parse_notify
from .settings import JobsSettings

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
MIN_INTERVAL_SECONDS = 1.0
# Deeper JSON could parse when the request arrives and hit Python's recursion limit later,
# when the shard is replayed in a deeper call stack: the whole shard would become unreadable.
MAX_JSON_DEPTH = 100
# Any fixed start: parse_recurrence only asks whether the expression ever matches.
_CRON_PROBE_FROM = datetime(2000, 1, 1)


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


def validate(request: JobRequest, registry: HandlerRegistry, settings: JobsSettings,
             now: datetime) -> ValidJob:
    registry.get(validate_handler_name(request.handler))
    check_json_size(request.payload, settings.max_payload_bytes, "payload")
    recurrence = parse_recurrence(request.recurrence)
    if recurrence is not None and recurrence.interval_seconds is not None and \
            recurrence.interval_seconds > settings.horizon_days * 86400:
        raise InvalidRecurrenceError(
            f"interval_seconds {recurrence.interval_seconds} is beyond the horizon of "
            f"{settings.horizon_days} days (JOBS_HORIZON_DAYS)")
    due = resolve_due(request.due_at, request.delay, settings, now)
    if recurrence is not None and request.due_at is None and request.delay is None:
        due = next_occurrence(recurrence, now)
    if recurrence is not None and recurrence.until is not None and due > recurrence.until:
        raise InvalidRecurrenceError(
            f"recurrence.until {recurrence.until.isoformat()} is before the first occurrence "
            f"({due.isoformat()}): the job would never run")
    return ValidJob(
        handler=request.handler,
        payload=request.payload,
        due_at=due,
        idempotency_key=parse_idempotency_key(request.idempotency_key),
        retry=parse_retry(request.retry, settings.retry),
        recurrence=recurrence,
        notify=parse_notify(request.notify, settings.notify_queues),
        timeout_seconds=parse_timeout(request.timeout_seconds),
    )


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
            moment = datetime.fromisoformat(value.strip())
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
    return moment.astimezone(UTC)


def resolve_due(due_at: str | datetime | None, delay: float | None, settings: JobsSettings,
                now: datetime) -> datetime:
    if due_at is not None and delay is not None:
        raise InvalidDueTimeError("give either due_at or delay, not both", field="delay")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or \
                not _finite(delay) or delay < 0:
            raise InvalidDueTimeError(f"delay must be a number of seconds >= 0, got {delay!r}",
                                      field="delay")
        if delay > settings.horizon_days * 86400:
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


def parse_recurrence(value: Recurrence | dict[str, Any] | None) -> Recurrence | None:
    if value is None or isinstance(value, Recurrence):
        rec = value
    elif isinstance(value, dict):
        unknown = set(value) - {"cron", "timezone", "interval_seconds", "until", "max_runs"}
        if unknown:
            raise InvalidRecurrenceError(f"unknown recurrence fields: {sorted(unknown)}")
        rec = Recurrence(cron=value.get("cron"), timezone=value.get("timezone") or "UTC",
                         interval_seconds=value.get("interval_seconds"),
                         until=_parse_until(value.get("until")),
                         max_runs=_parse_max_runs(value.get("max_runs")))
    else:
        raise InvalidRecurrenceError("recurrence must be an object with 'cron' or "
                                     "'interval_seconds'")
    if rec is None:
        return None
    if (rec.cron is None) == (rec.interval_seconds is None):
        raise InvalidRecurrenceError("recurrence needs exactly one of 'cron' (with optional "
                                     "'timezone') or 'interval_seconds'")
    if rec.cron is not None:
        if not isinstance(rec.cron, str) or len(rec.cron.split()) != 5:
            raise _bad_cron(rec.cron)
        try:
            ZoneInfo(rec.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidRecurrenceError(
                f"time zone {rec.timezone!r} is unknown; use an IANA name such as "
                "'Europe/Berlin' or 'UTC'") from None
        expr = _for_cronsim(rec.cron)
        try:
            next(CronSim(expr, _CRON_PROBE_FROM))
        except CronSimError:
            # cronsim rejects a day-of-month that none of the months has (e.g. '0 0 30 2 *')
            # with the same error as a malformed field: tell them apart by every month.
            minute, hour, day, month, weekday = expr.split()
            try:
                CronSim(f"{minute} {hour} {day} * {weekday}", _CRON_PROBE_FROM)
                CronSim(f"0 0 * {month} *", _CRON_PROBE_FROM)
            except CronSimError:
                raise _bad_cron(rec.cron) from None
            raise _never_fires(rec.cron) from None
        except StopIteration:  # no match within cronsim's 50-year search window
            raise _never_fires(rec.cron) from None
    else:
        interval = rec.interval_seconds
        if isinstance(interval, bool) or not isinstance(interval, int | float) or \
                not _finite(interval) or interval < MIN_INTERVAL_SECONDS:
            raise InvalidRecurrenceError(
                f"interval_seconds must be a number >= {MIN_INTERVAL_SECONDS:g}, "
                f"got {interval!r}")
    return rec


MAX_RUNS_LIMIT = 1_000_000_000


def _parse_until(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRecurrenceError("recurrence.until must be an ISO-8601 date-time string")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRecurrenceError(f"recurrence.until {value!r} is not an ISO-8601 "
                                     "date-time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRecurrenceError(f"recurrence.until {value!r} needs a UTC offset")
    return moment.astimezone(UTC)


def _parse_max_runs(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= MAX_RUNS_LIMIT:
        raise InvalidRecurrenceError(f"recurrence.max_runs must be an integer in "
                                     f"1..{MAX_RUNS_LIMIT}, got {value!r}")
    return value


def recurrence_ends(rec: Recurrence, runs_done: int, next_due: datetime) -> bool:
    """Whether a recurrence with ``runs_done`` finished occurrences has none at
    ``next_due`` (past ``until``, or ``max_runs`` reached)."""
    if rec.max_runs is not None and runs_done >= rec.max_runs:
        return True
    return rec.until is not None and next_due > rec.until


_CRON_NAMES = {name: number for names, first in (("SUN MON TUE WED THU FRI SAT", 0),
                                                  ("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT "
                                                   "NOV DEC", 1))
               for number, name in enumerate(names.split(), first)}
_CRON_SPANS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


@functools.lru_cache(maxsize=256)
def _for_cronsim(cron: str) -> str:
    """Spellings croniter accepted that cronsim lacks: '?' for '*' in the day fields, and
    ranges that wrap around ('0 22-2 * * *', 'FRI-MON'), written out as two ranges. All else
    reads as in cronsim / cronie: e.g. when day-of-month or day-of-week starts with '*',
    both must match ('0 0 */2 * MON': odd days that are Mondays), otherwise either."""
    fields = cron.upper().split()
    for index, text in enumerate(fields):
        if text == "?" and index in (2, 4):
            fields[index] = "*"
            continue
        parts = []
        for part in text.split(","):
            first, dash, last = part.partition("-")
            low = int(first) if first.isdigit() else _CRON_NAMES.get(first)
            high = int(last) if last.isdigit() else _CRON_NAMES.get(last)
            if dash and index == 4 and low == 7 and high is not None and high < 7:
                low, part = 0, f"0-{high}"  # Sunday as 7 starting a range: '7-1' is SUN-MON
            if dash and low is not None and high is not None and low > high:
                span_low, span_high = _CRON_SPANS[index]
                part = f"{low}-{span_high},{span_low}-{high}"
            parts.append(part)
        fields[index] = ",".join(parts)
    return " ".join(fields)


def _bad_cron(cron: object) -> InvalidRecurrenceError:
    return InvalidRecurrenceError(
        f"cron {cron!r} is not a valid 5-field cron expression "
        "(minute hour day-of-month month day-of-week, e.g. '0 2 * * *')")


def _never_fires(cron: str) -> InvalidRecurrenceError:
    return InvalidRecurrenceError(f"cron {cron!r} never fires (a day that no month has)")


def _finite(number: float) -> bool:
    """Ints of any size are finite (math.isfinite overflows on ints beyond a float)."""
    return isinstance(number, int) or math.isfinite(number)


def next_occurrence(rec: Recurrence, after: datetime) -> datetime:
    """The first run strictly after ``after`` (aware), in UTC.

    A cron expression is read on the wall clock of ``rec.timezone``; around DST changes this
    follows cronie / Debian cron (and cronsim, whose parser and calendar matching are used):

    * Minute and hour both specific (neither field starts with ``*``, e.g. ``30 2 * * *``,
      ``0 9-17 * * *``): each matching local time runs once. A time that occurs twice when
      the clocks go back runs at its first occurrence only; a time that does not exist when
      they go forward runs once at the first instant after the gap (02:30 on Berlin's
      spring-forward day runs at 03:00 CEST); times in the same gap share that one run.
    * Minute or hour starting with ``*`` (``*/15 * * * *``, ``0 * * * *``, ``0 */2 * * *``):
      elapsed time. Every instant whose local clock matches runs, so the repeated hour runs
      again and local times that do not exist do not run.

    Feeding a result (plus the run time) back as ``after`` never yields the same run twice
    and skips none that is still ahead of ``after``.
    """
    if rec.interval_seconds is not None:
        return after + timedelta(seconds=rec.interval_seconds)
    assert rec.cron is not None
    tz = ZoneInfo(rec.timezone)
    fields = rec.cron.split()
    if fields[0].startswith("*") or fields[1].startswith("*"):
        return _next_elapsed(_for_cronsim(rec.cron), tz, after.astimezone(UTC))
    return _next_wall_clock(_for_cronsim(rec.cron), tz, after.astimezone(UTC))


def _local_times(cron: str, start: datetime) -> Iterator[datetime]:
    """Matching naive wall-clock times strictly after naive ``start``, ascending."""
    try:
        yield from CronSim(cron, start)
    except CronSimError as exc:  # parse_recurrence has vetted it: a recurrence from elsewhere
        raise InvalidRecurrenceError(f"cron {cron!r} is not usable: {exc}") from None
    raise _never_fires(cron)


def _instant(wall: datetime, tz: ZoneInfo, fold: int) -> datetime:
    return wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    return _wall(_instant(wall, tz, 0), tz) == wall


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """For a wall time inside a spring-forward gap: the instant the gap ends."""
    # fold=1 reads it with the offset after the change (an instant before the change),
    # fold=0 with the offset before it (an instant after the change).
    lo = int(_instant(wall, tz, 1).timestamp())
    hi = int(_instant(wall, tz, 0).timestamp())
    while hi - lo > 1:  # invariant: wall clock at lo is before the gap, at hi after it
        mid = (lo + hi) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), tz) > wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _next_wall_clock(cron: str, tz: ZoneInfo, after: datetime) -> datetime:
    # Each local time maps to one instant: the first if repeated, the gap's end if skipped.
    # That map never decreases, so local times up to after's own clock reading map to
    # instants <= after; later ones only need the "> after" check (a time in the repeated
    # hour whose first occurrence was before ``after`` is over).
    for wall in _local_times(cron, _wall(after, tz)):
        moment = _instant(wall, tz, 0) if _exists(wall, tz) else _gap_end(wall, tz)
        if moment > after:
            return moment
    raise AssertionError("unreachable")  # _local_times raises when it runs dry


def _next_elapsed(cron: str, tz: ZoneInfo, after: datetime) -> datetime:
    # Each local time maps to every instant showing it: none in a gap, two when repeated.
    local = after.astimezone(tz)
    start = local.replace(tzinfo=None, fold=0)
    other = local.replace(fold=1 - local.fold)
    if local.fold == 0 and other.utcoffset() != local.utcoffset():
        # ``after`` is in the first pass of a repeated period: the second pass of clock
        # readings up to `shift` earlier is still ahead of it.
        shift = (local.utcoffset() or timedelta()) - (other.utcoffset() or timedelta())
        start -= shift
    # Clock readings up to after's own can only be ahead of it in that second pass; the
    # first later reading that is ahead of it at all comes before every reading after it.
    reading = _wall(after, tz)
    best: datetime | None = None
    for wall in _local_times(cron, start):
        first, second = _instant(wall, tz, 0), _instant(wall, tz, 1)
        moments = (first,) if first == second else (first, second)
        ahead = [moment for moment in moments if moment > after and _wall(moment, tz) == wall]
        if ahead:
            best = min(ahead if best is None else [*ahead, best])
            if wall > reading:
                return best
    raise AssertionError("unreachable")


def parse_retry(value: RetryPolicy | dict[str, Any] | None, default: RetryPolicy) -> RetryPolicy:
    if value is None:
        return default
    if isinstance(value, RetryPolicy):
        policy = value
    elif isinstance(value, dict):
        unknown = set(value) - {"max_attempts", "base_delay", "max_delay", "jitter"}
        if unknown:
            raise InvalidRetryPolicyError(f"unknown retry fields: {sorted(unknown)}")
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
    if not (0 <= policy.base_delay <= policy.max_delay <= 86_400):
        raise InvalidRetryPolicyError("need 0 <= retry.base_delay <= retry.max_delay <= 86400")
    if not 0 <= policy.jitter <= 1:
        raise InvalidRetryPolicyError("retry.jitter must be between 0 and 1")
    return policy


def parse_idempotency_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not IDEMPOTENCY_KEY.match(value):
        raise InvalidIdempotencyKeyError(
            "idempotency key must be 1-200 printable ASCII characters without spaces")
    return value


def parse_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not 0 < value <= 3600:
        raise JobValidationError("timeout_seconds must be a number in (0, 3600]",
                                 field="timeout_seconds")
    return float(value)
