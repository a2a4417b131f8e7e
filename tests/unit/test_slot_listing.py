"""A planning cycle lists today and the past days with work, not a year of future buckets
(jobs_core/slot_listing.py); hints still bring a far-future job forward."""

from __future__ import annotations

from datetime import timedelta

from jobs_core import InMemoryStore, JobRequest, JobStatus, RetryPolicy
from jobs_core.ids import parse_job_id
from jobs_core.slot_listing import FULL_EVERY
from tests.jobs_helpers import Clock, Recorder, drain, make


class Listings(InMemoryStore):
    """Counts the blobs each listing returns."""

    def __init__(self) -> None:
        super().__init__()
        self.returned: list[int] = []

    async def list(self, prefix):  # type: ignore[no-untyped-def]
        infos = await super().list(prefix)
        if prefix.startswith("shards/"):
            self.returned.append(len(infos))
        return infos


async def test_a_cycle_lists_today_not_a_year_ahead_and_hints_still_work() -> None:
    clock, recorder = Clock(), Recorder()
    store = Listings()
    scheduler, executor = make(store, recorder, clock, slots=1)
    jobs = await scheduler.schedule_many(
        [JobRequest("echo", {"day": d}, delay=d * 86_400 + 60) for d in range(1, 365)])
    far = jobs[-1].job  # type: ignore[union-attr]
    now_job = (await scheduler.schedule(JobRequest("echo", {"now": 1}))).job
    store.returned.clear()  # (the scheduler lists each bucket it first adds to)
    await drain(executor, 1)  # the first cycle lists the whole slot once
    assert recorder.runs[now_job.id] == 1 and store.returned[0] >= 365

    store.returned.clear()
    clock.advance(60)
    await executor.run_cycle(0)
    assert store.returned and max(store.returned) <= 2  # today's blobs only

    await scheduler.run_now(far.id)  # a touch hint in today's blob names the far blob
    await drain(executor, 1)
    assert recorder.runs[far.id] == 1
    assert (await scheduler.get(far.id)).status is JobStatus.SUCCEEDED
    assert max(store.returned) <= 2 and executor.listing.full_listings == 1

    clock.advance(FULL_EVERY.total_seconds())  # now and then the whole slot again
    store.returned.clear()
    await executor.run_cycle(0)
    assert store.returned[0] >= 364 and executor.listing.full_listings == 2


async def test_past_days_with_work_are_listed_until_done() -> None:
    clock, recorder = Clock(), Recorder()
    store = InMemoryStore()
    scheduler, executor = make(store, recorder, clock, slots=1, job_timeout_seconds=600)
    hang = (await scheduler.schedule(JobRequest("hang"))).job
    plan = await executor.plan(0)  # full listing: today's blob
    assert plan.due == 1
    clock.advance(2 * 86_400)  # two days later: the hung job's blob is a busy past day
    clock.advance(FULL_EVERY.total_seconds())
    await executor.plan(0)  # full listing
    clock.advance(60)
    again = await executor.plan(0)  # a day listing: the past day is still listed
    assert executor.listing.day_listings >= 2
    assert any(parse_job_id(hang.id).name == b.blob for b in again.batches)


async def test_yesterdays_blob_is_listed_after_midnight() -> None:
    """A recurring job stays in its home blob for a day: after midnight its blob is a past
    day, and a warm cycle must still list it (found by tests/sim/test_sim.py's long run: the
    job waited for the next full listing)."""
    clock, recorder = Clock(), Recorder()
    clock.advance(9.5 * 3600)  # 23:30
    scheduler, executor = make(InMemoryStore(), recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", recurrence={"interval_seconds": 240}))).job
    for _ in range(10):  # 23:34 ... 00:10, mostly warm cycles
        clock.now = (await scheduler.get(job.id)).due_at
        await executor.run_cycle(0)
        await executor.run_cycle(0)
    assert recorder.runs[job.id] == 10 and executor.listing.day_listings > 10


async def test_a_job_retried_from_a_past_day_is_found_after_its_hint_blob_closes() -> None:
    """From the hunt of stop 27: a retry of yesterday's finished job writes a touch into the
    current bucket's blob, and the planner found the revived blob only through that hint (the
    partial listing lists today and the past days that were busy at the last full listing).
    Once the hint's blob was done (its bucket closed, nothing pending) its summary no longer
    carried the hint: the retried job's next attempt, waiting on a back-off, started only at
    the next full listing (up to 10 minutes late; I11 allows 2)."""
    store, clock, rec = InMemoryStore(), Clock(), Recorder()
    scheduler, ex = make(store, rec, clock, slots=1, commit_linger_ms=0)
    backoff = RetryPolicy(max_attempts=2, base_delay=240, max_delay=240, jitter=0)
    job = (await scheduler.schedule(JobRequest("flaky", {"fail_times": 1}, delay=60,
                                               retry=backoff))).job
    await scheduler.cancel(job.id)  # yesterday 14:00: final
    clock.now = clock.now.replace(day=23, hour=10, minute=45, second=0)
    await ex.run_cycle(0)  # a full listing: yesterday's blob is summarised done
    clock.now = clock.now.replace(minute=59)
    await ex.run_cycle(0)  # another: yesterday holds nothing, it is not listed again
    clock.advance(10)
    await scheduler.retry(job.id)  # 10:59:10, its touch goes into today's 10:00 blob
    await ex.run_cycle(0)  # found through the hint: attempt 1 fails, the next is due 11:03:10
    assert rec.runs[job.id] == 1
    retry_at = (await scheduler.get(job.id)).due_at
    assert retry_at == clock.now + timedelta(seconds=240)
    clock.now = clock.now.replace(hour=11, minute=0, second=35)  # the 10:00 blob closes
    await ex.run_cycle(0)
    clock.now = retry_at + timedelta(seconds=1)
    await ex.run_cycle(0)
    assert rec.runs[job.id] == 2, (await scheduler.get(job.id)).status
