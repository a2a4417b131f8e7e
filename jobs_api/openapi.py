"""GET /api/openapi.json: the OpenAPI 3.1 document of the HTTP API.

The document is Python data built from the settings the app runs with (limits, slots, the
registered handler names), so it states what this deployment accepts. It is built once per
process; the settings do not change while a process runs.
"""

from __future__ import annotations

import functools
import json

import azure.functions as func

from jobs_core import JobsSettings, JobStatus
from jobs_core.labels import LABEL_FILTER_PATTERN, NO_CONTROL_PATTERN
from jobs_core.limits import JOB_ID_PATTERN, MAX_CANCEL_REASON_CHARS, MAX_LIST_LIMIT
from jobs_core.settings import SettingsError

from .openapi_operator import operator_paths, operator_schemas
from .openapi_parts import (
    JSON,
    Doc,
    errors,
    header,
    json_body,
    operation,
    problem,
    query,
    ref,
    shared_responses,
)
from .openapi_schemas import component_schemas
from .problems import PROBLEM_TYPE, RETRY_AFTER_SECONDS, error_response
from .registry import handlers as registry
from .runtime import ApiSettings, get_runtime

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
CACHE_CONTROL = "private, max-age=60"  # the same for every caller; settings change on restart


def json_request(schema_name: str, limit: int, setting: str, required: bool = True) -> Doc:
    return {"required": required, "description": f"JSON, at most {limit} bytes ({setting})",
            "content": {JSON: {"schema": ref(schema_name)}}}


def job_paths(settings: JobsSettings, api: ApiSettings) -> dict[str, Doc]:
    located = {"Location": header("Location")}
    job = ref("Job")
    wait = api.max_wait_seconds
    create = operation(
        "jobs_create", "Schedule a job",
        {"201": json_body(job, "Scheduled (written to storage before this answer)",
                          headers=located),
         "200": json_body(job, "An idempotent replay (same key, same request), or with wait: "
                               "the job finished in time (final, or a run done since it was "
                               "answered: a replayed key waits for the next run)",
                          headers={**located, "Preference-Applied": header("PreferenceApplied")}),
         "202": json_body(job, "With wait: the job has not finished yet; poll Location",
                          headers={**located, "Retry-After": header("RetryAfter"),
                                   "Preference-Applied": header("PreferenceApplied")}),
         "409": problem("The idempotency key was used for another handler or payload"),
         **errors(400, 413, 415, 503)},
        parameters=[
            query("wait", {"type": "number", "minimum": 0},
                  f"seconds to wait for the job to finish (capped at {wait:g}, "
                  "JOBS_MAX_WAIT_SECONDS)"),
            {"name": "Prefer", "in": "header", "required": False,
             "schema": {"type": "string", "examples": ["wait=10"]},
             "description": "RFC 7240 `wait=N`: the same as ?wait=N"},
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "pattern": r"^[!-~]{1,200}$",
                        "not": {"pattern": "^occurrence:"}},
             "description": "the same as the body's idempotency_key (they must not differ)"},
        ],
        requestBody=json_request("JobRequest", api.max_body_bytes, "JOBS_MAX_BODY_BYTES"))
    listing = operation(
        "jobs_list", "List jobs (in shard order, filtered)",
        {"200": json_body(ref("JobPage"), "One page of jobs"), **errors(400, 503)},
        parameters=[
            query("status", {"type": "string", "enum": [s.value for s in JobStatus]},
                  "only jobs in this status"),
            query("handler", {"type": "string"}, "only jobs of this handler"),
            query("label", {"type": "string", "pattern": LABEL_FILTER_PATTERN},
                  "only jobs with these labels: key:value (that value) or key (any value), "
                  "comma-separated, all must match (at most 8, each key once; a value cannot "
                  "hold a comma)"),
            query("slot", {"type": "integer", "minimum": 0, "maximum": settings.slots - 1},
                  f"only this slot (0..{settings.slots - 1}, JOBS_SLOTS)"),
            query("due_from", {"type": "string", "format": "date-time"},
                  "due at or after (ISO-8601 with offset)"),
            query("due_to", {"type": "string", "format": "date-time"},
                  "due before (ISO-8601 with offset)"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT,
                            "default": 100}, "page size"),
            query("cursor", {"type": "string"}, "next_cursor of the previous page"),
        ])
    batch = operation(
        "jobs_batch", "Schedule many jobs (one append per shard)",
        {"200": json_body(ref("BatchResponse"), "One result per item, in order"),
         **errors(400, 413, 415, 503)},
        requestBody=json_request("BatchRequest", api.max_batch_body_bytes,
                                 "JOBS_MAX_BATCH_BODY_BYTES"))
    job_id = {"$ref": "#/components/parameters/JobId"}
    one = json_body(job, "The job")
    return {
        "/jobs": {"post": create, "get": listing},
        "/jobs/batch": {"post": batch},
        "/jobs/{id}": {
            "parameters": [job_id],
            "get": operation("jobs_get", "Get a job", {"200": one, **errors(400, 404, 503)}),
            "delete": operation(
                "jobs_cancel", "Cancel a job (only while scheduled, retrying or paused)",
                {"200": json_body(job, "Cancelled"), **errors(400, 404, 409, 503)},
                parameters=[query("reason", {"type": "string", "maxLength": MAX_CANCEL_REASON_CHARS,
                                                "pattern": NO_CONTROL_PATTERN},
                                      "kept as cancel_reason")]),
            "patch": operation(
                "jobs_update", "Change a waiting or paused job (payload, retry, recurrence, "
                "timeout)",
                {"200": json_body(job, "Updated (written to storage before this answer)"),
                 "409": problem("The job is running or final: nothing changed (a running "
                                "attempt is never changed under its feet)"),
                 **errors(400, 404, 413, 415, 503)},
                requestBody=json_request("JobUpdate", api.max_body_bytes,
                                         "JOBS_MAX_BODY_BYTES")),
        },
        "/jobs/{id}/run": {
            "parameters": [job_id],
            "post": operation("jobs_run", "Run a waiting job now",
                              {"200": json_body(job, "Due now"),
                               **errors(400, 404, 409, 503)}),
        },
        "/jobs/{id}/retry": {
            "parameters": [job_id],
            "post": operation(
                "jobs_retry", "Run a failed or cancelled job again, as a new run",
                {"200": json_body(job, "Due now, with a fresh attempt budget (runs + 1; same "
                                       "id, its history kept)"),
                 "409": problem("The job is not failed or cancelled (or another retry won); "
                                "nothing changed"),
                 **errors(400, 404, 503)}),
        },
        "/jobs/{id}/pause": {
            "parameters": [job_id],
            "post": operation(
                "jobs_pause", "Hold a waiting job (a recurring schedule, a one-off job, a retry)",
                {"200": json_body(job, "Paused: it does not run until resumed"),
                 "409": problem("The job is not waiting (running, paused, or final); nothing "
                                "changed"),
                 **errors(400, 404, 503)}),
        },
        "/jobs/{id}/resume": {
            "parameters": [job_id],
            "post": operation(
                "jobs_resume", "Let a paused job wait again",
                {"200": json_body(job, "Waiting again: a recurring job for its next occurrence "
                                       "from now, a one-off job for its due time or now"),
                 "409": problem("The job is not paused; nothing changed"),
                 **errors(400, 404, 503)}),
        },
        "/jobs/{id}/reschedule": {
            "parameters": [job_id],
            "post": operation(
                "jobs_reschedule", "Give a waiting job a new due time",
                {"200": json_body(job, "Rescheduled (written to storage before this answer)"),
                 "409": problem("The job is not waiting (running, or final): the detail says "
                                "its state; nothing changed"),
                 **errors(400, 404, 413, 415, 503)},
                requestBody=json_request("RescheduleRequest", api.max_body_bytes,
                                         "JOBS_MAX_BODY_BYTES")),
        },
    }


