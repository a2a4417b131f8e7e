"""Make sure every slot's eternal orchestrator runs (HTTP starter and timer keeper)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from jobs_core.clock import utcnow
from jobs_core.errors import JobsError, TransientStoreError
from jobs_core.handler_limits import HandlerPermits
from jobs_core.metrics import Histogram, retry_rate

from .http_api import json_response
from .orchestrator import COUNTS, ORCHESTRATOR, slot_input
from .registry import handlers as registry
from .runtime import get_runtime, instance_id

log = logging.getLogger(__name__)
RESTARTABLE = {"Completed", "Failed", "Terminated", "Canceled"}


def _status_name(status: Any) -> str | None:
    runtime_status = getattr(status, "runtime_status", None)
    if runtime_status is None:
        return None
    return str(getattr(runtime_status, "value", runtime_status))


async def ensure_slot(client: df.DurableOrchestrationClient, slot: int) -> dict[str, Any]:
    iid = instance_id(slot)
    status = await client.get_status(iid)
    state = _status_name(status)
    if state is not None and state not in RESTARTABLE:
        return {"slot": slot, "instance_id": iid, "action": "already running", "status": state}
    try:
        await client.start_new(ORCHESTRATOR, iid, slot_input(slot))
    except Exception as exc:  # 409: a concurrent start won; it runs now
        if "409" in str(exc) or "already" in str(exc).lower():
            return {"slot": slot, "instance_id": iid, "action": "already running",
                    "status": "Running"}
        raise
    return {"slot": slot, "instance_id": iid, "action": "started", "previous": state,
            "status": "Pending"}


async def ensure_all(client: df.DurableOrchestrationClient) -> list[dict[str, Any]]:
    slots = range(get_runtime().settings.slots)
    results = await asyncio.gather(*(ensure_slot(client, k) for k in slots),
                                   return_exceptions=True)
    out: list[dict[str, Any]] = []
    for k, result in zip(slots, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("could not ensure slot %s: %r", k, result)
            out.append({"slot": k, "instance_id": instance_id(k), "action": "error",
                        "error": str(result)[:500]})
        else:
            out.append(result)
    return out


async def describe_all(client: df.DurableOrchestrationClient) -> list[dict[str, Any]]:
    out = []
    for k in range(get_runtime().settings.slots):
        status = await client.get_status(instance_id(k))
        out.append({"slot": k, "instance_id": instance_id(k),
                    "runtime_status": _status_name(status),
                    "custom_status": getattr(status, "custom_status", None),
                    "last_updated": str(getattr(status, "last_updated_time", None) or "")
                    or None})
    return out


def aggregate_metrics(slots: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator figures over every slot (each slot's custom status carries its own)."""
    totals = dict.fromkeys(COUNTS, 0)
    lateness = Histogram()
    claim_ms: list[float] = []
    events = None
    for slot in slots:
        status = slot.get("custom_status")
        if not isinstance(status, dict):
            continue
        for name in COUNTS:
            totals[name] += int((status.get("totals") or {}).get(name, 0))
        metrics = status.get("metrics") or {}
        lateness.merge(Histogram.from_dict(metrics.get("lateness_histogram")))
        if isinstance(metrics.get("claim_ms"), int | float):
            claim_ms.append(float(metrics["claim_ms"]))
        events = events or metrics.get("events")
    runtime = get_runtime()
    if runtime.events is not None:
        events = {**runtime.events.stats.to_dict(), "pending": runtime.events.pending}
    return {
        "jobs": totals,
        "failures": totals["failed"],
        "retry_rate": retry_rate(totals["retried"], totals["succeeded"], totals["failed"]),
        "lateness_ms": lateness.summary(),
        "claim_ms": {"last_max": max(claim_ms) if claim_ms else None,
                     "last_mean": round(sum(claim_ms) / len(claim_ms), 2) if claim_ms else None},
        "storage_requests_per_minute": runtime.counter.recent(60),
        "events": events,
    }


async def check_settings(storage_down_ok: bool) -> bool:
    """Open the job store, which checks this deployment's settings against the container's
    layout (``jobs_core/layout.py``): a misconfigured app raises ``SettingsError`` (a 503
    ``misconfigured``). Storage that cannot be reached raises too, unless ``storage_down_ok``
    (the slots' status still answers then): the answer says whether the store is open."""
    try:
        await get_runtime().store()
    except TransientStoreError as exc:
        if not storage_down_ok:
            raise
        log.warning("scheduler status: storage unavailable: %s", exc)
        return False
    return True


async def report(client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """``GET /api/scheduler``: every slot's orchestrator status plus the aggregate figures."""
    store_open = await check_settings(storage_down_ok=True)
    slots = await describe_all(client)
    return {"slots": slots, "metrics": aggregate_metrics(slots),
            "handler_limits": await handler_limits(store_open)}


async def start_route(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """``POST /api/scheduler/start`` (through ``http_api.guarded``, as every route): a
    misconfigured app, or one whose job store cannot be reached, is a 503 problem; it used
    to answer 200 and start slots whose every cycle then failed."""
    await check_settings(storage_down_ok=False)
    return json_response({"slots": await ensure_all(client)})


async def report_route(req: func.HttpRequest,
                       client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """``GET /api/scheduler``: storage down or a misconfigured app is a 503 problem, not a
    500 (hunt of stop 29); handler permits that cannot be read are ``in_use: null``."""
    return json_response(await report(client))


async def handler_limits(store_open: bool = True) -> dict[str, Any]:
    """Each limited handler's limits and the permits in use now (one HEAD request each; none
    when the store could not be opened: ``in_use`` is null then)."""
    runtime = get_runtime()
    limits = registry.limits(runtime.settings.handler_limits)
    if not limits:
        return {}
    # the store is open (and cached) when ``check_settings`` said so; storage down on a cold
    # process leaves it closed, and the slots' status still answers (see README)
    permits = HandlerPermits(await runtime.store(), limits, utcnow) if store_open else None
    out: dict[str, Any] = {}
    for name, limit in sorted(limits.items()):
        in_use: int | None = None
        if permits is not None:
            with contextlib.suppress(JobsError):
                in_use = await permits.in_use(name)
        out[name] = {**limit.to_dict(), "in_use": in_use}
    return out
