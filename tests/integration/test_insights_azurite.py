"""The read endpoints' domain on Azurite: real block counts, and the storage requests one
/api/shards page, one /api/timeline call and one history cost (counted by RequestCounter)."""

from __future__ import annotations

from datetime import timedelta

from jobs_core import JobRequest, RetryPolicy
from jobs_core.blob_store import AzureBlobStore
from jobs_core.job_history import read_job_history
from jobs_core.shard_overview import ShardOverview
from jobs_core.timeline import TimelineReader
from tests.jobs_helpers import Clock, Recorder, drain, make

FAST = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0, jitter=0)


async def test_request_costs_on_azurite(azurite_store: AzureBlobStore) -> None:
    store, clock, recorder = azurite_store, Clock(), Recorder()
    counter = store.counter
    assert counter is not None
    scheduler, executor = make(store, recorder, clock, slots=4)
    for hours in range(3):  # 3 buckets x 4 slots, 100 jobs each bucket
        await scheduler.schedule_many([JobRequest("echo", i, delay=hours * 3600)
                                       for i in range(100)])
    doomed = (await scheduler.schedule(JobRequest("always_fails", retry=FAST))).job
    await drain(executor, 4)
    clock.advance(120)
    overview = ShardOverview(store, scheduler.settings)
    timeline = TimelineReader(store, scheduler.settings, clock=clock)

    counter.reset()
    cold = await overview.page(limit=500)
    cold_cost = counter.snapshot()
    counter.reset()
    warm = await overview.page(limit=500)
    warm_cost = counter.snapshot()
    counter.reset()
    line = await timeline.timeline(60)
    line_cold = counter.snapshot()
    counter.reset()
    await timeline.timeline(60)
    line_warm = counter.snapshot()
    counter.reset()
    history = await read_job_history(store, doomed.id)
    history_cost = counter.snapshot()
    print(f"\n/api/shards page of {len(cold.shards)} rows: cold {cold_cost}, warm {warm_cost}"
          f"\n/api/timeline 60 min ({line.shards_read} blobs): cold {line_cold}, "
          f"warm {line_warm}\nhistory: {history_cost}")

    rows = len(cold.shards)
    slots = len({row.slot for row in cold.shards})
    logs = sum(row.counts_source == "log" for row in cold.shards)
    # list + one HEAD per slot (claim) and per row (block count) + one GET per row read
    assert cold_cost == {"list": 1, "get_properties": slots + rows, "read": logs}
    assert warm_cost == {"list": 1, "get_properties": slots}
    assert [r.counts for r in warm.shards] == [r.counts for r in cold.shards]
    for row in cold.shards:
        stat = await store.stat(row.name)
        assert (row.blocks, row.size) == (stat.block_count, stat.size)
        assert (row.claim.owner, row.claim.epoch) == ("exec-a", 1)
    assert sum(sum(r.counts.values()) for r in cold.shards) == 301
    assert sum(r.counts["succeeded"] for r in cold.shards) == 100  # the current bucket ran
    assert sum(r.counts["failed"] for r in cold.shards) == 1
    assert line_cold == {"list": 1, "read": line.shards_read}
    assert line_warm == {"list": 1}
    assert sum(p.due for p in line.points) == 101
    assert sum(p.finished for p in line.points) == 101
    assert history_cost == {"read": 1}
    assert [r.type for r in history.records] == ["add", "start", "fail", "start", "fail"]
    assert history.records[-1].error is not None
    assert clock.now - line.start < timedelta(hours=1)
