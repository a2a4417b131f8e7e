"""Durable Task history events (the PascalCase JSON the Python SDK replays) and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.parser import isoparse

EXECUTION_STARTED = 0
EXECUTION_COMPLETED = 1
EXECUTION_TERMINATED = 3
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15
CONTINUE_AS_NEW = 16

EVENT_TYPE_NAMES = {
    EXECUTION_STARTED: "ExecutionStarted",
    EXECUTION_COMPLETED: "ExecutionCompleted",
    EXECUTION_TERMINATED: "ExecutionTerminated",
    TASK_SCHEDULED: "TaskScheduled",
    TASK_COMPLETED: "TaskCompleted",
    TASK_FAILED: "TaskFailed",
    TIMER_CREATED: "TimerCreated",
    TIMER_FIRED: "TimerFired",
    ORCHESTRATOR_STARTED: "OrchestratorStarted",
    ORCHESTRATOR_COMPLETED: "OrchestratorCompleted",
    EVENT_RAISED: "EventRaised",
    CONTINUE_AS_NEW: "ContinueAsNew",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(dt: datetime) -> str:
    """ISO 8601 UTC with microseconds and a ``Z`` (the SDK parses it timezone-aware)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    dt: datetime = isoparse(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def next_timestamp(last: str | None) -> str:
    """A timestamp strictly later than ``last`` (the SDK's clock must only move forward)."""
    now = utc_now()
    if last is not None:
        floor = parse_ts(last) + timedelta(microseconds=1)
        now = max(now, floor)
    return format_ts(now)


def event(event_type: int, timestamp: str, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "EventType": event_type,
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": timestamp,
    }
    ev.update(fields)
    return ev


def describe(ev: dict[str, Any]) -> dict[str, Any]:
    """The event as the management API shows it in ``historyEvents``."""
    out = {k: v for k, v in ev.items() if k not in ("IsPlayed",)}
    out["EventType"] = EVENT_TYPE_NAMES.get(ev["EventType"], str(ev["EventType"]))
    return out
