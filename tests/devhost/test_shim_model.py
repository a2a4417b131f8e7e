"""devhost's model of the extension's out-of-proc shim (``shim_progress``) and the engine's
completion lookup it is fed with, without a host process."""

from __future__ import annotations

from typing import Any

from devhost import history as h
from devhost.orchestration_runner import completions, shim_progress

WAIT_GO = {"actionType": 6, "externalEventName": "go"}
ACTIVITY = {"actionType": 0, "functionName": "double", "input": "1"}


def _history(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [h.event(h.ORCHESTRATOR_STARTED, "t"), h.event(h.EXECUTION_STARTED, "t"),
            h.event(h.TASK_SCHEDULED, "t", 0, Name="double"), *events]


def _activity_done(history: list[dict[str, Any]]) -> Any:
    return lambda index, action: next(
        (p for p, e in enumerate(history) if e["EventType"] == h.TASK_COMPLETED), None)


def test_a_raised_event_completes_the_latest_wait_for_its_name() -> None:
    """The first wait lost its WhenAny to the activity; an event raised after the second wait
    started completes that one (DurableOrchestrationContext's stack of waits), so the shim
    gets through. Counted first come, first served, it went to the abandoned wait."""
    state = {"actions": [[{"actionType": 11, "compoundActions": [WAIT_GO, ACTIVITY]}, WAIT_GO]]}
    history = _history(h.event(h.TASK_COMPLETED, "t", TaskScheduledId=0, Result="2"),
                       h.event(h.EVENT_RAISED, "t", Name="go", Input='"x"'))
    assert shim_progress(state, _activity_done(history), history).finished


def test_an_event_raised_while_the_first_wait_is_the_only_one_goes_to_it() -> None:
    state = {"actions": [[{"actionType": 11, "compoundActions": [WAIT_GO, ACTIVITY]}, WAIT_GO]]}
    history = _history(h.event(h.EVENT_RAISED, "t", Name="go", Input='"x"'),
                       h.event(h.TASK_COMPLETED, "t", TaskScheduledId=0, Result="2"))
    assert not shim_progress(state, _activity_done(history), history).finished
    history.append(h.event(h.EVENT_RAISED, "t", Name="go", Input='"y"'))
    assert shim_progress(state, _activity_done(history), history).finished


def test_an_event_raised_before_its_wait_is_buffered_for_it() -> None:
    state = {"actions": [[ACTIVITY, WAIT_GO]]}
    history = _history(h.event(h.EVENT_RAISED, "t", Name="go", Input='"x"'),
                       h.event(h.TASK_COMPLETED, "t", TaskScheduledId=0, Result="2"))
    assert shim_progress(state, _activity_done(history), history).finished


class _CountingList(list[dict[str, Any]]):
    passes = 0

    def __iter__(self) -> Any:
        self.passes += 1
        return super().__iter__()


def test_an_episode_reads_the_history_a_fixed_number_of_times() -> None:
    """Not once per action: a fan-out of n activities over a history of ~2n events was
    quadratic per episode (devhost runs the shim model on its event loop)."""
    n = 300
    events = [h.event(h.ORCHESTRATOR_STARTED, "t"), h.event(h.EXECUTION_STARTED, "t")]
    events += [h.event(h.TASK_SCHEDULED, "t", seq, Name="double") for seq in range(n)]
    events += [h.event(h.TASK_COMPLETED, "t", TaskScheduledId=s, Result="1") for s in range(n - 1)]
    history = _CountingList(events)
    state = {"actions": [[{"actionType": 12, "compoundActions": [ACTIVITY] * n}]]}
    progress = shim_progress(state, completions(history, list(range(n))), history)
    assert (progress.scheduled, progress.finished) == (n, False)  # the last one is still out
    assert history.passes <= 3
