"""The eternal per-slot orchestrator and its activities.

One cycle per execution: ``plan_cycle`` -> ``execute_batch`` fan-out -> custom status -> sleep
(timer or ``wake`` event, whichever first) -> ``continue_as_new`` with a small state.
Deterministic: time comes only from ``context.current_utc_datetime``; activity failures are
caught (and logged when not replaying) and never end the orchestrator.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from jobs_core import Batch
from jobs_core.errors import ClaimHeldError

from .runtime import get_runtime

log = logging.getLogger(__name__)
ORCHESTRATOR = "jobs_slot"
COUNTS = ("started", "succeeded", "retried", "failed", "abandoned", "skipped", "compensated")


# --- activities ---------------------------------------------------------------------------
async def plan_cycle(request: dict[str, Any]) -> dict[str, Any]:
    """Claim the slot and plan its due work; a held claim is reported, not raised."""
    slot = int(request["slot"])
    executor = await get_runtime().executor(slot)
    try:
        plan = await executor.plan(slot)
    except ClaimHeldError as exc:
        return {"claim_held": str(exc), "batches": []}
    return plan.to_dict()


async def execute_batch(batch: dict[str, Any]) -> dict[str, Any]:
    b = Batch.from_dict(batch)
    executor = await get_runtime().executor(b.slot)
    return (await executor.execute(b)).to_dict()


# --- orchestrator ---------------------------------------------------------------------------
def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _sleep_seconds(state: dict[str, Any], plan: dict[str, Any] | None, now: datetime,
                   worked: bool, failed: bool) -> float:
    api = get_runtime().api
    cap = get_runtime().settings.max_sleep_seconds
    if failed:
        return min(cap, api.error_sleep_seconds * 2 ** min(10, state["errors"] - 1))
    if worked:
        return 0.0  # outcomes may have made new work due (retries, recurrences): re-plan
    backoff = min(cap, api.min_sleep_seconds * 2 ** min(20, state["empty"] - 1))
    if plan and plan.get("next_wake"):
        until = (datetime.fromisoformat(plan["next_wake"].replace("Z", "+00:00"))
                 - now).total_seconds()
        backoff = min(backoff, max(0.0, until))
    return backoff


def jobs_slot(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    state: dict[str, Any] = dict(context.get_input() or {})
    slot = int(state.get("slot", 0))
    state.setdefault("cycle", 0)
    state.setdefault("empty", 0)
    state.setdefault("errors", 0)
    state["cycle"] += 1
    now = context.current_utc_datetime
    owner = get_runtime().owner(slot)
    error: str | None = None
    plan: dict[str, Any] | None = None
    totals = dict.fromkeys(COUNTS, 0)
    try:
        plan = yield context.call_activity("plan_cycle", {"slot": slot, "owner": owner})
    except Exception as exc:
        error = f"plan_cycle failed: {exc}"[:500]
    if plan and plan.get("claim_held"):
        error = str(plan["claim_held"])
    batches = (plan or {}).get("batches") or []
    if batches:
        try:
            results = yield context.task_all(
                [context.call_activity("execute_batch", b) for b in batches])
            for result in results:
                for name in COUNTS:
                    totals[name] += int((result or {}).get(name, 0))
        except Exception as exc:
            error = f"execute_batch failed: {exc}"[:500]
    if error is not None:
        state["errors"] += 1
        if not context.is_replaying:
            log.warning("slot %s cycle %s: %s", slot, state["cycle"], error)
    else:
        state["errors"] = 0
    worked = bool(batches) and error is None
    state["empty"] = 0 if batches else state["empty"] + 1
    sleep = _sleep_seconds(state, plan, now, worked, error is not None)
    wake_at = now + timedelta(seconds=sleep)
    context.set_custom_status({
        "slot": slot, "cycle": state["cycle"], "last_cycle": _iso(now),
        "next_wake": _iso(wake_at), "due": (plan or {}).get("due", 0),
        "pending": (plan or {}).get("pending", 0), "batches": len(batches), "counts": totals,
        "last_error": error or state.get("last_error"),
        "last_error_at": _iso(now) if error else state.get("last_error_at"),
    })
    if error:
        state["last_error"], state["last_error_at"] = error, _iso(now)
    if sleep > 0:
        timer = context.create_timer(wake_at)
        wake = context.wait_for_external_event("wake")
        yield context.task_any([timer, wake])
    context.continue_as_new(state)
