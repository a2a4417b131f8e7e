"""Overlap ``allow``: the job of each occurrence is created exactly once, and never lost, even
when the attempt that creates it is retried long after its key was claimed, or after the
schedule was updated (from the review of stop 26). Also what that needs of idempotency keys in
general: a claim whose add was lost is completed by a later request until a purge could have
deleted the job's blob (its bucket ended an hour ago), while a key whose job was purged stays
spent, and two requests racing with one key make one job."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from jobs_core import JobRequest, JobStatus
from jobs_core.errors import (
    IdempotencyKeyExpiredError,
    InvalidIdempotencyKeyError,
    JobNotFoundError,
    TransientStoreError,
    UnknownHandlerError,
)
from jobs_core.ids import ShardKey, bucket_of, parse_job_id
from jobs_core.key_blobs import fingerprint
from jobs_core.model import RetryPolicy
from jobs_core.retention import purge_shards
from jobs_core.store import JobStore
from jobs_core.validation import occurrence_key
from tests.jobs_helpers import Clock, FailingAppend, Recorder, drain, make


async def test_an_occurrence_retried_long_after_its_claim_still_gets_its_job(
        store: JobStore) -> None:
    """The occurrence's key was claimed, its add failed, and the attempt's retry came 15
    minutes later: the scheduler took the claim for one whose job had been purged
    (`IdempotencyKeyExpiredError`, a permanent failure) and the occurrence never ran."""
    clock, rec = Clock(), Recorder()
    flaky = FailingAppend(store, "shards/", b"occurrence:")  # (after the key's claim)
    scheduler, executor = make(flaky, rec, clock, slots=1)
    schedule = (await scheduler.schedule(JobRequest("echo", recurrence={
        "cron": "0 * * * *", "overlap": "allow"},
        retry=RetryPolicy(max_attempts=3, base_delay=900, max_delay=900, jitter=0)))).job
    clock.now = schedule.due_at
    await drain(executor, 1)
    assert (await scheduler.get(schedule.id)).status is JobStatus.RETRYING
    clock.advance(901)
    await drain(executor, 1)
    after = await scheduler.get(schedule.id)
    fired = (await scheduler.list(labels={"schedule_id": schedule.id})).jobs
    assert after.runs == 1 and after.last_error is None, after.last_error
    assert [j.id for j in fired] == [after.result["occurrence_job"]]


async def test_an_occurrence_retried_after_its_schedule_was_updated_is_its_first_job(
        store: JobStore) -> None:
    """The first attempt created the occurrence's job (and, say, crashed before recording
    it); the schedule's payload was then updated: the retry conflicted with the key's first
    payload (`IdempotencyConflictError`, permanent). It now finds that job."""
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    schedule = (await scheduler.schedule(JobRequest("echo", {"v": 1}, recurrence={
        "cron": "* * * * *", "overlap": "allow"}))).job
    first = await executor._fire(schedule)
    updated = await scheduler.update(schedule.id, {"payload": {"v": 2}})
    assert updated.runs == schedule.runs
    assert await executor._fire(updated) == first
    assert (await scheduler.get(first["occurrence_job"])).payload == {"v": 1}


async def test_a_keyed_request_completes_a_lost_add_until_a_purge_could_come(
        store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, _ = make(FailingAppend(store, "shards/", b'"k":"order-9"'), rec, clock, slots=1,
                        bucket_minutes=15)
    request = JobRequest("echo", "p", idempotency_key="order-9")
    with pytest.raises(TransientStoreError):
        await scheduler.schedule(request)  # claimed, not added
    clock.advance(1800)  # (was: "purged" after 10 minutes)
    again = await scheduler.schedule(request)
    assert again.created is False and (await scheduler.get(again.job.id)).payload == "p"

    late = JobRequest("echo", "q", idempotency_key="order-11")
    lost = make(FailingAppend(store, "shards/", b'"k":"order-11"'), rec, clock, slots=1,
                bucket_minutes=15)[0]
    with pytest.raises(TransientStoreError):
        await lost.schedule(late)
    clock.advance(75 * 60)  # its bucket ended more than an hour ago: a purge may have come
    with pytest.raises(IdempotencyKeyExpiredError):
        await lost.schedule(late)


class HeldAdd:
    """A store whose first append of ``marker`` to a shard blob waits until ``release`` is
    set (``held`` is set when it begins waiting, ``added`` when it has landed)."""

    def __init__(self, store: JobStore, marker: bytes) -> None:
        self._store, self.marker = store, marker
        self.held, self.release, self.added = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(self, name: str, data: bytes, **kwargs: object) -> object:
        if name.startswith("shards/") and self.marker in data and not self.held.is_set():
            self.held.set()
            await self.release.wait()
            result = await self._store.append(name, data, **kwargs)  # type: ignore[arg-type]
            self.added.set()
            return result
        return await self._store.append(name, data, **kwargs)  # type: ignore[arg-type]


class AddLandsBetweenReads:
    """The other request's store: after its first read of a shard blob (its lookup of the
    job), the held add lands before it reads again."""

    def __init__(self, store: JobStore, held: HeldAdd) -> None:
        self._store, self.held, self.reads = store, held, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def read(self, name: str, offset: int = 0) -> object:
        if name.startswith("shards/"):
            self.reads += 1
            if self.reads == 2:
                self.held.release.set()
                await self.held.added.wait()
        return await self._store.read(name, offset)  # type: ignore[attr-defined]


async def test_two_requests_racing_with_one_key_make_one_job(store: JobStore) -> None:
    """From review of the first version of this fix: the second request found the claim, not
    the job (the first one's add was still on its way), then the job: it answered 'purged'."""
    clock, rec = Clock(), Recorder()
    held = HeldAdd(store, b'"k":"order-12"')
    first = make(held, rec, clock, slots=1)[0]
    await first.schedule(JobRequest("echo", "other"))  # (the shard's blob exists)
    second = make(AddLandsBetweenReads(store, held), rec, clock, slots=1)[0]
    request = JobRequest("echo", "p", idempotency_key="order-12")
    a = asyncio.ensure_future(first.schedule(request))
    await held.held.wait()  # claimed; its add waits
    b = await second.schedule(request)
    held.release.set()
    assert (await a).job.id == b.job.id and b.created is False
    listed = await second.list(handler="echo")
    assert [j.id for j in listed.jobs if j.payload == "p"] == [b.job.id]


async def test_a_key_whose_job_was_purged_stays_spent(store: JobStore) -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1, bucket_minutes=15)
    request = JobRequest("echo", "p", idempotency_key="order-10")
    job = (await scheduler.schedule(request)).job
    await drain(executor, 1)
    assert (await scheduler.get(job.id)).status is JobStatus.SUCCEEDED
    clock.advance(3 * 3600)
    report = await purge_shards(store, executor.settings, clock.now, timedelta(hours=1))
    assert report.shards_deleted >= 1
    with pytest.raises(IdempotencyKeyExpiredError):  # (the key itself is kept for 7 days)
        await make(store, rec, clock, slots=1, bucket_minutes=15)[0].schedule(request)