def build_document(settings: JobsSettings, api: ApiSettings,
                   handlers: list[str] | None = None) -> Doc:
    handlers = registry.names() if handlers is None else handlers
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Durable jobs",
            "version": API_VERSION,
            "description": (
                "Schedule jobs (a registered handler, a JSON payload, a due time) that run "
                "durably on Azure Functions. Errors are application/problem+json "
                f"(RFC 9457); their `type` starts with {PROBLEM_TYPE}. Limits in this document "
                "are the deployment's settings."),
        },
        "servers": [{"url": "/api"}],
        "security": [{"functionKeyHeader": []}, {"functionKeyQuery": []}],
        "paths": {**job_paths(settings, api), **operator_paths(settings)},
        "components": {
            "securitySchemes": {
                "functionKeyHeader": {"type": "apiKey", "in": "header",
                                      "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
            "parameters": {"JobId": {
                "name": "id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
                "description": "a job id as returned when the job was scheduled; another text "
                               "is 400"}},
            "headers": {
                "Location": {"description": "the job's URL", "required": True,
                             "schema": {"type": "string", "examples": [
                                 "/api/jobs/j20261122T1400-s003-0000-1a2b3c4d5e6f7a8b"]}},
                "PreferenceApplied": {
                    "description": "wait: the answer came after waiting for the job (RFC "
                                   "7240), so a 200 means it finished; without it a 200 or "
                                   "201 came at once (no wait asked, or JOBS_MAX_WAIT_SECONDS "
                                   "is 0)",
                    "schema": {"type": "string", "enum": ["wait"]}},
                "RetryAfter": {"description": "seconds to wait before asking again",
                               "required": True,
                               "schema": {"type": "integer", "minimum": 1,
                                          "examples": [RETRY_AFTER_SECONDS]}},
            },
            "responses": shared_responses(),
            "schemas": {**component_schemas(settings, api, handlers), **operator_schemas(settings)},
        },
    }


@functools.cache
def document_json() -> bytes:
    runtime = get_runtime()
    return json.dumps(build_document(runtime.settings, runtime.api), separators=(",", ":")).encode()


def document_response(req: func.HttpRequest) -> func.HttpResponse:
    try:
        document = document_json()
    except SettingsError as exc:  # like every other route: 503 misconfigured, never a 500
        return error_response(exc)
    return func.HttpResponse(document, status_code=200, mimetype=JSON, charset="utf-8",
                             headers={"Cache-Control": CACHE_CONTROL})
