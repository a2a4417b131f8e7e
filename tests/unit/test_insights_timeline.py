"""TimelineReader (GET /api/timeline) on the in-memory store: points, blob choice, cost."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from jobs_core import InMemoryStore, JobRequest
from jobs_core.errors import JobValidationError, TransientStoreError
from jobs_core.timeline import TimelineReader
from tests.jobs_helpers import T0, Clock, Recorder, drain, make

MINUTE = timedelta(minutes=1)


def by_minute(points: list, field: str) -> dict[int, int]:  # type: ignore[type-arg]
    """Non-zero counts keyed by the point's minute offset from T0."""
    return {int((p.at - T0) / MINUTE): getattr(p, field) for p in points
            if getattr(p, field)}


async def test_points_count_due_and_finished_jobs_per_minute() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    # due at minute 2 (x3), minute 5 (x2) and minute 9 (x1); run each batch when due
    for minute, n in ((2, 3), (5, 2), (9, 1)):
        await scheduler.schedule_many([JobRequest("echo", i, delay=minute * 60 + 10)
                                       for i in range(n)])
    later = (await scheduler.schedule(JobRequest("echo", delay=300 * 60))).job  # 19:00 bucket
    for minute in (2, 5):
        clock.now = T0 + minute * MINUTE + timedelta(seconds=30)
        await drain(executor, 1)
    clock.now = T0 + 10 * MINUTE + timedelta(seconds=5)  # the minute-9 job is due, not run
    reader = TimelineReader(store, scheduler.settings, clock=clock)

    line = await reader.timeline(15)

    assert len(line.points) == 15
    assert line.start == T0 - 4 * MINUTE and line.end == clock.now
    assert [p.at for p in line.points] == [line.start + i * MINUTE for i in range(15)]
    assert by_minute(line.points, "due") == {2: 3, 5: 2, 9: 1}
    assert by_minute(line.points, "finished") == {2: 3, 5: 2}
    assert line.jobs_scanned == 6  # the 14:00 blob; the 19:00 bucket's blob is not read
    assert later.due_at > clock.now and line.shards_read == 1
    assert line.errors == [] and line.bucket_seconds == 60
    short = await reader.timeline(3)  # minutes 8, 9, 10
    assert [p.due for p in short.points] == [0, 1, 0]
    assert sum(p.finished for p in short.points) == 0


async def test_reads_only_the_buckets_of_the_window_and_follows_touches() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    at = {name: T0 + timedelta(hours=h, minutes=m)
          for name, h, m in (("a", 0, 10), ("b", 1, 50), ("d", 2, 59), ("now", 3, 20))}
    ids = {name: (await scheduler.schedule(JobRequest("echo", due_at=at[name]))).job.id
           for name in ("a", "b", "d")}
    ids["c"] = (await scheduler.schedule(JobRequest("echo", delay=86_400))).job.id  # tomorrow
    for name in ("a", "b"):
        clock.now = at[name] + timedelta(seconds=30)
        await drain(executor, 1)
    clock.now = at["now"]
    await scheduler.run_now(ids["c"])  # a touch record in the 17:00 blob names tomorrow's
    await drain(executor, 1)  # runs d (due 16:59) and c
    reader = TimelineReader(store, scheduler.settings, clock=clock)
    store.requests.clear()

    line = await reader.timeline(60)  # 16:21..17:20

    # read: the window's buckets (16:00, 17:00), the one before (15:00: b) and tomorrow's
    # through the touch; not 14:00 (a)
    assert line.shards_read == 4 and line.jobs_scanned == 3
    assert store.requests == {"list": 1, "read": 4}
    assert by_minute(line.points, "due") == {179: 1, 200: 1}  # d at 16:59, c made due at 17:20
    assert by_minute(line.points, "finished") == {200: 2}
    store.requests.clear()
    again = await reader.timeline(60)
    assert store.requests == {"list": 1}  # nothing appended: cached, nothing re-read
    assert again.points == line.points


async def test_minutes_out_of_range_is_a_validation_error() -> None:
    reader = TimelineReader(InMemoryStore())
    for minutes in (0, 1441):
        with pytest.raises(JobValidationError) as caught:
            await reader.timeline(minutes)
        assert caught.value.field == "minutes"


class NoMoved:
    """A store whose blob ``source`` refuses the ``moved`` record: a move out of it stays half
    done (the job *moving* in the source, already added to the destination) until a planner
    finishes it."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store, self.source = store, ""

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(self, name: str, data: bytes, **kwargs: object) -> object:
        if name == self.source and b'"op":"moved"' in data:
            raise TransientStoreError(f"append {name}: 503 ServerBusy")
        return await self._store.append(name, data, **kwargs)  # type: ignore[arg-type]


async def test_a_job_half_way_through_a_move_counts_once() -> None:
    """Between a move's ``add`` in the destination and its ``moved`` in the source (an
    evacuation moves every waiting job of a blob at once; a failed last step waits for the
    planner's next cycle), both blobs hold the job: it was counted due twice, and once more
    as finished when it ran from the destination."""
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    wrapped = NoMoved(store)
    scheduler, executor = make(wrapped, recorder, clock, slots=1,  # type: ignore[arg-type]
                               commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest("echo", "x", delay=120))).job
    found, source = await scheduler._locate(job.id)
    assert found is not None
    wrapped.source = source
    with contextlib.suppress(TransientStoreError):
        await scheduler.mover.move(source, [found])
    dest = (await scheduler._locate(job.id))[1]
    assert dest != source
    clock.now = T0 + 3 * MINUTE
    await drain(executor, 1)
    assert (await scheduler.get(job.id)).status.value == "succeeded"

    line = await TimelineReader(store, scheduler.settings, clock=clock).timeline(10)

    assert line.shards_read == 2
    assert sum(p.due for p in line.points) == 1
    assert sum(p.finished for p in line.points) == 1
    assert line.jobs_scanned == 1
