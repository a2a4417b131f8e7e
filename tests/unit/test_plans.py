"""Batches are ranges of a plan's due work (jobs_core/plans.py): they cover every due job once,
in any order of execution, across a JSON round trip, while other batches start theirs."""

from __future__ import annotations

import json

from jobs_core import Batch, InMemoryStore, JobRequest
from tests.jobs_helpers import Clock, Recorder, make


def _over_json(batch: Batch) -> Batch:
    return Batch.from_dict(json.loads(json.dumps(batch.to_dict())))


async def test_the_batches_of_a_plan_run_every_due_job_once_in_any_order() -> None:
    clock, recorder = Clock(), Recorder()
    scheduler, executor = make(InMemoryStore(), recorder, clock, slots=1, batch_size=200)
    jobs = (await scheduler.schedule_many([JobRequest("echo", {"i": i}) for i in range(500)]))
    cancelled = jobs[250].job.id  # type: ignore[union-attr]
    plan = await executor.plan(0)
    assert [b.count for b in plan.batches] == [200, 200, 100] and plan.due == 500
    assert len({b.plan for b in plan.batches}) == 1
    await scheduler.cancel(cancelled)  # between the plan and the executions
    results = [await executor.execute(_over_json(plan.batches[k])) for k in (1, 2, 0)]
    assert sum(r.started for r in results) == 499 and sum(r.skipped for r in results) == 1
    assert recorder.runs[cancelled] == 0 and sum(recorder.runs.values()) == 499
    assert set(recorder.runs.values()) == {1}


async def test_a_batch_from_another_process_finds_its_range_by_scanning() -> None:
    clock, recorder = Clock(), Recorder()
    store = InMemoryStore()
    scheduler, planner = make(store, recorder, clock, owner="a", slots=1, batch_size=3)
    _, other = make(store, recorder, clock, owner="b", slots=1, batch_size=3)
    await scheduler.schedule_many([JobRequest("echo", {"i": i}) for i in range(7)])
    plan = await planner.plan(0)
    handmade = [Batch(b.slot, b.epoch, b.blob, b.at, b.after, b.through, b.count)
                for b in plan.batches]  # no plan id: the executor scans the blob
    results = [await other.execute(b) for b in handmade]
    assert [r.started for r in results] == [3, 3, 1]
    assert sum(recorder.runs.values()) == 7


async def test_a_plan_of_an_earlier_version_names_its_jobs() -> None:
    clock, recorder = Clock(), Recorder()
    scheduler, executor = make(InMemoryStore(), recorder, clock, slots=1)
    job = (await scheduler.schedule(JobRequest("echo"))).job
    plan = await executor.plan(0)
    old = {"slot": 0, "epoch": plan.epoch, "blob": plan.batches[0].blob, "job_ids": [job.id]}
    result = await executor.execute(Batch.from_dict(old))
    assert result.started == 1 and recorder.runs[job.id] == 1
