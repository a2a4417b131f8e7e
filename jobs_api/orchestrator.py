"""The eternal per-slot orchestrator and its activities.

One cycle per execution: ``plan_cycle`` -> ``execute_batch`` fan-out (with ``publish_events``
beside the batches when some blob has state-change events to send from the log, see
``jobs_core/event_log.py``) -> custom status -> sleep
(timer or ``wake`` event, whichever first) -> ``continue_as_new`` with a small state.
Deterministic: time comes only from ``context.current_utc_datetime``; activity failures are
caught (and logged when not replaying) and never end the orchestrator.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Generator
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskState

from jobs_core import Batch
from jobs_core.backoff import backoff
from jobs_core.errors import ClaimHeldError
from jobs_core.metrics import Histogram, retry_rate
from jobs_core.plans import COUNT_FIELDS

from .runtime import get_runtime

log = logging.getLogger(__name__)
ORCHESTRATOR = "jobs_slot"
COUNTS = COUNT_FIELDS  # the BatchResult counters a cycle adds up
MAX_LAGGING_REPORTED = 10
MAX_ERROR_CHARS = 500  # an error as reported in custom status and the orchestrator's state


@dataclass(frozen=True)
class CycleTiming:
    """The settings a cycle's actions depend on (its deadline, its sleep). They reach an
    execution through its input and each plan's result, both in the history, and are never
    read from the environment while the orchestrator replays: an app settings change restarts
    the host, and an execution replayed with other values could add or drop its sleep timer,
    which the Durable backend fails as non-deterministic. A change takes effect from the next
    plan."""

    cycle_deadline_seconds: float
    min_sleep_seconds: float
    error_sleep_seconds: float
    min_cycle_seconds: float
    max_sleep_seconds: float

    @classmethod
    def current(cls) -> CycleTiming:
        """This process's settings: for the starter and the activities."""
        runtime = get_runtime()
        api = runtime.api
        return cls(api.cycle_deadline_seconds, api.min_sleep_seconds, api.error_sleep_seconds,
                   api.min_cycle_seconds, runtime.settings.max_sleep_seconds)

    @classmethod
    def from_dict(cls, raw: Any) -> CycleTiming | None:
        """None unless ``raw`` has every field as a finite number."""
        if not isinstance(raw, dict):
            return None
        values: list[float] = []
        for f in fields(cls):
            v = raw.get(f.name)
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                return None
            values.append(float(v))
        return cls(*values)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def slot_input(slot: int) -> dict[str, Any]:
    """A slot's first execution's input (``starter.ensure_slot``)."""
    return {"slot": slot, "timing": CycleTiming.current().to_dict()}


# --- activities ---------------------------------------------------------------------------
async def plan_cycle(request: dict[str, Any]) -> dict[str, Any]:
    """Claim the slot and plan its due work; a held claim is reported, not raised."""
    slot = int(request["slot"])
    runtime = get_runtime()
    executor = await runtime.executor(slot)
    try:
        out = (await executor.plan(slot)).to_dict()
    except ClaimHeldError as exc:
        out = {"claim_held": str(exc)[:MAX_ERROR_CHARS], "batches": []}
    # figures of this process (activities of a slot may run in several processes in Azure)
    out["storage_requests_per_minute"] = runtime.counter.recent(60)
    out["timing"] = CycleTiming.current().to_dict()  # for the next cycle (see CycleTiming)
    out["events"] = None if runtime.events is None else \
        {**runtime.events.stats.to_dict(), "pending": runtime.events.pending}
    return out


async def execute_batch(batch: dict[str, Any]) -> dict[str, Any]:
    b = Batch.from_dict(batch)
    executor = await get_runtime().executor(b.slot)
    return (await executor.execute(b)).to_dict()


async def publish_events(request: dict[str, Any]) -> dict[str, Any]:
    """Send the slot's state-change events from its logs. Never raises: publishing must not
    fail the cycle (a failure is reported; the cursor did not move, the next cycle resends)."""
    slot = int(request["slot"])
    try:
        publisher = await get_runtime().log_publisher()
        if publisher is None:
            return {"off": True}
        report = (await publisher.publish(slot)).to_dict()
    except Exception as exc:
        log.warning("publishing the events of slot %s failed: %r", slot, exc)
        return {"errors": [f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]]}
    return bounded_report(report)


def bounded_report(report: dict[str, Any]) -> dict[str, Any]:
    """The publish report as it goes into history and custom status: at most 10 lagging
    queues named and 3 errors of 500 characters (see ``tests/unit/test_payload_sizes.py``)."""
    lagging = report.get("lagging") or {}
    return {**report, "lagging": dict(sorted(lagging.items())[:MAX_LAGGING_REPORTED]),
            "errors": [str(e)[:MAX_ERROR_CHARS] for e in (report.get("errors") or [])[:3]]}


