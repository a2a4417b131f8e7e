"""One orchestration episode: replay the real SDK orchestrator callable, then check determinism.

The orchestrator callable registered by ``DFApp.orchestration_trigger`` takes an
``azure.functions.OrchestrationContext`` wrapping the context JSON and returns the state JSON
(``isDone``, ``actions``, ``output``, ``customStatus``); on an orchestrator error it raises an
exception whose message carries the state after ``$OutOfProcData$:``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from .errors import DevhostError

SCHEMA_V1 = 1
SCHEMA_V3 = 2  # upperSchemaVersionNew: enables schema V3 (SDK-side long timers)
LONG_TIMER_INTERVAL = "3.00:00:00"
MAX_SHORT_TIMER = "6.00:00:00"
OUT_OF_PROC_MARKER = "$OutOfProcData$:"

CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CONTINUE_AS_NEW = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
WHEN_ANY = 11
WHEN_ALL = 12
UNSUPPORTED_ACTIONS = {
    2: "call_sub_orchestrator",
    3: "call_sub_orchestrator_with_retry",
    7: "call_entity",
    8: "call_http",
    9: "signal_entity",
}


class UnsupportedAction(DevhostError):
    """The orchestrator used an API devhost does not emulate."""


@dataclass
class PlannedAction:
    """An action that takes a sequence id: an activity call or a durable timer."""

    kind: str  # "activity" | "timer"
    name: str | None = None
    input: Any = None
    fire_at: str | None = None
    retry: dict[str, Any] | None = None

    def describe(self) -> str:
        if self.kind == "timer":
            return f"CreateTimer(fireAt={self.fire_at})"
        return f"CallActivity('{self.name}')"


@dataclass
class EpisodeResult:
    is_done: bool
    output: Any = None
    custom_status: Any = None
    error: str | None = None
    planned: list[PlannedAction] = field(default_factory=list)
    continue_as_new: bool = False
    continue_as_new_input: Any = None
    waits_for: list[str] = field(default_factory=list)


def build_context(
    instance_id: str, orchestration_input: Any, history: list[dict[str, Any]]
) -> str:
    return json.dumps(
        {
            "history": history,
            "input": orchestration_input,
            "instanceId": instance_id,
            "isReplaying": False,
            "parentInstanceId": None,
            "upperSchemaVersion": SCHEMA_V1,
            "upperSchemaVersionNew": SCHEMA_V3,
            "longRunningTimerIntervalDuration": LONG_TIMER_INTERVAL,
            "maximumShortTimerDuration": MAX_SHORT_TIMER,
        }
    )


def call_orchestrator(fn: Callable[..., Any], param: str, context_json: str) -> dict[str, Any]:
    """Invoke the SDK callable; returns the state dict (with ``error`` set on failure)."""
    try:
        state_str = fn(**{param: func.OrchestrationContext(context_json)})
    except Exception as exc:
        message = str(exc)
        if OUT_OF_PROC_MARKER in message:
            head, _, tail = message.partition(OUT_OF_PROC_MARKER)
            try:
                state: dict[str, Any] = json.loads(tail)
            except ValueError:
                state = {"isDone": False, "actions": []}
            state["error"] = head.rstrip()
            return state
        return {"isDone": False, "actions": [], "error": f"{type(exc).__name__}: {exc}"}
    out: dict[str, Any] = json.loads(state_str)
    return out


def _flatten(action: dict[str, Any], out: list[dict[str, Any]]) -> None:
    if action.get("actionType") in (WHEN_ALL, WHEN_ANY):
        for child in action.get("compoundActions", []):
            _flatten(child, out)
    else:
        out.append(action)


def interpret(state: dict[str, Any]) -> EpisodeResult:
    """Turn the SDK's state JSON into an :class:`EpisodeResult` (actions flattened depth-first)."""
    flat: list[dict[str, Any]] = []
    for group in state.get("actions") or []:
        for action in group if isinstance(group, list) else [group]:
            _flatten(action, flat)
    result = EpisodeResult(
        is_done=bool(state.get("isDone")),
        output=state.get("output"),
        custom_status=state.get("customStatus"),
        error=state.get("error"),
    )
    for action in flat:
        kind = action.get("actionType")
        if kind == CALL_ACTIVITY:
            result.planned.append(
                PlannedAction("activity", action["functionName"], action.get("input"))
            )
        elif kind == CALL_ACTIVITY_WITH_RETRY:
            result.planned.append(
                PlannedAction(
                    "activity",
                    action["functionName"],
                    action.get("input"),
                    retry=action.get("retryOptions") or {},
                )
            )
        elif kind == CREATE_TIMER:
            result.planned.append(PlannedAction("timer", fire_at=action.get("fireAt")))
        elif kind == WAIT_FOR_EXTERNAL_EVENT:
            result.waits_for.append(str(action.get("externalEventName") or ""))
        elif kind == CONTINUE_AS_NEW:
            result.continue_as_new = True
            result.continue_as_new_input = action.get("input")
        elif kind in UNSUPPORTED_ACTIONS:
            raise UnsupportedAction(
                f"{UNSUPPORTED_ACTIONS[kind]} is not supported by devhost (see devhost/README.md)"
            )
        else:
            raise UnsupportedAction(f"unknown action type {kind!r}")
    return result


