"""Cron recurrences across DST changes: each scheduled local time runs exactly once.

The rule (jobs_core.validation.next_occurrence): a cron expression is read on the wall clock
of its time zone. With a specific minute and hour (neither field starts with ``*``) a local
time repeated when the clocks go back runs at its first occurrence only, and one skipped when
they go forward runs at the first instant after the gap. With ``*`` leading the minute or
hour field the job follows elapsed time: the repeated hour runs again and local times that
do not exist do not run. The zones: Europe/Berlin and America/New_York shift by an hour (at
02:00 and 03:00 local in Berlin, 02:00 in New York), Australia/Lord_Howe by 30 minutes at
02:00 local (spring: 02:00-02:30 is skipped; autumn: 01:30-02:00 is repeated).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobs_core import errors as e
from jobs_core.model import Recurrence
from jobs_core.recurrence import next_occurrence, parse_recurrence

RUNTIME = timedelta(seconds=7)
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
# (zone, local day of the change, "spring" or "autumn") in 2026
CHANGES = [
    ("Europe/Berlin", date(2026, 3, 29), "spring"),
    ("Europe/Berlin", date(2026, 10, 25), "autumn"),
    ("America/New_York", date(2026, 3, 8), "spring"),
    ("America/New_York", date(2026, 11, 1), "autumn"),
    ("Australia/Lord_Howe", date(2026, 10, 4), "spring"),
    ("Australia/Lord_Howe", date(2026, 4, 5), "autumn"),
]


def rec(cron: str, zone: str) -> Recurrence:
    parsed = parse_recurrence({"cron": cron, "timezone": zone})
    assert parsed is not None
    return parsed


def local_midnight(day: date, zone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def walk(recurrence: Recurrence, start: datetime, until: datetime) -> list[datetime]:
    """Runs in [start, until) the executor would make: each due time + a short run time is
    fed back as ``after``."""
    runs: list[datetime] = []
    after = start - timedelta(microseconds=1)
    while True:
        due = next_occurrence(recurrence, after)
        assert due > after and due.tzinfo is not None and due.utcoffset() == timedelta(0)
        if due >= until:
            return runs
        runs.append(due)
        after = due + RUNTIME


def runs_on(cron: str, zone: str, day: date) -> list[str]:
    """Local 'HH:MM+hhmm' of every run whose local date is ``day``."""
    tz = ZoneInfo(zone)
    runs = walk(rec(cron, zone), local_midnight(day - timedelta(days=1), zone),
                local_midnight(day + timedelta(days=2), zone))
    return [r.astimezone(tz).strftime("%H:%M%z") for r in runs if r.astimezone(tz).date() == day]


# -- one run per scheduled local time, on both change days of each zone ----------------------

@pytest.mark.parametrize(("zone", "day", "cron", "expected"), [
    # daily, at a time inside the spring gap: once, at the first instant after the gap
    ("Europe/Berlin", date(2026, 3, 29), "30 2 * * *", ["03:00+0200"]),
    ("America/New_York", date(2026, 3, 8), "30 2 * * *", ["03:00-0400"]),
    ("Australia/Lord_Howe", date(2026, 10, 4), "15 2 * * *", ["02:30+1100"]),
    # daily, at a time inside the repeated period: once, at its first occurrence
    ("Europe/Berlin", date(2026, 10, 25), "30 2 * * *", ["02:30+0200"]),
    ("America/New_York", date(2026, 11, 1), "30 1 * * *", ["01:30-0400"]),
    ("Australia/Lord_Howe", date(2026, 4, 5), "45 1 * * *", ["01:45+1100"]),
    # daily, outside the change window: unaffected, at the new offset
    ("Europe/Berlin", date(2026, 3, 29), "0 12 * * *", ["12:00+0200"]),
    ("Europe/Berlin", date(2026, 10, 25), "0 12 * * *", ["12:00+0100"]),
    ("America/New_York", date(2026, 3, 8), "0 12 * * *", ["12:00-0400"]),
    ("America/New_York", date(2026, 11, 1), "0 12 * * *", ["12:00-0500"]),
    ("Australia/Lord_Howe", date(2026, 10, 4), "0 12 * * *", ["12:00+1100"]),
    ("Australia/Lord_Howe", date(2026, 4, 5), "0 12 * * *", ["12:00+1030"]),
    # just before / after the change window: unaffected
    ("Europe/Berlin", date(2026, 3, 29), "59 1 * * *", ["01:59+0100"]),
    ("Europe/Berlin", date(2026, 10, 25), "0 3 * * *", ["03:00+0100"]),
    ("America/New_York", date(2026, 11, 1), "0 2 * * *", ["02:00-0500"]),
    ("Australia/Lord_Howe", date(2026, 10, 4), "30 2 * * *", ["02:30+1100"]),
    ("Australia/Lord_Howe", date(2026, 4, 5), "0 2 * * *", ["02:00+1030"]),
    # several specific times: the ones in the gap share one run, the repeated ones run once
    ("Europe/Berlin", date(2026, 3, 29), "0,30 1-3 * * *",
     ["01:00+0100", "01:30+0100", "03:00+0200", "03:30+0200"]),
    ("Europe/Berlin", date(2026, 10, 25), "0,30 1-3 * * *",
     ["01:00+0200", "01:30+0200", "02:00+0200", "02:30+0200", "03:00+0100", "03:30+0100"]),
    ("Australia/Lord_Howe", date(2026, 4, 5), "0,30 1-2 * * *",
     ["01:00+1100", "01:30+1100", "02:00+1030", "02:30+1030"]),
])
def test_specific_times_run_once_per_local_time(zone: str, day: date, cron: str,
                                                expected: list[str]) -> None:
    assert runs_on(cron, zone, day) == expected


@pytest.mark.parametrize(("zone", "day", "count", "changed"), [
    # hourly follows elapsed time: the hour that does not exist is not run, the repeated
    # one runs in both passes; Lord Howe's repeated half hour holds no full hour.
    ("Europe/Berlin", date(2026, 3, 29), 23, ["01:00+0100", "03:00+0200"]),
    ("Europe/Berlin", date(2026, 10, 25), 25, ["02:00+0200", "02:00+0100", "03:00+0100"]),
    ("America/New_York", date(2026, 3, 8), 23, ["01:00-0500", "03:00-0400"]),
    ("America/New_York", date(2026, 11, 1), 25, ["01:00-0400", "01:00-0500", "02:00-0500"]),
    ("Australia/Lord_Howe", date(2026, 10, 4), 23, ["01:00+1030", "03:00+1100"]),
    ("Australia/Lord_Howe", date(2026, 4, 5), 24, ["01:00+1100", "02:00+1030"]),
])
def test_hourly_follows_elapsed_time(zone: str, day: date, count: int,
                                     changed: list[str]) -> None:
    runs = runs_on("0 * * * *", zone, day)
    assert len(runs) == count == len(set(runs))
    start = runs.index(changed[0])
    assert runs[start:start + len(changed)] == changed


@pytest.mark.parametrize(("zone", "day", "kind"), CHANGES)
def test_every_15_minutes_follows_elapsed_time(zone: str, day: date, kind: str) -> None:
    tz = ZoneInfo(zone)
    runs = walk(rec("*/15 * * * *", zone), local_midnight(day, zone),
                local_midnight(day + timedelta(days=1), zone))
    # exactly every 15 minutes of real time across the change, whichever way it goes
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(runs))
    shift = 30 if zone == "Australia/Lord_Howe" else 60
    assert len(runs) == 96 + (shift // 15) * (1 if kind == "autumn" else -1)
    locals_ = [r.astimezone(tz).replace(tzinfo=None) for r in runs]
    repeated = len(locals_) - len(set(locals_))
    assert repeated == (shift // 15 if kind == "autumn" else 0)


# -- feeding results back never repeats or skips a run ---------------------------------------

@pytest.mark.parametrize("zone", ZONES)
def test_ten_years_of_a_daily_job_run_once_every_local_day(zone: str) -> None:
    tz = ZoneInfo(zone)
    first, last = date(2026, 1, 1), date(2035, 12, 31)
    runs = walk(rec("30 2 * * *", zone), local_midnight(first, zone),
                local_midnight(last + timedelta(days=1), zone))
    days = [r.astimezone(tz).date() for r in runs]
    assert days == [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for run in runs:
        local = run.astimezone(tz)
        if local.strftime("%H:%M") != "02:30":  # only where 02:30 does not exist
            assert local.strftime("%H:%M") == "03:00"
            assert local.replace(hour=2, minute=30).astimezone(UTC).astimezone(tz).hour != 2
        # a repeated 02:30 runs at its first occurrence
        assert local.fold == 0


@pytest.mark.parametrize("zone", ZONES)
def test_a_year_of_hourly_runs_every_existing_hour(zone: str) -> None:
    tz = ZoneInfo(zone)
    start, end = local_midnight(date(2026, 1, 1), zone), local_midnight(date(2027, 1, 1), zone)
    runs = walk(rec("0 * * * *", zone), start, end)
    assert len(set(runs)) == len(runs)
    # every instant of the year whose local clock shows a full hour, each exactly once
    # (offsets here are whole multiples of 30 minutes, so half-hour steps see them all)
    steps = int((end - start) / timedelta(minutes=30))
    expected = [t for t in (start + timedelta(minutes=30 * n) for n in range(steps))
                if t.astimezone(tz).minute == 0]
    assert runs == expected
    # so no local hour is skipped except the ones that do not exist
    seen = {r.astimezone(tz).replace(tzinfo=None, fold=0) for r in runs}
    wall = datetime(2026, 1, 1)
    while wall < datetime(2027, 1, 1):
        exists = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(
            tzinfo=None) == wall
        assert (wall in seen) == exists, wall
        wall += timedelta(hours=1)


# -- any ``after``, including an occurrence itself, against a brute-force reference ----------

def field(spec: str, low: int, high: int) -> set[int]:
    """The values of one cron field (lists, ranges and steps; no names)."""
    values: set[int] = set()
    for part in spec.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = low, high
        else:
            start, _, end = span.partition("-")
            first = int(start)
            last = int(end) if end else high if step else first
        values.update(range(first, last + 1, int(step or 1)))
    return values


def matcher(cron: str) -> Callable[[datetime], bool]:
    minute, hour, *_ = cron.split()
    minutes, hours_ = field(minute, 0, 59), field(hour, 0, 23)
    return lambda wall: wall.minute in minutes and wall.hour in hours_


def reference(cron: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """Scan every UTC minute. Specific times: the first minute at which the local clock has
    reached a matching reading it had not reached before (so a gap's readings run where the
    gap ends). Elapsed time: every minute whose local clock shows a match."""
    tz, match = ZoneInfo(zone), matcher(cron)
    specific = not cron.split()[0].startswith("*") and not cron.split()[1].startswith("*")
    out: list[datetime] = []
    reached = (start - timedelta(minutes=1)).astimezone(tz).replace(tzinfo=None, fold=0)
    moment = start
    while moment < end:
        wall = moment.astimezone(tz).replace(tzinfo=None, fold=0)
        if not specific:
            if match(wall):
                out.append(moment)
        elif wall > reached:
            step, fires = reached + timedelta(minutes=1), False
            while step <= wall:
                fires = fires or match(step)
                step += timedelta(minutes=1)
            reached = wall
            if fires:
                out.append(moment)
        moment += timedelta(minutes=1)
    return out


@pytest.mark.parametrize(("zone", "day", "kind"), CHANGES)
@pytest.mark.parametrize("cron", ["15 2 * * *", "0,30 1-3 * * *", "0 * * * *", "*/15 * * * *",
                                  "*/20 2 * * *"])
def test_any_after_gets_the_next_run(zone: str, day: date, kind: str, cron: str) -> None:
    recurrence = rec(cron, zone)
    middle = local_midnight(day, zone) + timedelta(hours=2)
    start, end = middle - timedelta(hours=6), middle + timedelta(hours=18)
    expected = reference(cron, zone, start, end)  # empty for '*/20 2' on a 1-hour spring day
    # a spread of instants (odd seconds too), each run itself, just after and well after it
    afters = [start + timedelta(minutes=17 * n, seconds=13 * n % 60) for n in range(80)]
    for run in expected:
        afters += [run, run + timedelta(microseconds=1), run + timedelta(minutes=5)]
    for after in afters:
        later = [r for r in expected if r > after]
        got = next_occurrence(recurrence, after)
        assert got == later[0] if later else got >= end, after.isoformat()


def test_after_equal_to_an_occurrence_returns_the_next_one() -> None:
    berlin = rec("30 2 * * *", "Europe/Berlin")
    at = datetime.fromisoformat
    # the repeated 02:30 ran at 00:30Z: neither that instant nor 02:30's second pass repeats
    assert next_occurrence(berlin, at("2026-10-25T00:30:00+00:00")) == \
        at("2026-10-26T01:30:00+00:00")
    assert next_occurrence(berlin, at("2026-10-25T01:30:00+00:00")) == \
        at("2026-10-26T01:30:00+00:00")
    # the skipped 02:30 ran at 03:00 CEST (01:00Z)
    assert next_occurrence(berlin, at("2026-03-29T00:59:59+00:00")) == \
        at("2026-03-29T01:00:00+00:00")
    assert next_occurrence(berlin, at("2026-03-29T01:00:00+00:00")) == \
        at("2026-03-30T00:30:00+00:00")
    hourly = rec("0 * * * *", "Europe/Berlin")
    assert next_occurrence(hourly, at("2026-10-25T00:00:00+00:00")) == \
        at("2026-10-25T01:00:00+00:00")
    assert next_occurrence(hourly, at("2026-10-25T01:00:00+00:00")) == \
        at("2026-10-25T02:00:00+00:00")
    # a run that outlasts the repeated hour does not bring its time back
    assert next_occurrence(berlin, at("2026-10-25T01:40:00+00:00")) == \
        at("2026-10-26T01:30:00+00:00")
    utc = rec("*/5 * * * *", "UTC")
    assert next_occurrence(utc, at("2026-06-01T10:05:00+00:00")) == \
        at("2026-06-01T10:10:00+00:00")


def test_interval_recurrence_is_unchanged() -> None:
    every = parse_recurrence({"interval_seconds": 90})
    assert every is not None
    after = datetime(2026, 10, 25, 0, 59, tzinfo=UTC)
    assert next_occurrence(every, after) == after + timedelta(seconds=90)


# -- validation still tells a bad expression from one that never fires -----------------------

@pytest.mark.parametrize(("cron", "phrase"), [
    ("61 * * * *", "5-field cron"),
    ("0 0 32 * *", "5-field cron"),
    ("0 0 1 13 *", "5-field cron"),
    ("0 0 30 13 *", "5-field cron"),
    ("0 0 * * 8", "5-field cron"),
    ("0 0 * *", "5-field cron"),
    ("0 0 * * * *", "5-field cron"),
    ("*/0 * * * *", "5-field cron"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6,9,11 *", "never fires"),
])
def test_bad_cron_expressions_are_rejected(cron: str, phrase: str) -> None:
    with pytest.raises(e.InvalidRecurrenceError, match=phrase):
        parse_recurrence({"cron": cron, "timezone": "Europe/Berlin"})


@pytest.mark.parametrize("cron", ["0 2 * * *", "*/15 9-17 * * MON-FRI", "0 0 L * *",
                                  "0 0 30 2 MON", "0 0 29 2 *", "30 4 1,15 * 5",
                                  "0 12 * JAN,jul sun", "0 0 ? * 1", "0 0 * * 7-1"])
def test_valid_cron_expressions_are_accepted(cron: str) -> None:
    assert parse_recurrence({"cron": cron, "timezone": "Australia/Lord_Howe"}) is not None


def test_ranges_that_wrap_around_midnight_or_the_week() -> None:
    start = datetime(2026, 6, 5, 21, 30, tzinfo=UTC)  # a Friday
    night = walk(rec("0 22-1 * * *", "UTC"), start, start + timedelta(days=1))
    assert [r.hour for r in night] == [22, 23, 0, 1]
    days = walk(rec("0 12 * * FRI-MON", "UTC"), start, start + timedelta(days=7))
    assert [r.strftime("%a") for r in days] == ["Sat", "Sun", "Mon", "Fri"]
