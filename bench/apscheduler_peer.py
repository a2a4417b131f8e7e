"""Figure 9's peer: APScheduler 3 with its SQLAlchemy job store on SQLite and 20 threads.

The workload is figure 9's: ``jobs`` no-op jobs, all due at the same instant ``lead_s`` after
scheduling starts. It runs in its own process (``python -m bench.apscheduler_peer --jobs N``,
JSON on stdout) so neither scheduler shares an interpreter, a GIL or a thread pool with the
other. The configuration is the fair one for a drain: ``misfire_grace_time=None`` (a late job
still runs; the default of 1 s would drop most of them), ``coalesce=False``, a persistent
store (the durable comparison: a job survives a restart), ``max_instances`` irrelevant (one
run per job).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

THREADS = 20


def _noop() -> None:
    return None


def run(jobs: int, lead_s: float) -> dict[str, Any]:
    from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    with tempfile.TemporaryDirectory(prefix="bench-aps-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'jobs.sqlite'}"
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=url)},
            executors={"default": ThreadPoolExecutor(THREADS)},
            job_defaults={"misfire_grace_time": None, "coalesce": False}, timezone=UTC)
        finished: list[float] = []
        done = threading.Event()
        lock = threading.Lock()

        def executed(event: JobExecutionEvent) -> None:
            with lock:  # a no-op: its end is its start
                finished.append(time.perf_counter())
                if len(finished) >= jobs:
                    done.set()

        scheduler.add_listener(executed, EVENT_JOB_EXECUTED)
        scheduler.start(paused=True)
        due = datetime.now(UTC) + timedelta(seconds=lead_s)
        began = time.perf_counter()
        for i in range(jobs):
            scheduler.add_job(_noop, "date", run_date=due, id=f"j{i}")
        schedule_s = time.perf_counter() - began
        scheduled_late = datetime.now(UTC) > due
        scheduler.resume()
        # the jobs are ready at their due time, or when the last one was added if that was
        # later (the scheduler was paused while adding): lateness counts from then
        ready = time.perf_counter() + max(0.0, (due - datetime.now(UTC)).total_seconds())
        done.wait(timeout=max(0.0, ready - time.perf_counter()) + 600)
        scheduler.shutdown(wait=True)
    lateness = [t - ready for t in finished]
    ran = len(finished)
    drain_s = (max(finished) - ready) if finished else None
    return {"jobs": jobs, "ran": ran, "threads": THREADS, "store": "SQLAlchemy + SQLite file",
            "schedule_s": schedule_s, "schedule_per_s": jobs / schedule_s if schedule_s else None,
            "scheduled_after_due": scheduled_late,
            "drain_s": drain_s, "drain_per_s": ran / drain_s if drain_s else None,
            "lateness_samples": lateness}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apscheduler_peer")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--lead", type=float, default=5.0,
                        help="seconds from the start of scheduling to the due time")
    args = parser.parse_args()
    print(json.dumps(run(args.jobs, args.lead)))


if __name__ == "__main__":
    main()
