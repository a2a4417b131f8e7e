"""When a cron expression fires: its next time after an instant, read on the wall clock of a
time zone, around DST changes as cronie / Debian cron do (``recurrence.next_occurrence`` asks
this for a cron; cronsim parses and matches the calendar)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from .errors import InvalidRecurrenceError


def next_time(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time ``cron`` fires strictly after ``after`` (aware), in UTC.

    The expression is read on the wall clock of ``timezone``; around DST changes this
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
    tz = ZoneInfo(timezone)
    fields = cron.split()
    if fields[0].startswith("*") or fields[1].startswith("*"):
        return _next_elapsed(for_cronsim(cron), tz, after.astimezone(UTC))
    return _next_wall_clock(for_cronsim(cron), tz, after.astimezone(UTC))


_CRON_NAMES = {name: number for names, first in (("SUN MON TUE WED THU FRI SAT", 0),
                                                  ("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT "
                                                   "NOV DEC", 1))
               for number, name in enumerate(names.split(), first)}
_CRON_SPANS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


@functools.lru_cache(maxsize=256)
def for_cronsim(cron: str) -> str:
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


def never_fires(cron: str) -> InvalidRecurrenceError:
    return InvalidRecurrenceError(f"cron {cron!r} never fires (a day that no month has)")


def _local_times(cron: str, start: datetime) -> Iterator[datetime]:
    """Matching naive wall-clock times strictly after naive ``start``, ascending."""
    try:
        yield from CronSim(cron, start)
    except CronSimError as exc:  # parse_recurrence has vetted it: a recurrence from elsewhere
        raise InvalidRecurrenceError(f"cron {cron!r} is not usable: {exc}") from None
    raise never_fires(cron)


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
