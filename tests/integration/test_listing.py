"""``JobScheduler.list`` (GET /api/jobs) answers every job it matches, page after page, while
jobs move (from the hunt of stop 28), on the in-memory store and on Azurite alike."""

from __future__ import annotations

from datetime import timedelta

from jobs_core import JobRequest
from jobs_core.ids import parse_job_id
from tests.jobs_helpers import Clock, Recorder, make


async def test_paging_never_skips_a_job_when_another_moves_out_of_its_blob(
        store: object) -> None:
    """The cursor was a position in the blob's jobs: a job carried or evacuated out of it
    between two pages shifted the positions, and a job that never changed was not listed."""
    clock, rec = Clock(), Recorder()
    scheduler, _ = make(store, rec, clock, slots=1)
    ids = [(await scheduler.schedule(JobRequest("echo", {"n": n}, delay=300))).job.id
           for n in range(6)]
    blob = parse_job_id(ids[0]).name
    page = await scheduler.list(limit=2)
    seen = [job.id for job in page.jobs]
    state = await scheduler.cache.refresh(blob)
    movers = [job_id for job_id in sorted(ids) if job_id in seen][:1] + \
        [job_id for job_id in sorted(ids) if job_id not in seen][:1]
    moved = await scheduler.mover.move(blob, [state.jobs[job_id] for job_id in movers])
    assert moved
    cursor = page.next_cursor
    while cursor:
        page = await scheduler.list(limit=2, cursor=cursor)
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
    stayed = set(ids) - set(movers)
    assert stayed <= set(seen), sorted(stayed - set(seen))
    assert all(seen.count(job_id) == 1 for job_id in stayed)


async def test_due_to_finds_a_job_rescheduled_earlier_in_a_later_blob(store: object) -> None:
    """A job lives in the blob of the bucket it was first due in: rescheduled from two days
    ahead to ten minutes ahead, it was missing from ``due_to`` an hour ahead."""
    clock, rec = Clock(), Recorder()
    scheduler, _ = make(store, rec, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo", {}, delay=2 * 86_400))).job
    other = (await scheduler.schedule(JobRequest("echo", {}, delay=3 * 86_400))).job
    await scheduler.reschedule(job.id, clock.now + timedelta(minutes=10))
    page = await scheduler.list(due_to=clock.now + timedelta(hours=1))
    assert [j.id for j in page.jobs] == [job.id]
    later = await scheduler.list(due_from=clock.now + timedelta(hours=1))
    assert [j.id for j in later.jobs] == [other.id]


async def test_due_to_paging_still_follows_the_hints_of_blobs_a_page_passed(
        store: object) -> None:
    """From review of the fix above: the touch hints were gathered afresh on each page, and
    the blobs before the cursor were not read, so the blob a hint named was skipped once the
    page holding the hint had passed."""
    clock, rec = Clock(), Recorder()
    scheduler, _ = make(store, rec, clock, slots=1)
    far = (await scheduler.schedule(JobRequest("echo", {}, delay=2 * 86_400))).job
    await scheduler.reschedule(far.id, clock.now + timedelta(minutes=10))
    near = [(await scheduler.schedule(JobRequest("echo", {"n": n}, delay=60))).job
            for n in range(2)]
    due_to = clock.now + timedelta(hours=1)
    whole = await scheduler.list(due_to=due_to)
    assert {j.id for j in whole.jobs} == {far.id, *(j.id for j in near)}
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await scheduler.list(due_to=due_to, limit=1, cursor=cursor)
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(j.id for j in whole.jobs)
