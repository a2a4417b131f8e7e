"""Recurrences: parsing and checking a cron or interval recurrence (and its end), and the
next occurrence after a time, on the wall clock of its time zone."""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .cron_clock import for_cronsim, never_fires, next_time
from .errors import InvalidRecurrenceError
from .model import Recurrence, read_iso

MIN_INTERVAL_SECONDS = 1.0
MAX_RUNS_LIMIT = 1_000_000_000
MAX_JITTER_SECONDS = 3600.0
INTERVAL_MODES = ("fixed_delay", "fixed_rate")
FIELDS = frozenset({"cron", "timezone", "interval_seconds", "interval_mode", "anchor",
                    "jitter_seconds", "until", "max_runs", "misfire_grace_seconds",
                    "catch_up_max", "overlap"})
OVERLAP_POLICIES = ("skip", "buffer_one", "allow")
MAX_CATCH_UP = 1000
MAX_CATCH_UP_SCAN = 100_000  # occurrences one look back for the missed ones reads at most
MAX_MISFIRE_GRACE_SECONDS = 86_400.0
# no start is exactly on time (a cycle plans, then starts): a smaller grace skipped them all
MIN_MISFIRE_GRACE_SECONDS = 1.0
# Any fixed start: parse_recurrence only asks whether the expression ever matches.
_CRON_PROBE_FROM = datetime(2000, 1, 1)