async def test_clients_may_not_use_the_occurrence_key_prefix(store: JobStore) -> None:
    scheduler, _ = make(store, Recorder(), Clock(), slots=1)
    with pytest.raises(InvalidIdempotencyKeyError, match="app's own"):
        await scheduler.schedule(JobRequest("echo", idempotency_key="occurrence:j1:0"))


async def test_a_lost_add_completed_in_a_later_bucket_leaves_the_planners_a_hint(
        store: JobStore) -> None:
    """Soak seed 33162 (I11, on 2e1df79): a keyed job claimed at the end of a bucket, whose
    add was lost, was added by its retry 80 minutes later into its claim's blob, of a past
    bucket and a past day, whose summary said done: with no touch hint the planners found it
    only at their next full listing, 540 s late. The add now writes the hint (as
    slot_listing.py always said it did). Here the retry comes 50 minutes later (15-minute
    buckets: within the hour after the claim's bucket ended)."""
    clock, rec = Clock(), Recorder()
    flaky = FailingAppend(store, "shards/", b'"k":"order-13"')
    scheduler, executor = make(flaky, rec, clock, slots=1, bucket_minutes=15)
    clock.now = clock.now.replace(hour=23, minute=59, second=30)
    await scheduler.schedule(JobRequest("echo", "other"))  # (the blob exists)
    await drain(executor, 1)
    request = JobRequest("echo", "p", idempotency_key="order-13")
    with pytest.raises(TransientStoreError):
        await scheduler.schedule(request)  # claimed in this bucket, not added
    clock.advance(50 * 60)  # another bucket, another day
    job = (await scheduler.schedule(request)).job  # completes the add, in the old blob
    home = parse_job_id(job.id)
    current = ShardKey(bucket_of(clock.now, 15), home.key.slot)
    assert home.key.bucket < current.bucket
    hint = (await store.read(current.blob(0))).data  # type: ignore[attr-defined]
    assert b'"op":"touch"' in hint and home.name.encode() in hint
    clock.advance(1)
    await executor.run_cycle(0)
    assert rec.runs.get(job.id) == 1


async def test_an_occurrence_claimed_by_the_previous_release_is_found(store: JobStore) -> None:
    """From review: the previous release claimed occurrence keys with the fingerprint of the
    schedule's handler and payload; an attempt re-run across the upgrade conflicted with its
    own claim (a permanent failure: the occurrence was lost)."""
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1)
    schedule = (await scheduler.schedule(JobRequest("echo", {"v": 1}, recurrence={
        "cron": "* * * * *", "overlap": "allow"}))).job
    created = (await scheduler.schedule(JobRequest("echo", {"v": 1}))).job  # (its job then)
    await scheduler.keys.claim(occurrence_key(schedule.id, schedule.runs),
                               fingerprint("echo", {"v": 1}), created.id, clock.now)
    assert (await executor._fire(schedule))["occurrence_job"] == created.id


