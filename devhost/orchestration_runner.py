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

from . import history as h
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


LeafDone = Callable[[int, dict[str, Any]], "int | None"]
Node = tuple[Any, Any]  # (action type, a cell [position or None] or the children's nodes)


def shim_progress(state: dict[str, Any], leaf_done: LeafDone,
                  history: list[dict[str, Any]]) -> ShimProgress:
    """Replay the SDK's actions as the extension's out-of-proc shim does.

    ``OutOfProcOrchestrationShim.ProcessAsyncActionsV2`` (azure-functions-durable-extension)
    takes the top-level actions in order, schedules each one's tasks and *awaits* it before it
    looks at the next; ``ScheduleDurableTaskEvents`` acts on ``isDone`` and ``error`` only once
    every action's task completed. A WhenAny completes when one child's task did, a WhenAll when
    all did (also after a failure: .NET ``Task.WhenAll``), a canceled timer at once. The SDK
    leaves a task that was already yielded out of a later compound action, so
    ``task_any([work, timer])`` with a timer yielded before is, for the extension, a wait for
    ``work`` alone. Schema V1 (a list of action sets): each set is awaited as a WhenAny.

    The shim runs as DTFx replays ``history`` (this execution's events, in order): it reaches
    an action once the one before completed, at that event. A raised event completes the
    *latest* wait for its name still pending (``DurableOrchestrationContext`` keeps them in a
    stack, as the SDK's ``open_tasks`` list pops the last one), or is buffered for the next wait.

    ``leaf_done(index, action)``: the position in ``history`` of the event that completed the
    ``index``-th planned action (depth-first over all actions), or None.
    """
    count = 0
    pos = next((i for i, ev in enumerate(history)
                if ev.get("EventType") == h.EXECUTION_STARTED), 0)
    raised = [(i, str(ev.get("Name"))) for i, ev in enumerate(history)
              if ev.get("EventType") == h.EVENT_RAISED]
    upcoming = 0  # next raised event the replay has not reached
    waits: dict[str, list[list[int | None]]] = {}  # per name, a stack of pending waits' cells
    buffered: Counter[str] = Counter()

    def deliver(name: str, at: int) -> None:
        stack = waits.get(name)
        if stack:
            stack.pop()[0] = at
        else:
            buffered[name] += 1

    def invoke(action: dict[str, Any]) -> Node:
        nonlocal count
        kind = action.get("actionType")
        if kind in (WHEN_ALL, WHEN_ANY):
            return kind, [invoke(child) for child in action.get("compoundActions") or []]
        cell: list[int | None] = [pos]  # fire and forget (continue-as-new): done at once
        if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CREATE_TIMER):
            count += 1
            done_at = leaf_done(count - 1, action)
            cell = [pos if kind == CREATE_TIMER and action.get("isCanceled") else done_at]
        elif kind == WAIT_FOR_EXTERNAL_EVENT:
            name = str(action.get("externalEventName") or "")
            if buffered[name]:
                buffered[name] -= 1
            else:
                cell = [None]
                waits.setdefault(name, []).append(cell)
        return kind, cell

    def completed_at(node: Node) -> int | None:
        kind, body = node
        if kind not in (WHEN_ALL, WHEN_ANY):
            return body[0]  # type: ignore[no-any-return]
        times = [completed_at(child) for child in body]
        known = [t for t in times if t is not None]
        if kind == WHEN_ALL:
            return max(known, default=pos) if len(known) == len(times) else None
        return min(known, default=None)

    groups = state.get("actions") or []
    if len(groups) == 1 and isinstance(groups[0], list):  # schema V2/V3: one action per yield
        steps: list[list[dict[str, Any]]] = [[action] for action in groups[0]]
    else:
        steps = [group if isinstance(group, list) else [group] for group in groups]
    for step in steps:
        nodes = [invoke(action) for action in step]
        while nodes:
            at = min((t for t in map(completed_at, nodes) if t is not None), default=None)
            if at is not None and (upcoming >= len(raised) or at < raised[upcoming][0]):
                pos = max(pos, at)
                break
            if upcoming >= len(raised):
                return ShimProgress(count, False)
            at, name = raised[upcoming]
            upcoming += 1
            pos = max(pos, at)
            deliver(name, at)
    return ShimProgress(count, True)


def completions(history: list[dict[str, Any]], seqs: list[int],
                retry_groups: dict[str, dict[str, Any]] | None = None,
                retry_attempts: dict[str, str] | None = None,
                retry_timers: dict[str, str] | None = None) -> LeafDone:
    """For ``shim_progress``: where in ``history`` the ``index``-th planned action's task
    completed; ``seqs[index]`` is its task or timer id (actions past ``seqs`` were planned in
    this very episode). An action with a retry group completes when an attempt succeeded, or
    when the timer after its last failed attempt fired (the ``retry_*`` maps of devhost's
    instance record). One pass over the history per episode, not one per action."""
    groups, by_attempt, by_timer = retry_groups or {}, retry_attempts or {}, retry_timers or {}
    first: dict[tuple[Any, Any], int] = {}  # (event type, its task or timer id)
    for pos, ev in enumerate(history):
        kind = ev["EventType"]
        if kind in (h.TASK_COMPLETED, h.TASK_FAILED):
            first.setdefault((kind, ev.get("TaskScheduledId")), pos)
        elif kind == h.TIMER_FIRED:
            first.setdefault((kind, ev.get("TimerId")), pos)
    attempts: dict[str, list[int]] = {}
    for attempt, key in by_attempt.items():
        attempts.setdefault(key, []).append(int(attempt))
    timers: dict[str, list[int]] = {}
    for timer, key in by_timer.items():
        timers.setdefault(key, []).append(int(timer))

    def done_at(index: int, action: dict[str, Any]) -> int | None:
        if index >= len(seqs):
            return None
        seq = seqs[index]
        group = groups.get(str(seq))
        if group is None:
            found = [first.get((h.TASK_COMPLETED, seq)), first.get((h.TASK_FAILED, seq)),
                     first.get((h.TIMER_FIRED, seq))]
        else:
            found = [first.get((h.TASK_COMPLETED, a)) for a in attempts.get(str(seq), [])]
            if group.get("exhausted") and timers.get(str(seq)):
                found.append(first.get((h.TIMER_FIRED, max(timers[str(seq)]))))
        return min((p for p in found if p is not None), default=None)

    return done_at


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
