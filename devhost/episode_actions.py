"""What one orchestrator episode schedules, and DTFx's retry interceptor.

An episode's new actions become history events at once (``out``) and side effects (``effects``:
dispatching activities, arming timers) that the engine runs only after the instance is saved,
so a crash never leaves an effect without its event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from . import history as h
from .instance_store import InstanceRecord
from .orchestration_runner import PlannedAction

Effect = Callable[[], None]


def is_retry_event(record: InstanceRecord, ev: dict[str, Any]) -> bool:
    """Whether ``ev`` belongs to an activity called with a retry policy: a failed attempt,
    or the timer before the next one."""
    if ev["EventType"] == h.TASK_FAILED:
        return str(ev["TaskScheduledId"]) in record.retry_attempts
    if ev["EventType"] == h.TIMER_FIRED:
        return str(ev["TimerId"]) in record.retry_timers
    return False


@dataclass
class EpisodeActions:
    record: InstanceRecord
    ts: str
    dispatch: Callable[[str, str, int, str, Any], None]  # (instance, execution, seq, name, input)
    arm: Callable[[str, str, int, str], None]  # (instance, execution, seq, fire_at)
    noted: Callable[[str, str, int, str, Any], None]  # an activity scheduled (the model's count)
    out: list[dict[str, Any]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    def alloc(self) -> int:
        seq = self.record.next_seq
        self.record.next_seq += 1
        return seq

    def activity(self, seq: int, name: str, input_json: Any) -> None:
        record = self.record
        self.out.append(h.event(h.TASK_SCHEDULED, self.ts, seq, Name=name, Input=input_json))
        record.activities[str(seq)] = {"name": name, "input": input_json}
        iid, eid = record.instance_id, record.execution_id
        self.noted(iid, eid, seq, name, input_json)
        self.effects.append(lambda: self.dispatch(iid, eid, seq, name, input_json))

    def timer(self, seq: int, fire_at: str) -> None:
        record = self.record
        self.out.append(h.event(h.TIMER_CREATED, self.ts, seq, FireAt=fire_at))
        record.timers[str(seq)] = fire_at
        iid, eid = record.instance_id, record.execution_id
        self.effects.append(lambda: self.arm(iid, eid, seq, fire_at))

    def planned(self, planned: PlannedAction) -> None:
        """A new action the orchestrator asked for (an activity, maybe with a retry policy,
        or a timer)."""
        seq = self.alloc()
        self.record.actions_seen.append({"seq": seq, "kind": planned.kind, "name": planned.name,
                                         "input": planned.input, "fire_at": planned.fire_at})
        if planned.kind == "timer":
            self.timer(seq, planned.fire_at or self.ts)
            return
        if planned.retry is not None:
            self.record.retry_groups[str(seq)] = {
                "name": planned.name, "input": planned.input, "attempts": 1,
                "max_attempts": int(planned.retry.get("maxNumberOfAttempts", 1)),
                "interval_ms": int(planned.retry.get("firstRetryIntervalInMilliseconds", 0)),
            }
            self.record.retry_attempts[str(seq)] = str(seq)
        self.activity(seq, planned.name or "", planned.input)

    def retry_step(self, ev: dict[str, Any]) -> None:
        """What DTFx's RetryInterceptor does: a timer after each failure (also after the last
        one), then a new attempt when the timer fires while attempts remain."""
        record = self.record
        if ev["EventType"] == h.TASK_FAILED:
            key = record.retry_attempts[str(ev["TaskScheduledId"])]
            group = record.retry_groups[key]
            delay = timedelta(milliseconds=group["interval_ms"])
            fire_at = h.format_ts(h.parse_ts(self.ts) + delay)
            seq = self.alloc()
            record.retry_timers[str(seq)] = key
            self.timer(seq, fire_at)
        else:
            key = record.retry_timers[str(ev["TimerId"])]
            group = record.retry_groups[key]
            if group["attempts"] >= group["max_attempts"]:
                group["exhausted"] = True  # the task fails: its last attempt's failure
            else:
                group["attempts"] += 1
                seq = self.alloc()
                record.retry_attempts[str(seq)] = key
                self.activity(seq, group["name"], group["input"])
