"""Checks of a request's ``recurrence`` that the HTTP layer makes before the core reads it:
inputs that made the core raise something other than a validation error (a 500 for bad input,
and in a batch every item lost with one such item), or accept what it should refuse. Each is a
400 naming ``recurrence``. The core's own checks (``jobs_core/recurrence.py``) still answer
everything else; these go there when the core is next changed (see the closing notes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobs_core.errors import InvalidRecurrenceError


def check_recurrence(recurrence: Any, horizon_days: int, now: datetime | None = None) -> None:
    """All the checks below, for a request's ``recurrence`` (anything: the core judges the
    rest)."""
    if not isinstance(recurrence, dict):
        return
    check_time_zone(recurrence)
    check_cron(recurrence)
    check_anchor(recurrence, horizon_days, now or datetime.now(UTC))


def check_time_zone(recurrence: Any) -> None:
    """A recurrence's ``timezone`` that makes ``ZoneInfo`` raise ``OSError`` is a 400 like any
    unknown zone: a folder of the zone database (``America``, ``Europe``) opens a directory,
    and a name longer than the file system allows fails to open. The recurrence's own check
    (``jobs_core/recurrence.py``) catches the other errors of an unknown zone, not these: POST
    and PATCH answered 500, and a batch lost every item with one such item."""
    zone = recurrence.get("timezone") if isinstance(recurrence, dict) else None
    if not isinstance(zone, str) or not zone:
        return
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return  # the recurrence's check answers these (400)
    except OSError:
        shown = zone if len(zone) <= 80 else zone[:77] + "..."
        raise InvalidRecurrenceError(f"time zone {shown!r} is unknown; use an IANA name such "
                                     "as 'Europe/Berlin' or 'UTC'") from None


def check_cron(recurrence: Any) -> None:
    """A recurrence's ``cron`` holding a character other than ASCII is a 400. The core's
    reading of the fields (``jobs_core/recurrence.py``) takes what ``str.isdigit`` calls a
    digit for a number, and ``int()`` refuses superscripts ('0 0 ³ * *', '²-1 * * * *'):
    a ``ValueError``, so POST and PATCH answered 500 and a batch lost every item with it.
    (Other digits, such as Arabic-Indic, were read as numbers in a range that wraps
    around (Arabic-Indic '5-1' ran as '5-59,0-1'), and were refused elsewhere.)"""
    cron = recurrence.get("cron") if isinstance(recurrence, dict) else None
    if isinstance(cron, str) and not cron.isascii():
        shown = cron if len(cron) <= 80 else cron[:77] + "..."
        raise InvalidRecurrenceError(
            f"cron {shown!r} is not a valid 5-field cron expression: only ASCII digits, "
            "names and * , - / are allowed (minute hour day-of-month month day-of-week, "
            "e.g. '0 2 * * *')")


def check_anchor(recurrence: Any, horizon_days: int, now: datetime) -> None:
    """A fixed-rate recurrence's ``anchor`` more than the horizon ahead is a 400, like a
    ``due_at`` that far: the grid's first occurrence is the anchor, so it became the job's
    due time (year 9999 was accepted) or, after an explicit first one, its next. Near the
    end of year 9999 the occurrence's jitter overflowed: POST answered 500, and an executor
    that finished such a job's run could not record its outcome (``OverflowError`` in the
    cycle), so the run started again after each lease. An anchor in the past is fine, and
    a bad one is left to the recurrence's own check."""
    value = recurrence.get("anchor") if isinstance(recurrence, dict) else None
    if not isinstance(value, str):
        return
    try:
        anchor = datetime.fromisoformat(value.strip())
        if anchor.tzinfo is None or anchor.utcoffset() is None:
            return
        anchor = anchor.astimezone(UTC)
    except (ValueError, OverflowError):
        return
    if anchor > now + timedelta(days=horizon_days):
        raise InvalidRecurrenceError(
            f"recurrence.anchor {anchor.isoformat()} is more than {horizon_days} days ahead "
            "(JOBS_HORIZON_DAYS): an occurrence would be due there; anchor the grid closer")