# --- orchestrator ---------------------------------------------------------------------------
def _failed(task: Any) -> bool:
    return task.state is TaskState.FAILED


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _sleep_seconds(timing: CycleTiming, state: dict[str, Any], plan: dict[str, Any] | None,
                   now: datetime, worked: bool, failed: bool) -> float:
    """How long after ``now`` (this cycle's start) the next cycle starts. A cycle costs the
    Durable backend ~20 storage requests, so cycles start at most every
    JOBS_MIN_CYCLE_SECONDS, unless more was due than one cycle takes."""
    cap = timing.max_sleep_seconds
    if failed:
        return backoff(min(11, int(state["errors"])), timing.error_sleep_seconds, cap)
    if worked:
        # outcomes may have made new work due (retries, recurrences): re-plan soon
        planned = sum(int(b.get("count") or len(b.get("job_ids") or ()))
                      for b in (plan or {}).get("batches") or [])
        if plan and int(plan.get("due") or 0) > planned:
            return 0.0
        return timing.min_cycle_seconds
    sleep = backoff(min(21, int(state["empty"])), timing.min_sleep_seconds, cap)
    if plan and plan.get("next_wake"):
        until = (datetime.fromisoformat(plan["next_wake"].replace("Z", "+00:00"))
                 - now).total_seconds()
        sleep = min(sleep, max(0.0, until))
    return float(max(sleep, timing.min_cycle_seconds))


def _cycle_wait_seconds(timing: CycleTiming, state: dict[str, Any]) -> float:
    """How long a cycle waits for its activities: JOBS_CYCLE_DEADLINE_SECONDS, and longer
    after plans that missed it. The first such cycle re-plans at once (an instance died).
    While plans keep missing the deadline, the activities' instances are down or their queue
    is backed up: re-planning after every deadline queued one more plan behind them without
    end (the simulation's seed 34542 piled up thousands), so each next cycle waits for its
    own plan 1 s, 2 s, 4 s ... (up to JOBS_MAX_SLEEP_SECONDS) longer, and uses it if it comes.
    Batches still out at the deadline do not count: handlers may run longer than it, and the
    slot plans its other due jobs at once."""
    late = int(state.get("plans_overdue") or 0)
    extra = backoff(min(21, late), timing.min_sleep_seconds,
                    timing.max_sleep_seconds) if late else 0.0
    return timing.cycle_deadline_seconds + extra


