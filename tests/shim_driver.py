"""Drive a real SDK orchestrator episode by episode as the Durable extension would: its
actions go through devhost's model of the extension's out-of-proc shim
(``devhost.orchestration_runner.shim_progress``), so what the extension would not schedule
yet, or a ``continue_as_new`` it would not reach yet, does not happen here either."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from devhost import history as h
from devhost.orchestration_runner import (
    build_context,
    completions,
    interpret,
    shim_progress,
)


class ShimDriver:
    def __init__(self, fn: Callable[..., Any], input_value: Any, start: datetime) -> None:
        self.handle = df.Orchestrator.create(fn)
        self.input = json.dumps(input_value)
        self.now = start
        self.history: list[dict[str, Any]] = []
        self.scheduled: list[dict[str, Any]] = []  # seq, kind, name, fire_at, input
        self.state: dict[str, Any] = {}
        self.finished = False  # the extension acted on isDone (e.g. continued as new)
        self._pending = [h.event(h.EXECUTION_STARTED, self._ts(), Name="orch",
                                 Input=self.input, Version=None)]

    def _ts(self) -> str:
        return h.format_ts(self.now)

    def episode(self, at: datetime | None = None) -> None:
        if at is not None:
            self.now = at
        ts = self._ts()
        played = [{**e, "IsPlayed": True} for e in self.history]
        new = [h.event(h.ORCHESTRATOR_STARTED, ts), *self._pending]
        self._pending = []
        out = self.handle(func.OrchestrationContext(
            build_context("instance", self.input, played + new)))
        self.state = json.loads(out)
        self.history += new
        planned = interpret(self.state).planned
        done = completions(self.history, [a["seq"] for a in self.scheduled])
        progress = shim_progress(self.state, done, self.history)
        for action in planned[len(self.scheduled):progress.scheduled]:
            seq = len(self.scheduled)
            kind = h.TIMER_CREATED if action.kind == "timer" else h.TASK_SCHEDULED
            self.history.append(h.event(kind, ts, seq, Name=action.name, FireAt=action.fire_at))
            self.scheduled.append({"seq": seq, "kind": action.kind, "name": action.name,
                                   "fire_at": action.fire_at, "input": action.input})
        self.history.append(h.event(h.ORCHESTRATOR_COMPLETED, ts))
        self.finished = bool(self.state.get("isDone")) and progress.finished

    def outstanding(self, name: str) -> list[dict[str, Any]]:
        done = {e.get("TaskScheduledId") for e in self.history + self._pending
                if e["EventType"] in (h.TASK_COMPLETED, h.TASK_FAILED)}
        return [a for a in self.scheduled if a["name"] == name and a["seq"] not in done]

    def complete(self, name: str, result: Any) -> None:
        """The oldest outstanding ``name`` activity returns ``result``."""
        seq = self.outstanding(name)[0]["seq"]
        self._pending.append(h.event(h.TASK_COMPLETED, self._ts(), TaskScheduledId=seq,
                                     Result=json.dumps(result)))

    def fire_timers(self, until: datetime) -> int:
        """Every timer due by ``until`` fires (the clock moves there)."""
        self.now = until
        fired = {e.get("TimerId") for e in self.history + self._pending
                 if e["EventType"] == h.TIMER_FIRED}
        count = 0
        for a in self.scheduled:
            if a["kind"] == "timer" and a["seq"] not in fired and \
                    h.parse_ts(a["fire_at"]) <= until:
                self._pending.append(h.event(h.TIMER_FIRED, self._ts(), TimerId=a["seq"],
                                             FireAt=a["fire_at"]))
                count += 1
        return count

    def later(self, seconds: float) -> datetime:
        return self.now + timedelta(seconds=seconds)