def parse_recurrence(value: Recurrence | dict[str, Any] | None) -> Recurrence | None:
    if value is None or isinstance(value, Recurrence):
        rec = value
    elif isinstance(value, dict):
        unknown = set(value) - FIELDS
        if unknown:
            raise InvalidRecurrenceError(f"unknown recurrence fields: {sorted(unknown)}")
        rec = Recurrence(cron=value.get("cron"), timezone=value.get("timezone") or "UTC",
                         interval_seconds=value.get("interval_seconds"),
                         until=_parse_time("until", value.get("until")),
                         max_runs=_parse_max_runs(value.get("max_runs")),
                         interval_mode=_parse_mode(value.get("interval_mode")),
                         anchor=_parse_time("anchor", value.get("anchor")),
                         jitter_seconds=_parse_seconds("jitter_seconds",
                                                       value.get("jitter_seconds"),
                                                       MAX_JITTER_SECONDS),
                         misfire_grace_seconds=_parse_seconds(
                             "misfire_grace_seconds", value.get("misfire_grace_seconds"),
                             MAX_MISFIRE_GRACE_SECONDS, MIN_MISFIRE_GRACE_SECONDS),
                         catch_up_max=_parse_catch_up(value.get("catch_up_max")),
                         overlap=_parse_overlap(value.get("overlap")))
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
        if not rec.cron.isascii():
            # str.isdigit() holds for '³' and Arabic-Indic digits: int() refused the first (a
            # ValueError, a 500) and read the others as numbers
            raise InvalidRecurrenceError(
                f"cron {_shown(rec.cron)!r} is not a valid 5-field cron expression: only ASCII "
                "digits, names and * , - / ? are allowed (minute hour day-of-month month "
                "day-of-week, e.g. '0 2 * * *')")
        try:
            ZoneInfo(rec.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
            # (OSError: a folder of the zone database, 'America', opens a directory; a name
            # longer than the file system allows cannot be opened)
            zone = _shown(rec.timezone) if isinstance(rec.timezone, str) else rec.timezone
            raise InvalidRecurrenceError(
                f"time zone {zone!r} is unknown; use an IANA name such as 'Europe/Berlin' or "
                "'UTC'") from None
        expr = for_cronsim(rec.cron)
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
            raise never_fires(rec.cron) from None
        except StopIteration:  # no match within cronsim's 50-year search window
            raise never_fires(rec.cron) from None
    else:
        interval = rec.interval_seconds
        if isinstance(interval, bool) or not isinstance(interval, int | float) or \
                not finite(interval) or interval < MIN_INTERVAL_SECONDS:
            raise InvalidRecurrenceError(
                f"interval_seconds must be a number >= {MIN_INTERVAL_SECONDS:g}, "
                f"got {interval!r}")
    if rec.cron is not None and (rec.interval_mode != "fixed_delay" or rec.anchor is not None):
        raise InvalidRecurrenceError("interval_mode and anchor are for interval_seconds; a "
                                     "cron runs at its own times")
    if rec.anchor is not None and rec.interval_mode != "fixed_rate":
        raise InvalidRecurrenceError("anchor needs interval_mode 'fixed_rate'")
    if rec.catch_up_max is not None and rec.jitter_seconds:
        raise InvalidRecurrenceError("catch_up_max runs the missed occurrences at their nominal "
                                     "times; it cannot be combined with jitter_seconds")
    if rec.catch_up_max is not None and rec.misfire_grace_seconds is not None:
        raise InvalidRecurrenceError("give one misfire policy: misfire_grace_seconds (skip "
                                     "late occurrences) or catch_up_max (run the missed ones)")
    if (rec.catch_up_max is not None or rec.overlap != "skip") and \
            rec.interval_seconds is not None and rec.interval_mode != "fixed_rate":
        raise InvalidRecurrenceError("catch_up_max and overlap are for a cron or a fixed_rate "
                                     "interval: a fixed_delay interval never misses one")
    return rec


def _parse_catch_up(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= MAX_CATCH_UP:
        raise InvalidRecurrenceError(f"recurrence.catch_up_max must be an integer in "
                                     f"1..{MAX_CATCH_UP}, got {value!r}")
    return value


def _parse_overlap(value: object) -> str:
    if value is None:
        return "skip"
    if value not in OVERLAP_POLICIES:
        raise InvalidRecurrenceError(f"recurrence.overlap must be one of "
                                     f"{list(OVERLAP_POLICIES)}, got {value!r}")
    return str(value)


def after_run(rec: Recurrence, due: datetime, started: datetime | None,
              finished: datetime, since: datetime | None = None) -> datetime:
    """The next occurrence once the one due at ``due`` (started at ``started``) finished at
    ``finished``, by the recurrence's policies:

    * ``catch_up_max`` (run_all): the next one after ``due``, even if it has passed (missed
      during downtime, or while this one ran); of the missed ones only the latest
      ``catch_up_max`` run, back to back. When a control or a retry's back-off moved
      ``due``, the count starts at ``since`` instead (``transitions.catch_up_from``);
    * ``overlap`` ``buffer_one``: the first one that came due while this one ran;
    * otherwise the first one after ``finished``: missed ones are skipped.
    """
    if rec.catch_up_max is not None:
        return _catch_up(rec, due if since is None else since, finished, rec.catch_up_max)
    if rec.overlap == "buffer_one" and started is not None:
        first = next_occurrence(rec, max(due, started))
        if first <= finished:
            return first
    return next_occurrence(rec, max(finished, due))


def _catch_up(rec: Recurrence, after: datetime, finished: datetime, keep: int) -> datetime:
    """The next occurrence to run when those after ``after`` up to ``finished`` (and the
    recurrence's ``until``) were missed: the earliest of the latest ``keep`` of them, or the
    next one if none was missed. A fixed-rate grid is counted by arithmetic; a cron is read
    back from the end over a window that doubles (by less than ``MAX_CATCH_UP_SCAN`` minutes
    at a time) until it holds ``keep`` occurrences (or reaches back to ``after``), so a long
    downtime costs the occurrences near its end, not every one missed."""
    first = next_occurrence(rec, after)
    end = finished if rec.until is None else min(finished, rec.until)
    if first > end:
        return first
    if rec.interval_seconds is not None and rec.anchor is not None:  # fixed_rate: a grid
        step = timedelta(seconds=rec.interval_seconds)
        last = rec.anchor + step * ((end - rec.anchor) // step)  # (first >= anchor: on it)
        return max(first, last - step * (keep - 1))
    window = timedelta(minutes=keep)  # (a cron fires at most once a minute)
    # The last window held fewer than ``keep``; growing it by less than the scan's bound in
    # minutes keeps every window's scan within that bound, so it always reaches the end (a
    # doubling of months took in a dense stretch past the bound: the latest were lost).
    most = timedelta(minutes=max(1, MAX_CATCH_UP_SCAN - keep - 2))
    while True:
        start = after if window >= end - after else end - window
        latest: deque[datetime] = deque(maxlen=keep)
        moment = start
        for _ in range(MAX_CATCH_UP_SCAN):  # (not reached: see ``most``)
            moment = next_occurrence(rec, moment)
            if moment > end:
                break
            latest.append(moment)
        if len(latest) == keep or start == after:
            return latest[0] if latest else first
        window += min(window, most)


def _parse_mode(value: object) -> str:
    if value is None:
        return "fixed_delay"
    if value not in INTERVAL_MODES:
        raise InvalidRecurrenceError(f"recurrence.interval_mode must be one of "
                                     f"{list(INTERVAL_MODES)}, got {value!r}")
    return str(value)


def _parse_seconds(name: str, value: object, limit: float, low: float = 0.0) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not finite(value) or \
            not low <= value <= limit:
        raise InvalidRecurrenceError(f"recurrence.{name} must be a number in "
                                     f"{low:g}..{limit:g}, got {value!r}")
    return float(value)


def misfired(rec: Recurrence | None, attempts: int, due: datetime, now: datetime,
             since: datetime | None = None) -> bool:
    """Whether an occurrence starting at ``now`` is to be skipped: its recurrence skips
    occurrences later than ``misfire_grace_seconds`` (a retry of one that ran is never
    skipped). Lateness counts from ``due``, or from ``since`` if later: when a reschedule or
    run-now set that due time (``Job.due_set_at``), a due time in the recent past that the
    caller asked for runs at once. A grace stored below the minimum (accepted by an earlier
    release) counts as the minimum."""
    if rec is None or rec.misfire_grace_seconds is None or attempts > 0:
        return False
    grace = max(rec.misfire_grace_seconds, MIN_MISFIRE_GRACE_SECONDS)
    return (now - late_from(due, since)).total_seconds() > grace


def late_from(due: datetime, since: datetime | None) -> datetime:
    """What an occurrence's lateness counts from: its due time, or when a reschedule or
    run-now set it (``Job.due_set_at``) if that was later."""
    return due if since is None else max(due, since)


def with_jitter(rec: Recurrence, due: datetime, rng: random.Random) -> datetime:
    """An occurrence's due time, delayed by its random share of ``jitter_seconds`` (none at
    the end of the calendar, where the delay does not fit)."""
    if not rec.jitter_seconds:
        return due
    delay = timedelta(seconds=rng.uniform(0, rec.jitter_seconds))
    return due + delay if due <= datetime.max.replace(tzinfo=UTC) - delay else due


def first_anchor(rec: Recurrence, first_due: datetime) -> Recurrence:
    """A fixed-rate recurrence without an anchor is anchored at its first due time."""
    if rec.interval_mode == "fixed_rate" and rec.anchor is None:
        return replace(rec, anchor=first_due)
    return rec


def _parse_time(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRecurrenceError(f"recurrence.{name} must be an ISO-8601 date-time string")
    try:
        moment = read_iso(value)
    except ValueError:
        raise InvalidRecurrenceError(f"recurrence.{name} {value!r} is not an ISO-8601 "
                                     "date-time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRecurrenceError(f"recurrence.{name} {value!r} needs a UTC offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidRecurrenceError(f"recurrence.{name} {value!r} is out of range") from None


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


def _shown(text: str) -> str:
    """A caller's text as an error message quotes it: at most 80 characters."""
    return text if len(text) <= 80 else text[:77] + "..."


def _bad_cron(cron: object) -> InvalidRecurrenceError:
    return InvalidRecurrenceError(
        f"cron {cron!r} is not a valid 5-field cron expression "
        "(minute hour day-of-month month day-of-week, e.g. '0 2 * * *')")


def finite(number: float) -> bool:
    """Ints of any size are finite (math.isfinite overflows on ints beyond a float)."""
    return isinstance(number, int) or math.isfinite(number)


def next_occurrence(rec: Recurrence, after: datetime) -> datetime:
    """The first run strictly after ``after`` (aware), in UTC: on an interval's grid or after
    it, or when the cron fires next on the wall clock of ``rec.timezone``
    (``cron_clock.next_time``, which says how DST changes are read)."""
    if rec.interval_seconds is not None:
        step = timedelta(seconds=rec.interval_seconds)
        if rec.interval_mode == "fixed_rate" and rec.anchor is not None:
            if after < rec.anchor:
                return rec.anchor
            return rec.anchor + step * ((after - rec.anchor) // step + 1)  # missed: skipped
        return after + step
    assert rec.cron is not None
    return next_time(rec.cron, rec.timezone, after)