def jobs_slot(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    state: dict[str, Any] = dict(context.get_input() or {})
    slot = int(state.get("slot", 0))
    state.setdefault("cycle", 0)
    state.setdefault("empty", 0)
    state.setdefault("errors", 0)
    state.setdefault("plans_overdue", 0)
    state["cycle"] += 1
    now = context.current_utc_datetime
    # (an execution started without timings, by an older starter, reads them this once)
    timing = CycleTiming.from_dict(state.get("timing")) or CycleTiming.current()
    owner = get_runtime().owner(slot)
    error: str | None = None
    plan: dict[str, Any] | None = None
    totals = dict.fromkeys(COUNTS, 0)
    lateness = Histogram()
    # the cycle's deadline: an activity whose instance died comes back only after its
    # message's visibility timeout (5 min); re-planning sooner is safe, because a job still
    # running there is not due, and its outcome is recorded in its blob anyway
    wait = _cycle_wait_seconds(timing, state)
    deadline_at = now + timedelta(seconds=wait)
    deadline = context.create_timer(deadline_at)
    overdue = plan_overdue = False
    planning = context.call_activity("plan_cycle", {"slot": slot, "owner": owner})
    finished = yield context.task_any([planning, deadline])
    if finished is deadline:
        overdue = plan_overdue = True
        if not context.is_replaying:
            log.warning("slot %s cycle %s: plan_cycle still out after %g s: re-planning", slot,
                        state["cycle"], wait)
    elif _failed(planning):
        error = f"plan_cycle failed: {planning.result}"[:MAX_ERROR_CHARS]
    else:
        plan = planning.result
    if plan and plan.get("claim_held"):
        error = str(plan["claim_held"])[:MAX_ERROR_CHARS]
    batches = (plan or {}).get("batches") or []
    publish = bool((plan or {}).get("publish")) and error is None
    published: dict[str, Any] | None = None
    work_deadline: Any = None
    if batches or publish:
        tasks = [context.call_activity("execute_batch", b) for b in batches]
        if publish:
            tasks.append(context.call_activity("publish_events", {"slot": slot}))
        work = context.task_all(tasks)
        # A timer of its own, at the same time: the SDK leaves a task yielded before out of a
        # later task_any, and the extension awaits each yielded task in turn, so with `deadline`
        # here the real host waited for every batch, however long (devhost's shim_progress)
        work_deadline = context.create_timer(deadline_at)
        try:
            finished = yield context.task_any([work, work_deadline])
        except Exception as exc:  # (the SDK reports a failed task_all through task_any)
            finished = work
            error = f"execute_batch failed: {exc}"[:MAX_ERROR_CHARS]
        if finished is work_deadline:
            overdue = True
            pending = sum(1 for t in tasks if not t.is_completed)
            if not context.is_replaying:
                log.warning("slot %s cycle %s: %s of %s activities still out after %g s: "
                            "re-planning", slot, state["cycle"], pending, len(tasks), wait)
        elif error is None and _failed(work):
            error = f"execute_batch failed: {work.result}"[:MAX_ERROR_CHARS]
        # what every activity that finished reported counts, also when another one failed or
        # is still out (task_all fails on the first failure: its result holds no other's)
        results = [t.result if t.is_completed and not _failed(t) else None for t in tasks]
        if publish:
            published = results.pop()
        for result in results:
            for name in COUNTS:
                totals[name] += int((result or {}).get(name, 0))
            lateness.merge(Histogram.from_dict((result or {}).get("lateness")))
    if error is not None:
        state["errors"] += 1
        if not context.is_replaying:
            log.warning("slot %s cycle %s: %s", slot, state["cycle"], error)
    else:
        state["errors"] = 0
    # worked: a job started, was abandoned or moved. Batches that did nothing (every job
    # changed or moved by someone else first) back off like an empty cycle instead of spinning
    for cycle_timer in (deadline, work_deadline):
        if cycle_timer is not None and not cycle_timer.is_completed:
            cycle_timer.cancel()
    worked = error is None and (overdue or
                                any(totals[k] for k in ("started", "abandoned", "moved")))
    state["empty"] = 0 if worked else state["empty"] + 1
    state["plans_overdue"] = state["plans_overdue"] + 1 if plan_overdue else 0
    timing = CycleTiming.from_dict((plan or {}).get("timing")) or timing
    state["timing"] = timing.to_dict()
    sleep = _sleep_seconds(timing, state, plan, now, worked, error is not None)
    wake_at = now + timedelta(seconds=sleep)
    cumulative = dict.fromkeys(COUNTS, 0)
    cumulative.update(state.get("totals") or {})
    for name in COUNTS:
        cumulative[name] += totals[name]
    state["totals"] = cumulative
    all_lateness = Histogram.from_dict(state.get("lateness"))
    all_lateness.merge(lateness)
    state["lateness"] = all_lateness.to_dict()
    metrics = {
        "claim_ms": (plan or {}).get("claim_ms"),
        "lateness_ms": lateness.summary(),
        "lateness_ms_total": all_lateness.summary(),
        "lateness_histogram": all_lateness.to_dict(),
        "retry_rate": retry_rate(cumulative["retried"], cumulative["succeeded"],
                                 cumulative["failed"]),
        "storage_requests_per_minute": (plan or {}).get("storage_requests_per_minute"),
        "events": (plan or {}).get("events"),
        "events_from_log": published if published is not None else state.get("published"),
    }
    status = {
        "slot": slot, "cycle": state["cycle"], "last_cycle": _iso(now),
        "next_wake": _iso(wake_at), "due": (plan or {}).get("due", 0),
        "pending": (plan or {}).get("pending", 0), "batches": len(batches), "counts": totals,
        "totals": cumulative, "metrics": metrics,
        "last_error": error or state.get("last_error"),
        "last_error_at": _iso(now) if error else state.get("last_error_at"),
        "plans_overdue": state["plans_overdue"],
    }
    context.set_custom_status(status)
    if not context.is_replaying and (batches or error):
        # one structured line per working cycle: Application Insights `traces`, see README
        log.info("jobs.cycle %s", json.dumps({
            "slot": slot, "cycle": state["cycle"], "due": status["due"],
            "pending": status["pending"], **{f"jobs_{k}": v for k, v in totals.items()},
            "claim_ms": metrics["claim_ms"], "lateness_p50_ms": lateness.percentile(0.5),
            "lateness_p95_ms": lateness.percentile(0.95),
            "lateness_max_ms": round(lateness.max_ms, 1),
            "retry_rate": metrics["retry_rate"],
            "storage_requests_per_minute": metrics["storage_requests_per_minute"],
            "error": error}, separators=(",", ":")))
    if error:
        state["last_error"], state["last_error_at"] = error, _iso(now)
    if published is not None:
        state["published"] = published
    if wake_at > context.current_utc_datetime:  # (the cycle may have taken longer)
        timer = context.create_timer(wake_at)
        wake = context.wait_for_external_event("wake")
        yield context.task_any([timer, wake])
    context.continue_as_new(state)
