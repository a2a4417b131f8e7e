"""ShardOverview (GET /api/shards) on the in-memory store: rows, counts, claims, paging, cost."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from jobs_core import (
    InMemoryStore,
    JobRequest,
    JobScheduler,
    JobsSettings,
    JobStatus,
    RetryPolicy,
    records,
)
from jobs_core.errors import InvalidCursorError, JobValidationError
from jobs_core.ids import parse_job_id, parse_shard_name
from jobs_core.shard_overview import ShardOverview, decode_cursor, encode_cursor
from tests.jobs_helpers import T0, Clock, Recorder, drain, make

HOUR = timedelta(hours=1)
NO_RETRY = RetryPolicy(max_attempts=2, base_delay=600, max_delay=600, jitter=0)


def zero() -> dict[str, int]:
    return {s.value: 0 for s in JobStatus}


async def test_rows_are_newest_bucket_first_with_exact_counts_blocks_and_claim() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, executor = make(store, recorder, clock, slots=2)
    now_ids = [(await scheduler.schedule(JobRequest("echo", i))).job.id for i in range(3)]
    flaky = (await scheduler.schedule(JobRequest("flaky", {"fail_times": 1},
                                                 retry=NO_RETRY))).job.id
    later = [(await scheduler.schedule(JobRequest("echo", i, delay=2 * 3600))).job.id
             for i in range(2)]
    await scheduler.cancel(later[0])
    await drain(executor, 2)  # the echo jobs succeed; flaky waits 600 s for its retry

    page = await ShardOverview(store, scheduler.settings).page()

    assert page.next_cursor is None
    buckets = [row.bucket for row in page.shards]
    assert buckets == sorted(buckets, reverse=True)
    assert {row.bucket for row in page.shards} == {T0, T0 + 2 * HOUR}
    names = {parse_job_id(i).name for i in now_ids + later + [flaky]}
    assert {row.name for row in page.shards} == names
    total = zero()
    for row in page.shards:
        shard = parse_shard_name(row.name)
        assert shard is not None
        assert (row.slot, row.bucket, row.index) == (shard.key.slot, shard.key.bucket, 0)
        assert row.blocks == (await store.stat(row.name)).block_count
        assert row.size == (await store.stat(row.name)).size
        assert row.pending == sum(row.counts[s] for s in ("scheduled", "running", "retrying"))
        for status, n in row.counts.items():
            total[status] += n
        assert (row.claim.owner, row.claim.epoch) == ("exec-a", 1)  # drain planned both
        assert row.claim.expires is not None and row.claim.expires > clock.now
    assert total == {**zero(), "succeeded": 3, "retrying": 1, "scheduled": 1, "cancelled": 1}
    flaky_row = next(r for r in page.shards if r.name == parse_job_id(flaky).name)
    assert flaky_row.next_due == clock.now + timedelta(seconds=600)


async def test_a_current_summary_spares_the_log_read() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, executor = make(store, recorder, clock, slots=1)
    ids = [(await scheduler.schedule(JobRequest("echo", i))).job.id for i in range(4)]
    await scheduler.cancel((await scheduler.schedule(JobRequest("echo", delay=60))).job.id)
    await drain(executor, 1)  # the last plan finds nothing due and writes a current summary
    overview = ShardOverview(store, scheduler.settings)
    store.requests.clear()
    [row] = (await overview.page()).shards
    assert row.counts_source == "summary"
    assert row.counts == {**zero(), "succeeded": 4, "cancelled": 1}
    assert (row.pending, row.next_due) == (0, None)
    assert "read" not in store.requests
    assert row.name == parse_job_id(ids[0]).name


async def test_paging_with_cursor_filters_and_limits() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler = JobScheduler(store, recorder.registry, JobsSettings(slots=3), clock=clock,
                             rng=random.Random(7))  # seeded: every slot gets jobs
    for hours in range(4):
        await scheduler.schedule_many([JobRequest("echo", i, delay=hours * 3600 + 1)
                                       for i in range(30)])
    overview = ShardOverview(store, scheduler.settings)
    everything = (await overview.page(limit=500)).shards
    assert len(everything) == 12  # 4 buckets x 3 slots
    order = [(-r.bucket.timestamp(), r.slot, r.index) for r in everything]
    assert order == sorted(order)
    seen, cursor = [], None
    while True:
        page = await overview.page(limit=5, cursor=cursor)
        seen += [row.name for row in page.shards]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [row.name for row in everything]
    only = await overview.page(slot=1, bucket_from=T0 + HOUR, bucket_to=T0 + 2 * HOUR)
    assert [(r.slot, r.bucket) for r in only.shards] == [(1, T0 + 2 * HOUR), (1, T0 + HOUR)]
    inside = await overview.page(slot=1, bucket_from=T0 + 1.5 * HOUR,
                                 bucket_to=T0 + 2.5 * HOUR)  # times inside those buckets
    assert [r.bucket for r in inside.shards] == [T0 + 2 * HOUR, T0 + HOUR]
    assert sum(sum(r.counts.values()) for r in everything) == 120


async def test_bad_arguments_raise_validation_errors_naming_the_field() -> None:
    overview = ShardOverview(InMemoryStore())
    cases = [({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"slot": 4}, "slot"),
             ({"bucket_from": T0 + HOUR, "bucket_to": T0}, "bucket_to"),
             ({"cursor": "not-a-cursor"}, "cursor"),
             ({"cursor": encode_cursor("claims/s000")}, "cursor")]
    for kwargs, field in cases:
        with pytest.raises(JobValidationError) as caught:
            await overview.page(**kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field, kwargs
    with pytest.raises(InvalidCursorError):
        decode_cursor("!!!")
    assert decode_cursor(encode_cursor("shards/s002/20261122T1400-0001.jsonl")).index == 1


async def test_cost_of_a_page_cold_and_warm() -> None:
    store, clock, recorder = InMemoryStore(), Clock(), Recorder()
    scheduler, executor = make(store, recorder, clock, slots=4)
    for hours in range(5):
        await scheduler.schedule_many([JobRequest("echo", i, delay=hours * 3600)
                                       for i in range(40)])
    await executor.run_cycle(0)
    overview = ShardOverview(store, scheduler.settings)
    store.requests.clear()
    cold = await overview.page(limit=8)
    slots = len({r.slot for r in cold.shards})
    assert len(cold.shards) == 8
    # 1 listing, 1 claim HEAD per slot, 1 HEAD per row for its block count, 1 log read per row
    assert store.requests == {"list": 1, "read_claim": slots, "stat": 8, "read": 8}
    store.requests.clear()
    warm = await overview.page(limit=8)
    assert [r.counts for r in warm.shards] == [r.counts for r in cold.shards]
    assert store.requests == {"list": 1, "read_claim": slots}  # nothing appended: no re-read
    # one blob grows: only that blob is looked at again (HEAD + a tail read)
    target = cold.shards[0].name
    job_id = next(iter((await scheduler.cache.refresh(target)).jobs))
    await scheduler.cancel(job_id)
    store.requests.clear()
    after = await overview.page(limit=8)
    assert store.requests == {"list": 1, "read_claim": slots, "stat": 1, "read": 1}
    grown = next(r for r in after.shards if r.name == target)
    assert grown.counts["cancelled"] == 1 and grown.blocks == cold.shards[0].blocks + 1


async def test_a_record_of_a_newer_format_marks_the_row_unreadable() -> None:
    store = InMemoryStore()
    name = "shards/s000/20261122T1400-0000.jsonl"
    await store.append(name, records.encode_block([{"v": 99, "op": "add", "id": "x"}]),
                       create_metadata={})
    [row] = (await ShardOverview(store).page()).shards
    assert row.counts_source == "unreadable" and row.error and "version 99" in row.error
    assert row.counts == zero() and row.blocks == 1
    assert row.claim.owner is None and row.claim.epoch is None
