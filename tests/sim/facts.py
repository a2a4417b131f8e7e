"""What the oracle records of a run (handler invocations, accepted jobs, violations), and the
bounds its checks use: ``oracle.py`` records, ``final_checks.py`` checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(2026, 3, 27, 22, 0, tzinfo=UTC)  # the simulation's time 0: two days before
# Europe's spring change


@dataclass
class Invocation:
    job_id: str
    run: int
    attempt: int
    due_at: datetime
    proc: str
    start: float
    end: float | None = None
    ok: bool | None = None
    handler: str = ""
    error: str | None = None
    token: str | None = None
    payload: Any = None  # what the handler was given


@dataclass
class Accepted:
    job_id: str
    request: Any
    due_at: datetime
    recurring: bool
    at: float  # the job's last change as its first 2xx answer showed it (simulated seconds)
    payload: Any = None
    created: bool = True  # False: first seen as an earlier job returned for its key
    controls: list[tuple[str, str, float, float, Any]] = field(default_factory=list)
    # updates: (answer, began, answered, the payload it set)
    updates: list[tuple[str, float, float, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


LIMITED = {"limited": (2, 5.0)}  # the sim's limited handler: (max_concurrency, max_per_second)
HEALTHY_AFTER_S = 600.0  # I11: how long after the faults end the system must be on time
# I10: a change recorded in the last PUBLISH_SETTLE_S of a run is not checked: one cycle
# (JOBS_MAX_SLEEP_SECONDS 60) plus a publish retry (30 s) and slack
PUBLISH_SETTLE_S = 100.0


def world_time(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)
