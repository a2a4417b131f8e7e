"""Orchestrators and histories for the golden protocol fixtures in ``golden/``.

Regenerate (only after checking a Durable SDK change is understood):
    python -m tests.devhost.golden_cases
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df

from devhost import history as h
from devhost.orchestration_runner import build_context, call_orchestrator

GOLDEN_DIR = Path(__file__).parent / "golden"
T0 = "2024-05-01T10:00:00.000000Z"
T1 = "2024-05-01T10:00:01.000000Z"
T2 = "2024-05-01T10:00:02.000000Z"
T3 = "2024-05-01T10:00:03.000000Z"


def fan_out(context: df.DurableOrchestrationContext):
    results = yield context.task_all([context.call_activity("double", i) for i in range(3)])
    return sum(results)


def waiter(context: df.DurableOrchestrationContext):
    state = context.get_input()
    context.set_custom_status({"gen": state["gen"]})
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    ping = context.wait_for_external_event("ping")
    winner = yield context.task_any([timer, ping])
    if winner == ping:
        timer.cancel()
    context.continue_as_new({"gen": state["gen"] + 1, "got": ping.result if winner == ping
                             else None})


def retrying(context: df.DurableOrchestrationContext):
    opts = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    return (yield context.call_activity_with_retry("flaky", opts, "k"))


def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("double", 1)
    raise ValueError("kaboom")


ORCHESTRATORS = {"fan_out": fan_out, "waiter": waiter, "retrying": retrying, "failing": failing}


def ev(event_type: int, ts: str, event_id: int = -1, played: bool = True, **f: Any) -> dict:
    return {**h.event(event_type, ts, event_id, **f), "IsPlayed": played}


def _start(ts: str, name: str, input_: Any) -> list[dict]:
    return [ev(h.ORCHESTRATOR_STARTED, ts),
            ev(h.EXECUTION_STARTED, ts, Name=name, Input=input_, Version=None)]


CASES: dict[str, tuple[str, Any, list[dict]]] = {
    "fan_out_first_episode": ("fan_out", None, [
        {**e, "IsPlayed": False} for e in _start(T0, "fan_out", None)]),
    "fan_out_completed": ("fan_out", None, [
        *_start(T0, "fan_out", None),
        *[ev(h.TASK_SCHEDULED, T0, i, Name="double", Input=str(i)) for i in range(3)],
        ev(h.ORCHESTRATOR_COMPLETED, T0),
        ev(h.ORCHESTRATOR_STARTED, T1, played=False),
        *[ev(h.TASK_COMPLETED, T1, TaskScheduledId=i, Result=str(2 * i), played=False)
          for i in (2, 0, 1)],
    ]),
    "waiter_event_then_continue_as_new": ("waiter", '{"gen": 4}', [
        *_start(T0, "waiter", '{"gen": 4}'),
        ev(h.TIMER_CREATED, T0, 0, FireAt="2024-05-01T10:00:30.000000Z"),
        ev(h.ORCHESTRATOR_COMPLETED, T0),
        ev(h.ORCHESTRATOR_STARTED, T1, played=False),
        ev(h.EVENT_RAISED, T1, Name="ping", Input=json.dumps('{"n": 1}'), played=False),
    ]),
    "retry_failed_then_timer_then_success": ("retrying", None, [
        *_start(T0, "retrying", None),
        ev(h.TASK_SCHEDULED, T0, 0, Name="flaky", Input='"k"'),
        ev(h.ORCHESTRATOR_COMPLETED, T0),
        ev(h.ORCHESTRATOR_STARTED, T1),
        ev(h.TASK_FAILED, T1, TaskScheduledId=0, Reason="first", Details="d"),
        ev(h.TIMER_CREATED, T1, 1, FireAt="2024-05-01T10:00:02.000000Z"),
        ev(h.ORCHESTRATOR_COMPLETED, T1),
        ev(h.ORCHESTRATOR_STARTED, T2),
        ev(h.TIMER_FIRED, T2, TimerId=1, FireAt="2024-05-01T10:00:02.000000Z"),
        ev(h.TASK_SCHEDULED, T2, 2, Name="flaky", Input='"k"'),
        ev(h.ORCHESTRATOR_COMPLETED, T2),
        ev(h.ORCHESTRATOR_STARTED, T3, played=False),
        ev(h.TASK_COMPLETED, T3, TaskScheduledId=2, Result='"ok"', played=False),
    ]),
    "orchestrator_error": ("failing", None, [
        *_start(T0, "failing", None),
        ev(h.TASK_SCHEDULED, T0, 0, Name="double", Input="1"),
        ev(h.ORCHESTRATOR_COMPLETED, T0),
        ev(h.ORCHESTRATOR_STARTED, T1, played=False),
        ev(h.TASK_COMPLETED, T1, TaskScheduledId=0, Result="2", played=False),
    ]),
}


def run_case(orchestrator: str, context_json: str) -> dict[str, Any]:
    """Run the real SDK orchestrator callable; returns the state (``error`` on failure)."""
    handle = df.Orchestrator.create(ORCHESTRATORS[orchestrator])
    return call_orchestrator(handle, "context", context_json)


def record() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name, (orchestrator, input_, history) in CASES.items():
        context = build_context(f"golden-{name}", input_, history)
        doc = {"orchestrator": orchestrator, "context": json.loads(context),
               "state": run_case(orchestrator, context)}
        (GOLDEN_DIR / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    record()
