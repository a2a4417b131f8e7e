"""The slot orchestrator as the Durable extension runs it: the real SDK, with devhost's model
of the extension's out-of-proc shim (it awaits each yielded task in turn)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs_api import orchestrator
from tests.shim_driver import ShimDriver

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = {"batches": [{"slot": 0, "count": 1, "job_ids": ["j1"]}], "due": 1, "pending": 0}
RESULT = {"started": 1, "succeeded": 1}


def _cycle_with_one_batch() -> ShimDriver:
    run = ShimDriver(orchestrator.jobs_slot, {"slot": 0}, T0)
    run.episode()
    assert [a["name"] for a in run.outstanding("plan_cycle")] == ["plan_cycle"]
    run.complete("plan_cycle", PLAN)
    run.episode(T0 + timedelta(seconds=0.1))
    assert len(run.outstanding("execute_batch")) == 1
    return run


def test_a_cycle_whose_batch_returns_sleeps_then_continues_as_new() -> None:
    run = _cycle_with_one_batch()
    run.complete("execute_batch", RESULT)
    run.episode(T0 + timedelta(seconds=0.2))
    assert not run.finished  # asleep: timer or wake
    assert run.state["customStatus"]["counts"]["started"] == 1
    assert run.fire_timers(T0 + timedelta(seconds=0.5)) == 1  # the sleep after a worked cycle
    run.episode()
    assert run.finished and run.state["actions"][0][-1]["actionType"] == 4  # continue-as-new


def test_a_batch_outlasting_the_deadline_does_not_hold_the_cycle_on_the_real_host() -> None:
    """A handler that runs past JOBS_CYCLE_DEADLINE_SECONDS (or an activity lost with its
    instance, back only after 5 minutes): the cycle ends at the deadline and re-plans. With
    the plan's deadline timer reused in the batches' task_any, the SDK left it out of that
    WhenAny action, and the extension kept awaiting the batch: no continue-as-new until it
    returned (devhost and the unit stand-ins let the orchestrator go on)."""
    run = _cycle_with_one_batch()
    deadline = T0 + timedelta(seconds=61)
    assert run.fire_timers(deadline) >= 1
    run.episode()
    assert run.outstanding("execute_batch")  # the handler still runs
    assert run.finished, "the extension is still awaiting the batch past the cycle's deadline"
    assert run.state["customStatus"]["plans_overdue"] == 0