async def test_a_key_whose_moved_job_was_purged_stays_spent(store: JobStore) -> None:
    """Reasoned in the review of stop 26: a keyed job due in a later bucket is run now and
    moved out of the blob its id names (as an evacuation does), runs, and its new blob is
    purged while the id's own bucket is still young. A retry with the key found no job, took
    the claim for one whose add was lost, and answered 200 with a `scheduled` job that GET
    answers 404 for. The id's blob says the job moved: it existed, so the key is spent."""
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1, bucket_minutes=15)
    request = JobRequest("echo", "p", idempotency_key="order-14", delay=6 * 3600)
    job = (await scheduler.schedule(request)).job
    home = parse_job_id(job.id)
    job = await scheduler.run_now(job.id)
    assert await scheduler.mover.move(home.name, [job]) == 1
    await drain(executor, 1)
    assert (await scheduler.get(job.id)).status is JobStatus.SUCCEEDED
    # the run-now's touch hint keeps the new blob until the home's bucket begins; then the
    # new blob's bucket ended hours ago, the home's bucket not even an hour ago
    clock.now = home.key.bucket + timedelta(minutes=5)
    report = await purge_shards(store, executor.settings, clock.now, timedelta(hours=1))
    assert report.shards_deleted >= 1 and (await store.stat(home.name)).size > 0
    with pytest.raises(JobNotFoundError):
        await scheduler.get(job.id)
    with pytest.raises(IdempotencyKeyExpiredError):
        await make(store, rec, clock, slots=1, bucket_minutes=15)[0].schedule(request)


async def test_a_key_reused_after_its_window_makes_a_job_in_the_same_blob(
        store: JobStore) -> None:
    """From review (stop 27): the key's claim expired, and the key's new job was due in the
    same future blob as its first one. The blob dropped the add (it deduplicated keys itself,
    as before the key index), and the request answered 201 with a job that GET answers 404
    for, and that never ran."""
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=1, retention_days=1)  # key window: 1 day
    request = JobRequest("echo", "p", idempotency_key="order-77",
                         due_at=clock.now + timedelta(days=3))
    first = (await scheduler.schedule(request)).job
    clock.advance(25 * 3600)  # the key's claim no longer counts: a new job for the key
    second = await scheduler.schedule(request)
    assert second.created and second.job.id != first.id
    assert parse_job_id(second.job.id).name == parse_job_id(first.id).name  # the same blob
    assert (await scheduler.get(second.job.id)).status is JobStatus.SCHEDULED
    clock.now = request.due_at + timedelta(seconds=1)
    await drain(executor, 1)
    assert rec.runs == {first.id: 1, second.job.id: 1}


async def test_a_key_of_a_version_1_job_in_the_blob_answers_that_job(store: JobStore) -> None:
    """A blob written before the key index holds a job with the key, which the index never
    heard of: the blob's first add of the key still wins, and the request answers that job,
    not one that was never added."""
    clock, rec = Clock(), Recorder()
    scheduler, _ = make(store, rec, clock, slots=1)
    request = JobRequest("echo", "p", idempotency_key="order-78")
    bucket = ShardKey(bucket_of(clock.now, 60), 0)
    old_id = f"j{bucket.bucket:%Y%m%dT%H%M}-s000-0000-00000000000000aa"
    at = clock.now.isoformat()
    await store.append(bucket.blob(0), f'\n{{"v":1,"op":"add","id":"{old_id}","h":"echo",'
                       f'"due":"{at}","at":"{at}","p":"p","k":"order-78"}}\n'.encode(),
                       create_metadata={})
    again = await scheduler.schedule(request)
    assert again.job.id == old_id and again.created is False


async def test_an_occurrence_carries_the_schedules_labels_and_queue_as_stored(
        store: JobStore) -> None:
    """From review of stop 28: each occurrence checked the schedule's stored labels and
    notify queue again, so a schedule stored under an earlier rule (a label key or queue with
    a trailing newline, accepted before whole-value patterns) lost every occurrence for good
    (a permanent validation error). Handler and payload are still checked."""
    clock, rec = Clock(), Recorder()
    scheduler, _ = make(store, rec, clock, slots=1)
    schedule = (await scheduler.schedule(JobRequest("echo", {}, recurrence={
        "cron": "* * * * *", "overlap": "allow"}))).job
    fired = await scheduler.schedule_occurrence(JobRequest(
        "echo", {"v": 1}, labels={"team\n": "a"}, notify="orders-eu\n"), schedule.id, 1)
    job = await scheduler.get(fired.job.id)
    assert (job.labels, job.notify, job.payload) == ({"team\n": "a"}, "orders-eu\n", {"v": 1})
    with pytest.raises(UnknownHandlerError):
        await scheduler.schedule_occurrence(JobRequest("nope", {}), schedule.id, 2)