@dataclass
class ShimProgress:
    """How far the extension gets through the SDK's actions in one episode."""

    scheduled: int  # planned actions (activities, timers) it schedules, in depth-first order
    finished: bool  # every top-level action's task completed: is_done, continue-as-new and an
    # orchestrator error take effect only then


def shim_progress(state: dict[str, Any], leaf_done: Callable[[int, dict[str, Any]], bool],
                  raised: Counter[str]) -> ShimProgress:
    """Replay the SDK's actions as the extension's out-of-proc shim does.

    ``OutOfProcOrchestrationShim.ProcessAsyncActionsV2`` (azure-functions-durable-extension)
    takes the top-level actions in order, schedules each one's tasks and *awaits* it before it
    looks at the next; ``ScheduleDurableTaskEvents`` acts on ``isDone`` and ``error`` only once
    every action's task completed. A WhenAny completes when one child's task did, a WhenAll when
    all did (also after a failure: .NET ``Task.WhenAll``), a canceled timer at once. The SDK
    leaves a task that was already yielded out of a later compound action, so
    ``task_any([work, timer])`` with a timer yielded before is, for the extension, a wait for
    ``work`` alone. Schema V1 (a list of action sets): each set is awaited as a WhenAny.

    ``leaf_done(index, action)``: whether the ``index``-th planned action (depth-first over all
    actions) has completed; ``raised``: the events raised in this execution, by name.
    """
    count = 0
    waits: Counter[str] = Counter()

    def done(action: dict[str, Any]) -> bool:
        nonlocal count
        kind = action.get("actionType")
        if kind in (WHEN_ALL, WHEN_ANY):
            children = [done(child) for child in action.get("compoundActions") or []]
            return all(children) if kind == WHEN_ALL else any(children)
        if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CREATE_TIMER):
            count += 1
            return leaf_done(count - 1, action)
        if kind == WAIT_FOR_EXTERNAL_EVENT:
            name = str(action.get("externalEventName") or "")
            waits[name] += 1
            return raised[name] >= waits[name]
        return True  # continue-as-new: fire and forget

    groups = state.get("actions") or []
    if len(groups) == 1 and isinstance(groups[0], list):  # schema V2/V3: one action per yield
        steps: list[list[dict[str, Any]]] = [[action] for action in groups[0]]
    else:
        steps = [group if isinstance(group, list) else [group] for group in groups]
    for step in steps:
        if step and not any([done(action) for action in step]):
            return ShimProgress(count, False)
    return ShimProgress(count, True)


def check_determinism(
    recorded: list[dict[str, Any]], planned: list[PlannedAction], strict: bool
) -> str | None:
    """Compare the replayed actions with the recorded schedule, like the Durable Task Framework.

    Returns an error message naming the sequence id, the expected and the actual action, or None.
    """
    for index, rec in enumerate(recorded):
        seq = rec["seq"]
        if index >= len(planned):
            return (
                f"Non-deterministic workflow detected: sequence id {seq}: expected "
                f"{_describe_record(rec)} but the orchestrator no longer schedules it on replay"
            )
        actual = planned[index]
        mismatch = actual.kind != rec["kind"] or (
            actual.kind == "activity" and actual.name != rec["name"]
        )
        if strict and not mismatch:
            mismatch = actual.input != rec["input"] or (
                actual.kind == "timer" and actual.fire_at != rec["fire_at"]
            )
        if mismatch:
            return (
                f"Non-deterministic workflow detected: sequence id {seq}: expected "
                f"{_describe_record(rec)} but the orchestrator produced {actual.describe()}"
                + (" (strict mode compares inputs and timer fire times)" if strict else "")
            )
    return None


def _describe_record(rec: dict[str, Any]) -> str:
    return PlannedAction(rec["kind"], rec["name"], rec["input"], rec["fire_at"]).describe()
