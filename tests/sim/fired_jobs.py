"""Overlap ``allow`` at the end of a run: each occurrence of such a schedule runs as a job of
its own, created by the schedule's attempt with the idempotency key ``occurrence:<id>:<run>``.
No client ever saw those jobs, so the oracle finds them in the log (every blob, also those
retention purged) and checks them there:

- I5: one job per occurrence, whatever crash re-ran the attempt that created it;
- I1: each of them is final at the end (but those created in the run's last 10 minutes);
- I6 and I7: each one's creation counts as a run of its schedule (``check_final`` adds it to
  the schedule's invocations), so a schedule cancelled or paused with 200 creates none after
  the answer, one created after an update answered 200 has its payload, and the schedule
  keeps creating them.

Their runs are ordinary invocations, so I2, I3 and I11 check them like any other job's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from jobs_core.errors import JobNotFoundError, JobsError
from jobs_core.model import Job
from jobs_core.shard_state import ShardState

from .facts import EPOCH, Invocation, world_time

if TYPE_CHECKING:
    from .world import Process, World

KEY_PREFIX = "occurrence:"
SETTLE = timedelta(minutes=10)  # a job created this close to the end may not have run yet


async def log_blobs(final: Process, world: World) -> list[tuple[str, bytes, bool]]:
    """Every shard blob of the run: (name, bytes, purged), the purged ones as they were."""
    blobs = [(name, data, True) for name, data in world.storage.purged]
    for info in await final.store.list("shards/"):
        blobs.append((info.name, (await final.store.read(info.name)).data, False))
    return blobs


async def check_fired(final: Process, world: World, blobs: list[tuple[str, bytes, bool]],
                      schedules: dict[str, Job],
                      violate: Callable[[str, str], None]) -> dict[str, list[Invocation]]:
    """Checks the jobs that schedules with overlap ``allow`` created (see the module doc;
    ``blobs``: ``log_blobs``; ``schedules``: the accepted jobs as read at the end); returns
    each schedule's runs: the creation of each occurrence's job, as an invocation of the
    schedule."""
    fired: dict[str, Job] = {}
    live: set[str] = set()  # seen in a blob that was not purged
    for name, data, purged in blobs:
        state = ShardState(name, keep_finished=True)
        state.feed_lines(data[:data.rfind(b"\n") + 1].split(b"\n"))
        for job in state.jobs.values():
            if "schedule_id" in (job.labels or {}):
                fired.setdefault(job.id, job)
                if not purged:
                    live.add(job.id)
    by_schedule: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for job in fired.values():
        by_schedule[(job.labels or {})["schedule_id"]][job.idempotency_key or ""].add(job.id)
    occurrences: dict[str, list[Invocation]] = defaultdict(list)
    for schedule, by_key in sorted(by_schedule.items()):
        for key, ids in sorted(by_key.items()):
            prefix, _, run = key.rpartition(":")
            if prefix != f"{KEY_PREFIX}{schedule}" or not run.isdigit():
                violate("I5", f"{schedule} created {sorted(ids)} with the key {key!r}, not "
                              f"{KEY_PREFIX}{schedule}:<run>")
                continue
            if len(ids) > 1:
                violate("I5", f"occurrence {key} was created as {len(ids)} jobs: {sorted(ids)}")
            first = min((fired[i] for i in ids), key=lambda j: j.created_at)
            at = (first.created_at - EPOCH).total_seconds()
            occurrences[schedule].append(Invocation(
                schedule, int(run), 1, first.created_at, "log", at, at, ok=True,
                handler=first.handler, payload=first.payload))
        # independent of the keys: each occurrence creates at most one job (its runs, and
        # one more whose attempt may have been cut short by a cancel)
        job = schedules.get(schedule)
        if job is not None and len(by_key) > job.runs + 1:
            violate("I5", f"{schedule} created {len(by_key)} occurrence jobs in {job.runs} "
                          "occurrences")
    settled = world_time(world.now()) - SETTLE
    for job_id, job in sorted(fired.items()):
        if job.created_at >= settled:
            continue
        try:
            now = await final.scheduler.get(job_id)
        except JobNotFoundError:
            if job_id in live:
                violate("I1", f"occurrence job {job_id} ({job.idempotency_key}) is gone")
            continue  # (retention purged its blob: it was final)
        except JobsError as exc:
            violate("I1", f"occurrence job {job_id} unreadable at the end: {exc}")
            continue
        if not now.status.is_final:
            violate("I1", f"occurrence job {job_id} ({job.idempotency_key}, created "
                          f"{job.created_at:%d %H:%M:%S}) is {now.status.value} at the end")
    return occurrences
