"""HTTP handlers of /api/jobs (JSON in and out, errors as problem+json)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from jobs_core import Job, JobRequest, JobStatus, Scheduled
from jobs_core.errors import JobsError, JobValidationError
from jobs_core.handlers import validate_handler_name
from jobs_core.ids import parse_job_id
from jobs_core.labels import has_control, parse_label_filter
from jobs_core.limits import MAX_CANCEL_REASON_CHARS, MAX_LIST_LIMIT

from .problems import ApiProblem, error_response, problem_of
from .query_params import parse_int, parse_time
from .runtime import get_runtime

log = logging.getLogger(__name__)
JOB_FIELDS = {"handler", "payload", "due_at", "delay", "idempotency_key", "retry", "recurrence",
              "notify", "timeout_seconds", "labels"}
PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
POLL_SECONDS = 0.2
Handler = Callable[[func.HttpRequest, df.DurableOrchestrationClient], Awaitable[func.HttpResponse]]


def json_response(body: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json",
                             charset="utf-8", headers=headers or {})


def guarded(handler: Handler) -> Handler:
    """Answer every expected error as problem+json (never a 500 for bad input)."""

    async def run(req: func.HttpRequest,
                  client: df.DurableOrchestrationClient) -> func.HttpResponse:
        try:
            return await handler(req, client)
        except (ApiProblem, JobsError) as exc:
            return error_response(exc)

    run.__name__ = handler.__name__
    return run


def read_json(req: func.HttpRequest, limit: int) -> Any:
    body = req.get_body() or b""
    if len(body) > limit:
        raise ApiProblem(413, "body-too-large", "Request body too large",
                         f"the body is {len(body)} bytes; the limit is {limit} bytes")
    ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiProblem(415, "unsupported-media-type", "Unsupported media type",
                         f"send JSON with 'Content-Type: application/json' (got {ctype!r})")
    try:
        value = json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        # a lone surrogate escape ("\ud800") is valid JSON but no text: records could not be
        # encoded, after a key claim or another batch item was written (hunt of stop 28: a 500)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiProblem(400, "invalid-json", "Invalid JSON",
                         "the body holds a string that is not Unicode text (a lone surrogate "
                         "escape such as \\ud800)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, "invalid-json", "Invalid JSON", f"the body is not JSON: {exc}") \
            from None
    except RecursionError:
        raise ApiProblem(400, "invalid-json", "Invalid JSON",
                         "the body nests arrays/objects too deeply") from None
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key twice in one object is refused (json.loads would silently keep the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def to_request(item: Any, header_key: str | None = None,
               traceparent: str | None = None) -> JobRequest:
    if not isinstance(item, dict):
        raise JobValidationError("a job must be a JSON object")
    unknown = set(item) - JOB_FIELDS
    if unknown:
        raise JobValidationError(f"unknown fields: {sorted(unknown)}", field=sorted(unknown)[0])
    if "handler" not in item:
        raise JobValidationError("'handler' is required", field="handler")
    key = item.get("idempotency_key")
    if header_key is not None:
        if key is not None and key != header_key:
            raise JobValidationError("the Idempotency-Key header and idempotency_key differ",
                                     field="idempotency_key")
        key = header_key
    return JobRequest(handler=item["handler"], payload=item.get("payload"),
                      due_at=item.get("due_at"), delay=item.get("delay"), idempotency_key=key,
                      retry=item.get("retry"), recurrence=item.get("recurrence"),
                      notify=item.get("notify"), timeout_seconds=item.get("timeout_seconds"),
                      labels=item.get("labels"), traceparent=traceparent)


def job_location(job_id: str) -> str:
    return f"/api/jobs/{job_id}"


async def wake_slots(client: df.DurableOrchestrationClient, done: Iterable[Scheduled]) -> None:
    """Wake the slots of new jobs due within the slot's longest sleep, when that can matter
    and in the background (``wake.py``: at most one event per slot per second, none for a
    job due after the slot's known next wake-up). New: created, or added by this request for
    a key claimed by one whose add never landed (a ``200``, often in another process)."""
    runtime = get_runtime()
    horizon = datetime.now(UTC) + timedelta(seconds=runtime.settings.max_sleep_seconds)
    due: dict[int, datetime] = {}
    for s in done:
        if (s.created or s.added is not None) and s.job.due_at <= horizon:
            due[s.slot] = min(due.get(s.slot, s.job.due_at), s.job.due_at)
    if due:
        runtime.wake_gate().wake(client, due)


def wait_seconds(req: func.HttpRequest) -> float:
    raw = req.params.get("wait")
    if raw is None:
        match = PREFER_WAIT.search(req.headers.get("prefer") or "")
        raw = match.group(1) if match else None
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise JobValidationError(f"wait must be a number of seconds, got {raw!r}",
                                 field="wait") from None
    if not math.isfinite(value) or value < 0:
        raise JobValidationError(f"wait must be a finite number of seconds >= 0, got {raw!r}",
                                 field="wait")
    return min(value, get_runtime().api.max_wait_seconds)


def finished(job: Job, runs_before: int) -> bool:
    """Final, or (a recurring job, or one retried after it ended) a run done since the job
    had ``runs_before``."""
    return job.status.is_final or job.runs > runs_before


async def create_job(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    runtime = get_runtime()
    wait = wait_seconds(req)
    body = read_json(req, runtime.api.max_body_bytes)
    request = to_request(body, req.headers.get("idempotency-key"),
                         req.headers.get("traceparent"))
    scheduler = await runtime.scheduler()
    scheduled = await scheduler.schedule(request)
    await wake_slots(client, [scheduled])
    job = scheduled.job
    headers = {"Location": job_location(job.id)}
    status = 201 if scheduled.created else 200
    # a replayed key may find runs already done (a recurring job, or one retried after its
    # end waiting again): the wait is for the next one (it once answered 200 at once)
    runs_before = job.runs
    if wait > 0:  # (RFC 7240: tells a client that a 200 came after the wait)
        headers["Preference-Applied"] = "wait"
    if wait > 0 and not finished(job, runs_before):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            try:
                job = await scheduler.get(job.id)
            except JobsError as exc:  # the job is written: never an error answer now (a 503
                # said it was not, and a caller without a key scheduled it again: hunt of
                # stop 28); 202 with the job as last seen, and where to ask again
                log.warning("waiting for job %s: %s; answering 202", job.id, exc)
                break
            if finished(job, runs_before):
                break
        if not finished(job, runs_before):
            retry_after = max(1, int(runtime.settings.max_sleep_seconds // 4) or 1)
            return json_response(job.to_dict(), 202,
                                 {**headers, "Retry-After": str(retry_after)})
        status = 200
    return json_response(job.to_dict(), status, headers)


async def create_batch(req: func.HttpRequest,
                       client: df.DurableOrchestrationClient) -> func.HttpResponse:
    runtime = get_runtime()
    body = read_json(req, runtime.api.max_batch_body_bytes)
    items = body.get("jobs") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise JobValidationError("the body must be {\"jobs\": [...]}", field="jobs")
    if len(items) > runtime.api.max_batch:
        raise ApiProblem(413, "batch-too-large", "Batch too large",
                         f"{len(items)} jobs; the limit is {runtime.api.max_batch} "
                         "(JOBS_MAX_BATCH)",
                         "jobs")
    results: list[dict[str, Any] | None] = [None] * len(items)
    requests: list[JobRequest] = []
    positions: list[int] = []
    for i, item in enumerate(items):
        try:
            requests.append(to_request(item, traceparent=req.headers.get("traceparent")))
            positions.append(i)
        except JobsError as exc:
            problem = problem_of(exc)
            results[i] = {"status": problem["status"], "problem": problem}
    scheduler = await runtime.scheduler()
    outcomes = await scheduler.schedule_many(requests) if requests else []
    done: list[Scheduled] = []
    for i, outcome in zip(positions, outcomes, strict=True):
        if isinstance(outcome, Scheduled):
            done.append(outcome)
            results[i] = {"status": 201 if outcome.created else 200,
                          "job": outcome.job.to_dict()}
        else:
            problem = problem_of(outcome)
            results[i] = {"status": problem["status"], "problem": problem}
    await wake_slots(client, done)
    return json_response({"results": results})


async def get_job(req: func.HttpRequest,
                  client: df.DurableOrchestrationClient) -> func.HttpResponse:
    scheduler = await get_runtime().scheduler()
    job = await scheduler.get(req.route_params["id"])
    return json_response(job.to_dict())


async def cancel_job(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    reason = req.params.get("reason")
    if reason is not None and (len(reason) > MAX_CANCEL_REASON_CHARS or
                               has_control(reason)):
        raise JobValidationError(  # (100 KB with a NUL was kept in the log: hunt of stop 28)
            f"reason is at most {MAX_CANCEL_REASON_CHARS} characters, without control "
            "characters", field="reason")
    scheduler = await get_runtime().scheduler()
    job = await scheduler.cancel(req.route_params["id"], reason)
    return json_response(job.to_dict())


async def run_job(req: func.HttpRequest,
                  client: df.DurableOrchestrationClient) -> func.HttpResponse:
    scheduler = await get_runtime().scheduler()
    job = await scheduler.run_now(req.route_params["id"])
    slot = parse_job_id(job.id).key.slot
    await wake_slots(client, [Scheduled(job, created=True)])
    log.debug("run now: %s on slot %s", job.id, slot)
    return json_response(job.to_dict())


async def retry_job(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """``POST /api/jobs/{id}/retry``: a failed or cancelled job runs again now, as a new run
    with a fresh attempt budget (same id, history kept)."""
    scheduler = await get_runtime().scheduler()
    job = await scheduler.retry(req.route_params["id"])
    await wake_slots(client, [Scheduled(job, created=True)])
    return json_response(job.to_dict())


async def update_job(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """``PATCH /api/jobs/{id}``: new payload, retry, recurrence or timeout for a waiting or
    paused job (``jobs_core/job_update.py``)."""
    runtime = get_runtime()
    body = read_json(req, runtime.api.max_body_bytes)
    scheduler = await runtime.scheduler()
    job = await scheduler.update(req.route_params["id"], body)
    await wake_slots(client, [Scheduled(job, created=True)])
    return json_response(job.to_dict())


async def pause_job(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    scheduler = await get_runtime().scheduler()
    return json_response((await scheduler.pause(req.route_params["id"])).to_dict())


async def resume_job(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    scheduler = await get_runtime().scheduler()
    job = await scheduler.resume(req.route_params["id"])
    await wake_slots(client, [Scheduled(job, created=True)])
    return json_response(job.to_dict())


RESCHEDULE_FIELDS = frozenset({"due_at", "delay"})


async def reschedule_job(req: func.HttpRequest,
                         client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """``POST /api/jobs/{id}/reschedule`` with ``{"due_at": ...}`` or ``{"delay": ...}``: a
    waiting job (scheduled or retrying; a recurring job's next occurrence) gets a new due
    time. 409 with the job's real state when it is not waiting."""
    runtime = get_runtime()
    body = read_json(req, runtime.api.max_body_bytes)
    if not isinstance(body, dict):
        raise JobValidationError('the body must be a JSON object: {"due_at": "...Z"} or '
                                 '{"delay": seconds}')
    unknown = set(body) - RESCHEDULE_FIELDS
    if unknown:
        raise JobValidationError(f"unknown fields: {sorted(unknown)}; a reschedule takes "
                                 "due_at or delay", field=sorted(unknown)[0])
    for name in sorted(body):
        if body[name] is None:
            raise JobValidationError(f"{name} must not be null", field=name)
    scheduler = await runtime.scheduler()
    job = await scheduler.reschedule(req.route_params["id"], body.get("due_at"),
                                     delay=body.get("delay"))
    await wake_slots(client, [Scheduled(job, created=True)])
    return json_response(job.to_dict())


async def list_jobs(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    runtime = get_runtime()
    p = req.params
    status = None
    if p.get("status"):
        try:
            status = JobStatus(p["status"])
        except ValueError:
            raise JobValidationError(
                f"status must be one of {[s.value for s in JobStatus]}", field="status") \
                from None
    handler = p.get("handler") or None
    if handler is not None:  # (a repeated ?handler= reaches us joined with commas: it matched
        validate_handler_name(handler)  # nothing, silently)
    scheduler = await runtime.scheduler()
    page = await scheduler.list(
        slot=parse_int("slot", p.get("slot"), 0, runtime.settings.slots - 1),
        status=status, handler=handler,
        due_from=parse_time("due_from", p.get("due_from")),
        due_to=parse_time("due_to", p.get("due_to")),
        limit=parse_int("limit", p.get("limit"), 1, MAX_LIST_LIMIT) or 100,
        cursor=p.get("cursor") or None,
        labels=parse_label_filter(p["label"].split(",")) if p.get("label") else None)
    return json_response({"jobs": [j.to_dict() for j in page.jobs],
                          "next_cursor": page.next_cursor})
