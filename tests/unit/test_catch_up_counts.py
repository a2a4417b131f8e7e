"""Which occurrences of a catch-up recurrence (``catch_up_max``) count as missed once a run
finished: those after its occurrence's own due time, even when a retry's back-off or a
reschedule moved that run later (``Job.due_set_at`` keeps where the count starts); none of
those a resume or a new recurrence skipped on purpose. From the second review of
``due_set_at`` (stop 33): a reschedule of an overdue occurrence to a later time, and any
retry, dropped occurrences that had neither run nor been skipped."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs_core import JobContext, JobRequest, transitions
from jobs_core.memory_store import InMemoryStore
from jobs_core.recurrence import parse_recurrence
from tests.jobs_helpers import Clock, Recorder, drain, make

SLOTS = 4
HOURLY = {"cron": "0 * * * *", "catch_up_max": 10}


async def hourly_down_until_half_past(hours: int) -> tuple:
    """An hourly catch-up job (first due 15:00) whose executors were down until ``hours``
    and a half hours after it."""
    store, rec, clock = InMemoryStore(), Recorder(), Clock()
    scheduler, executor = make(store, rec, clock)
    job = (await scheduler.schedule(JobRequest("echo", recurrence=HOURLY))).job
    clock.now = job.due_at + timedelta(hours=hours, minutes=30)
    return scheduler, executor, rec, clock, job


@pytest.mark.parametrize(("moved_to", "missed"), [
    (timedelta(hours=1, minutes=30), 3),  # 16:30, still in the past: 16:00, 17:00, 18:00
    (timedelta(hours=4, minutes=30), 4),  # 19:30, in the future: and 19:00
])
async def test_an_overdue_catch_up_occurrence_rescheduled_later_keeps_the_missed_ones(
        moved_to: timedelta, missed: int) -> None:
    """Down from the 15:00 occurrence to 18:30; the caller moves it to 16:30 (or 19:30). The
    occurrences missed since 15:00 had neither run nor been skipped, and the README promises
    them; catch-up counted from the later of the new due time and 15:00, and dropped 16:00
    (or all of them)."""
    scheduler, executor, rec, clock, job = await hourly_down_until_half_past(3)
    await scheduler.reschedule(job.id, (job.due_at + moved_to).isoformat())
    clock.now = max(clock.now, job.due_at + moved_to) + timedelta(seconds=0.5)
    await drain(executor, SLOTS)
    assert rec.runs[job.id] == 1 + missed, "the occurrence and those missed after 15:00"
    after = await scheduler.get(job.id)
    assert after.due_at == job.due_at + timedelta(hours=1 + missed)
    assert after.due_set_at is None


async def test_a_second_control_keeps_the_missed_ones_the_first_kept() -> None:
    """A run-now after a reschedule of the overdue occurrence: the count still starts at
    15:00 (it started at the first control's new due time)."""
    scheduler, executor, rec, clock, job = await hourly_down_until_half_past(3)
    await scheduler.reschedule(job.id, (job.due_at + timedelta(hours=4, minutes=30)).isoformat())
    clock.advance(60)
    await scheduler.run_now(job.id)
    clock.advance(0.5)
    await drain(executor, SLOTS)
    assert rec.runs[job.id] == 4, "15:00 (run now) and 16:00, 17:00, 18:00"


@pytest.mark.parametrize("down_hours", [0, 3])
async def test_a_catch_up_occurrence_whose_first_attempt_fails_keeps_the_missed_ones(
        down_hours: int) -> None:
    """The retry's back-off (or the downtime before the first attempt) passes later
    occurrences; the failed attempt set the due time to the retry's, and catch-up counted
    from it: the missed ones were dropped (also on main before stop 33)."""
    store, rec, clock = InMemoryStore(), Recorder(), Clock()

    @rec.registry.handler("first_attempt_fails")
    async def first_attempt_fails(ctx: JobContext) -> None:
        rec.runs[ctx.job_id] += 1
        if (ctx.run, ctx.attempt) == (0, 1):
            raise RuntimeError("the first attempt of the first occurrence fails")

    scheduler, executor = make(store, rec, clock)
    job = (await scheduler.schedule(JobRequest(
        "first_attempt_fails", recurrence=HOURLY,
        retry={"max_attempts": 3, "base_delay": 4000, "max_delay": 4000, "jitter": 0}))).job
    clock.now = job.due_at + timedelta(hours=down_hours, seconds=1)
    await drain(executor, SLOTS)  # the first attempt fails; the retry is due 4000 s later
    failed = await scheduler.get(job.id)
    assert failed.attempts == 1 and failed.due_at > job.due_at + timedelta(hours=1)
    assert failed.due_set_at == job.due_at, "the count starts at the occurrence's due time"
    for _ in range(3 + down_hours):
        clock.now = max(clock.now, failed.due_at) + timedelta(seconds=1)
        await drain(executor, SLOTS)
    got = await scheduler.get(job.id)
    # the occurrence (2 attempts) and every hour it passed: down_hours + 1 of them
    assert got.runs == 2 + down_hours, f"runs {got.runs}, next due {got.due_at}"
    assert rec.runs[job.id] == 3 + down_hours


async def test_a_resume_skips_the_paused_occurrences_even_after_a_control_kept_missed_ones(
        ) -> None:
    """A resume whose occurrence passed while paused waits for the next one from now: the
    ones before are skipped on purpose ("occurrences missed while paused are skipped"), so
    the count a reschedule kept (from 15:00) ends there; else the first run after the
    resume caught up on the hours the job was paused."""
    scheduler, executor, rec, clock, job = await hourly_down_until_half_past(3)
    await scheduler.reschedule(job.id, (job.due_at + timedelta(hours=4, minutes=30)).isoformat())
    await scheduler.pause(job.id)
    clock.now = job.due_at + timedelta(hours=7, minutes=10)  # 22:10
    resumed = await scheduler.resume(job.id)
    assert resumed.due_at == job.due_at + timedelta(hours=8) and resumed.due_set_at is None
    clock.now = resumed.due_at + timedelta(seconds=0.5)
    await drain(executor, SLOTS)
    assert rec.runs[job.id] == 1


def test_a_new_recurrence_starts_the_count_afresh_and_other_updates_keep_it() -> None:
    """A PATCH of the recurrence waits for the new one's next occurrence (the due time is its
    grid's again); a PATCH of the payload keeps the count a control started."""
    from jobs_core.model import Job
    from tests.jobs_helpers import T0
    job = Job(id="j", handler="echo", due_at=T0 - timedelta(hours=3), created_at=T0,
              recurrence=parse_recurrence(HOURLY))
    moved = transitions.reschedule(job, T0 + timedelta(hours=1), T0)
    assert moved.due_set_at == job.due_at
    kept = transitions.update(moved, {"payload": {"n": 2}}, moved.due_at, T0)
    assert kept.due_set_at == job.due_at
    other = parse_recurrence({"cron": "30 * * * *", "catch_up_max": 10})
    fresh = transitions.update(moved, {"recurrence": other}, T0 + timedelta(minutes=30), T0)
    assert fresh.due_set_at is None
