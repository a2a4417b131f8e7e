"""A job due now, written while an idle slot plans (its timer fired; its custom status is
still the previous, empty cycle's, with a ``next_wake`` that has just passed): the wake gate
took that ``next_wake`` for a promise to plan after the job, and sent nothing. The plan in
progress may have read the job's blob before the job was written, and the slot then slept
its back-off (up to ``JOBS_MAX_SLEEP_SECONDS``) with the job due. The orchestrator keeps a
wake raised during its cycle and ends that sleep with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs_api import orchestrator
from jobs_api import runtime as runtime_module
from jobs_api.wake import WakeGate, raise_wake, slot_next_wake
from tests.shim_driver import ShimDriver

EMPTY_PLAN = {"batches": [], "due": 0, "pending": 0}
WORKED_PLAN = {"batches": [{"slot": 0, "count": 1, "job_ids": ["j1"]}], "due": 1, "pending": 0}


@pytest.fixture(autouse=True)
def fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_EVENTS_QUEUE", "off")
    monkeypatch.setattr(runtime_module, "_runtime", None)


class Status:
    def __init__(self, custom: dict[str, Any]) -> None:
        self.runtime_status = "Running"
        self.custom_status = custom


class DurableClient:
    """A slot whose status is what its orchestrator set; the wake events raised."""

    def __init__(self, custom: dict[str, Any]) -> None:
        self.custom = custom
        self.raised: list[str] = []

    async def get_status(self, instance_id: str) -> Status:
        return Status(self.custom)

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        self.raised.append(instance_id)


def _cycle(plan: dict[str, Any], start: datetime) -> ShimDriver:
    """One cycle of slot 0 started at ``start``, asleep after it."""
    run = ShimDriver(orchestrator.jobs_slot, orchestrator.slot_input(0), start)
    run.episode()
    run.complete("plan_cycle", plan)
    run.episode(start + timedelta(seconds=0.1))
    if plan["batches"]:
        run.complete("execute_batch", {"started": 1, "succeeded": 1})
        run.episode(start + timedelta(seconds=0.2))
    assert not run.finished  # asleep
    return run


async def _wake_for_a_job_due_now(custom: dict[str, Any]) -> list[str]:
    client = DurableClient(custom)
    gate = WakeGate(slot_next_wake, raise_wake)
    gate.wake(client, {0: datetime.now(UTC)})
    await gate.drain()
    return client.raised


async def test_a_job_written_while_an_idle_slot_plans_wakes_the_slot() -> None:
    last = _cycle(EMPTY_PLAN, datetime.now(UTC) - timedelta(seconds=5))
    status = last.state["customStatus"]
    assert datetime.fromisoformat(status["next_wake"]) < datetime.now(UTC)  # planning now
    assert await _wake_for_a_job_due_now(status) == ["jobs-slot-0"]


async def test_a_slot_working_back_to_back_still_gets_no_event() -> None:
    last = _cycle(WORKED_PLAN, datetime.now(UTC) - timedelta(seconds=5))
    assert await _wake_for_a_job_due_now(last.state["customStatus"]) == []


def test_a_wake_raised_while_the_cycle_plans_ends_its_sleep() -> None:
    from devhost import history as h

    start = datetime(2026, 1, 1, tzinfo=UTC)
    run = ShimDriver(orchestrator.jobs_slot, orchestrator.slot_input(0), start)
    run.episode()
    run._pending.append(h.event(h.EVENT_RAISED, run._ts(), Name="wake", Input=None))
    run.episode(start + timedelta(seconds=0.05))  # the event, while plan_cycle is out
    assert not run.finished
    run.complete("plan_cycle", EMPTY_PLAN)  # it read the blob before the job was written
    run.episode(start + timedelta(seconds=0.1))
    assert run.finished, "the slot sleeps its back-off despite the wake"
