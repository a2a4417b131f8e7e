"""A recurring job for years of simulated time: its blobs stay far below the block limit, old
blobs are purged, and GET stays a constant number of reads.

    python -m tests.sim.long_recurrence --days 3650 --every 60     # 10 years at one run a minute
    python -m tests.sim.long_recurrence --days 3650 --every 3600   # 10 years, hourly (faster)

Runs one scheduler and one executor over the in-memory store on a fake clock (no sleeping), with
the default settings (a waiting job leaves a blob a day after its bucket ended) and the daily
retention purge (7 days). Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from datetime import timedelta

from jobs_core import InMemoryStore, JobRequest, JobStatus
from jobs_core.retention import purge_shards
from tests.jobs_helpers import Clock, Recorder, make


@dataclass
class Summary:
    days: float
    every_seconds: float
    runs: int
    expected_runs: int
    max_blocks_any_blob: int
    blobs_alive_at_end: int
    blobs_purged: int
    home_blocks_at_end: int
    get_reads_at_end: int
    status: str
    seconds: float


async def run(days: float, every: float) -> Summary:
    began = time.perf_counter()
    clock, recorder = Clock(), Recorder()
    store = InMemoryStore()
    # no group-commit linger: one writer, and the fake clock makes a real sleep pure waste
    scheduler, executor = make(store, recorder, clock, slots=1, commit_linger_ms=0)
    job = (await scheduler.schedule(JobRequest(
        "echo", {"tick": 1}, recurrence={"interval_seconds": every}))).job
    end = clock.now + timedelta(days=days)
    next_purge = clock.now + timedelta(days=1)
    max_blocks = purged = 0
    while clock.now < end:
        clock.now = max(clock.now, (await scheduler.get(job.id)).due_at)
        await executor.run_cycle(0)
        if clock.now >= next_purge:
            report = await purge_shards(store, executor.settings, clock.now, timedelta(days=7))
            purged += report.shards_deleted
            next_purge += timedelta(days=1)
            max_blocks = max([max_blocks] + [b.blocks for b in store._blobs.values()])
        else:
            await executor.run_cycle(0)  # the cycle after a run moves the job if it is time
    max_blocks = max([max_blocks] + [b.blocks for b in store._blobs.values()])
    home = store._blobs[_home(job.id)]
    reads_before = store.requests.get("read", 0)
    fresh, _ = make(store, recorder, clock, slots=1)
    current = await fresh.get(job.id)
    shards = [n for n in store._blobs if n.startswith("shards/")]
    return Summary(days, every, recorder.runs[job.id], int(days * 86_400 // every), max_blocks,
                   len(shards), purged, home.blocks, store.requests.get("read", 0) - reads_before,
                   current.status.value if current.status is JobStatus.SCHEDULED else "stuck",
                   round(time.perf_counter() - began, 1))


def _home(job_id: str) -> str:
    from jobs_core.ids import parse_job_id
    return parse_job_id(job_id).name


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.long_recurrence")
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--every", type=float, default=60, help="seconds between runs")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.days, args.every)).__dict__, indent=1))


if __name__ == "__main__":
    main()
