"""NCRONTAB schedules as the Functions timer trigger uses them: ``sec min hour day month dow``.

Supports ``*``, lists, ranges, steps (``*/5``, ``1-30/2``), month and day names, day-of-week
0-7 (0 and 7 are Sunday). Like NCrontab, a time matches when every field matches. A
``hh:mm:ss`` TimeSpan schedule (an interval) is also accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


def _value(text: str, names: dict[str, int]) -> int:
    return names[text.lower()] if text.lower() in names else int(text)


def _parse_field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if rng == "*":
            start, end = low, high
        elif "-" in rng:
            a, b = rng.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(rng, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"field value out of range in {text!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    seconds: frozenset[int] = frozenset()
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    interval: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first matching time strictly after ``moment`` (same tzinfo)."""
        if self.interval is not None:
            return moment + self.interval
        t = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(
                    day=1)
                continue
            if t.day not in self.days or (t.isoweekday() % 7) not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += timedelta(seconds=1)
                continue
            return t
        raise ValueError("schedule never fires")


def parse(expression: str) -> Schedule:
    expression = expression.strip()
    span = _TIMESPAN.match(expression)
    if span:
        days, hh, mm, ss = (int(x or 0) for x in span.groups())
        return Schedule(interval=timedelta(days=days, hours=hh, minutes=mm, seconds=ss))
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(
            f"NCRONTAB expression must have 6 fields (sec min hour day month dow): {expression!r}")
    names = [{}, {}, {}, {}, _MONTHS, _DAYS]
    parsed = [_parse_field(f, lo, hi, n) for f, (lo, hi), n in zip(fields, _RANGES, names,
                                                                   strict=True)]
    weekdays = frozenset(d % 7 for d in parsed[5])
    seconds, minutes, hours, month_days, months = parsed[:5]
    return Schedule(seconds, minutes, hours, month_days, months, weekdays=weekdays)
