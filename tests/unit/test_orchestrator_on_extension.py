"""The slot orchestrator as the Durable extension runs it: the real SDK, with devhost's model
of the extension's out-of-proc shim (it awaits each yielded task in turn)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs_api import orchestrator
from jobs_api import runtime as runtime_module
from tests.shim_driver import ShimDriver

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = {"batches": [{"slot": 0, "count": 1, "job_ids": ["j1"]}], "due": 1, "pending": 0}
RESULT = {"started": 1, "succeeded": 1}


def _cycle_with_one_batch() -> ShimDriver:
    run = ShimDriver(orchestrator.jobs_slot, orchestrator.slot_input(0), T0)
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


def _timers(state: dict[str, Any]) -> list[str]:
    """Every timer's fire time in the episode's actions, depth-first."""
    out: list[str] = []

    def walk(action: dict[str, Any]) -> None:
        if action["actionType"] == 5:
            out.append(action["fireAt"])
        for child in action.get("compoundActions") or ():
            walk(child)

    for group in state["actions"]:
        for action in group:
            walk(action)
    return out


def test_a_settings_change_does_not_change_an_execution_on_replay(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An app settings change restarts the host, and the running execution is replayed by the
    new process. It read the sleep settings from the environment on each replay: with
    JOBS_MIN_CYCLE_SECONDS 0.5 -> 0 the replayed cycle no longer made its sleep timer and
    went straight to continue-as-new, which the Durable backend fails as non-deterministic
    (the keeper restarted the slot minutes later). The timings now come with the input."""
    monkeypatch.setattr(runtime_module, "_runtime", None)
    run = _cycle_with_one_batch()
    run.complete("execute_batch", RESULT)
    run.episode(T0 + timedelta(seconds=0.2))
    before = run.state["actions"]
    assert not run.finished and len(_timers(run.state)) == 3  # deadline x2, the sleep
    monkeypatch.setenv("JOBS_MIN_CYCLE_SECONDS", "0")
    monkeypatch.setenv("JOBS_CYCLE_DEADLINE_SECONDS", "5")
    monkeypatch.setattr(runtime_module, "_runtime", None)
    run.episode()  # the new process replays the same history
    assert run.state["actions"] == before and not run.finished


def test_a_settings_change_takes_effect_from_the_next_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "_runtime", None)
    monkeypatch.setenv("JOBS_MIN_CYCLE_SECONDS", "2")
    run = ShimDriver(orchestrator.jobs_slot, orchestrator.slot_input(0), T0)
    monkeypatch.setenv("JOBS_MIN_CYCLE_SECONDS", "7")
    monkeypatch.setattr(runtime_module, "_runtime", None)
    run.episode()
    run.complete("plan_cycle", {**PLAN, "timing": orchestrator.CycleTiming.current().to_dict()})
    run.episode(T0 + timedelta(seconds=0.1))
    run.complete("execute_batch", RESULT)
    run.episode(T0 + timedelta(seconds=0.2))
    assert _timers(run.state)[-1] == "2026-01-01T00:00:07.000000Z"  # the plan's, not the input's
    assert run.fire_timers(T0 + timedelta(seconds=7)) == 1
    run.episode()
    assert run.finished
