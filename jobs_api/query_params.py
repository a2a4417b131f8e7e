"""Query parameters of the read routes (``http_api``, ``insights``): each bad one is a 400
naming it."""

from __future__ import annotations

from datetime import UTC, datetime

from jobs_core.errors import JobValidationError
from jobs_core.model import read_iso


def parse_time(name: str, raw: str | None) -> datetime | None:
    """An ISO-8601 date-time with a UTC offset, as UTC (None when absent)."""
    if raw is None:
        return None
    try:
        moment = read_iso(raw)
    except ValueError:
        raise JobValidationError(f"{name} {raw!r} is not an ISO-8601 date-time",
                                 field=name) from None
    if moment.tzinfo is None:
        raise JobValidationError(f"{name} needs a UTC offset", field=name)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise JobValidationError(f"{name} {raw!r} is out of range", field=name) from None


def parse_int(name: str, raw: str | None, low: int, high: int) -> int | None:
    """An integer in ``low..high`` (None when absent)."""
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise JobValidationError(f"{name} must be an integer {low}..{high}", field=name)
    return value
