"""Component schemas of the OpenAPI document (JSON Schema 2020-12, as OpenAPI 3.1 uses it).

Every limit comes from the settings the app runs with, so the document served by a deployment
states that deployment's limits. The shapes follow the code that produces them: ``Job.to_dict``
(jobs_core/model.py), ``to_request`` (jobs_api/http_api.py), jobs_core/validation.py and
jobs_api/problems.py.
"""

from __future__ import annotations

from jobs_core import JobsSettings, JobStatus
from jobs_core.labels import (
    LABEL_KEY_PATTERN,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    NO_CONTROL_PATTERN,
)
from jobs_core.limits import (
    HANDLER_NAME_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    JOB_ID_PATTERN,
    MAX_RETRY_DELAY_SECONDS,
    MAX_TIMEOUT_SECONDS,
    QUEUE_NAME_PATTERN,
    SECONDS_PER_DAY,
)
from jobs_core.recurrence import (
    INTERVAL_MODES,
    MAX_CATCH_UP,
    MAX_JITTER_SECONDS,
    MAX_MISFIRE_GRACE_SECONDS,
    MAX_RUNS_LIMIT,
    MIN_INTERVAL_SECONDS,
    MIN_MISFIRE_GRACE_SECONDS,
    OVERLAP_POLICIES,
)

from .openapi_parts import TIMESTAMP, Schema, nullable, obj, ref
from .runtime import ApiSettings

# bucket start, slot, blob index, random
HANDLER_PATTERN = HANDLER_NAME_PATTERN  # (the document's names for the limits' patterns)
MAX_RETRY_DELAY = MAX_RETRY_DELAY_SECONDS


def retry_schemas(settings: JobsSettings) -> dict[str, Schema]:
    default = settings.retry
    fields = {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100,
                         "default": default.max_attempts,
                         "description": "attempts in all, the first one included"},
        "base_delay": {"type": "number", "minimum": 0, "maximum": MAX_RETRY_DELAY,
                       "default": default.base_delay,
                       "description": "seconds before the first retry (≤ max_delay)"},
        "max_delay": {"type": "number", "minimum": 0, "maximum": MAX_RETRY_DELAY,
                      "default": default.max_delay, "description": "cap of one backoff"},
        "jitter": {"type": "number", "minimum": 0, "maximum": 1, "default": default.jitter,
                   "description": "each delay is scaled by a random factor in [1-j, 1+j]"},
    }
    return {
        "RetryPolicyRequest": obj(fields, closed=True, description=(
            "Exponential backoff: the n-th retry waits min(max_delay, base_delay·2^(n-1)) "
            "seconds ± jitter. Fields left out take the deployment's defaults "
            "(JOBS_RETRY_*).")),
        "RetryPolicy": obj({k: {"type": v["type"]} for k, v in fields.items()},
                           required=list(fields)),
    }


def recurrence_schemas(settings: JobsSettings) -> dict[str, Schema]:
    horizon = settings.horizon_days * SECONDS_PER_DAY
    ends = {
        "until": {**TIMESTAMP, "description": (
            "no occurrence after this time (ISO-8601 with offset); the job is then "
            "succeeded or failed by its last run. Before the first occurrence: 400")},
        "max_runs": {"type": "integer", "minimum": 1, "maximum": MAX_RUNS_LIMIT,
                     "description": "at most this many occurrences (the job's runs), then the "
                                    "job is final"}}
    ends["misfire_grace_seconds"] = {
        "type": "number", "minimum": MIN_MISFIRE_GRACE_SECONDS,
        "maximum": MAX_MISFIRE_GRACE_SECONDS,
        "description": "misfire policy: an occurrence that would start more than this many "
                       "seconds late (after downtime) is skipped and the job waits for its "
                       "next one; lateness counts from the due time, or from the reschedule "
                       "or run-now that set it; without it a late occurrence runs once "
                       "(run_once)"}
    ends["catch_up_max"] = {
        "type": "integer", "minimum": 1, "maximum": MAX_CATCH_UP,
        "description": "misfire policy run_all (cron or fixed_rate): after downtime the missed "
                       "occurrences run back to back, the latest catch_up_max of them. Not with "
                       "misfire_grace_seconds"}
    ends["overlap"] = {
        "type": "string", "enum": list(OVERLAP_POLICIES), "default": "skip",
        "description": "an occurrence due while the previous one still runs (cron or "
                       "fixed_rate): skip it, buffer_one: run the first such one as soon as "
                       "the previous finishes, or allow: every occurrence runs as a job of its "
                       "own (labelled schedule_id), so they may overlap"}
    ends["jitter_seconds"] = {
        "type": "number", "minimum": 0, "maximum": MAX_JITTER_SECONDS,
        "description": "each occurrence computed after a run (and the first one, when no "
                       "due_at or delay is given) is delayed by a random 0..jitter_seconds, "
                       "to spread load; a resume or a recurrence PATCH is not delayed"}
    cron = obj({"cron": {"type": "string", "minLength": 9, "pattern": "^[\\t-\\r -~]+$",
                         "examples": ["0 2 * * *"],
                         "description": "5 fields: minute hour day-of-month month day-of-week"},
                "timezone": {"type": "string", "default": "UTC", "examples": ["Europe/Berlin"],
                             "description": "IANA time zone the cron is evaluated in"},
                **ends},
               required=["cron"], closed=True)
    interval = obj({
        "interval_seconds": {
            "type": "number", "minimum": MIN_INTERVAL_SECONDS, "maximum": horizon,
            "description": "fixed interval; at most the horizon (JOBS_HORIZON_DAYS)"},
        "interval_mode": {
            "type": "string", "enum": list(INTERVAL_MODES), "default": "fixed_delay",
            "description": "fixed_delay: the next run is interval_seconds after the previous "
                           "one finished (or was due, if later); fixed_rate: on the grid "
                           "anchor + k * interval_seconds, no drift, missed ones skipped"},
        "anchor": {**TIMESTAMP, "description": (
            "fixed_rate only: the grid's origin; default the first due time")},
        **ends}, required=["interval_seconds"], closed=True)
    return {
        "CronRecurrence": cron,
        "IntervalRecurrence": interval,
        "Recurrence": {"oneOf": [ref("CronRecurrence"), ref("IntervalRecurrence")],
                       "description": "A recurring job keeps one id; after each occurrence it "
                                      "is scheduled again for the next one."},
    }


def due_fields(settings: JobsSettings, neither: str) -> dict[str, Schema]:
    horizon = settings.horizon_days * SECONDS_PER_DAY
    return {
        "due_at": {**TIMESTAMP, "description": (
            f"ISO-8601 with a UTC offset; at most {settings.horizon_days} days ahead and "
            f"{settings.max_past_seconds} s in the past. Exclusive with delay.")},
        "delay": {"type": "number", "minimum": 0, "maximum": horizon,
                  "description": f"seconds from now. {neither}"},
    }


def labels_schema() -> Schema:
    return {"type": "object", "maxProperties": MAX_LABELS,
            "propertyNames": {"pattern": LABEL_KEY_PATTERN},
            "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE_CHARS,
                                     "pattern": NO_CONTROL_PATTERN},
            "description": f"at most {MAX_LABELS} labels: keys of 1-63 letters, digits, '_', "
                           f"'-', '.'; string values of at most {MAX_LABEL_VALUE_CHARS} "
                           "characters. Filter with GET /api/jobs?label=key:value"}


def job_update_schema(settings: JobsSettings) -> Schema:
    return obj({
        "payload": {"description": (
            f"the new payload: any JSON value, at most {settings.max_payload_bytes} bytes"),
            "x-max-json-bytes": settings.max_payload_bytes},
        "retry": {**ref("RetryPolicyRequest"),
                  "description": "merged onto the job's own retry policy"},
        "recurrence": {**ref("Recurrence"), "description": (
            "a recurring job's new cron/time zone or interval; its next occurrence is "
            "computed from now. A one-off job has none to change (400)")},
        "timeout_seconds": nullable({"type": "number", "exclusiveMinimum": 0,
                                     "maximum": MAX_TIMEOUT_SECONDS, "description": (
                                         "per-attempt timeout; null: the handler's or the "
                                         "default")}),
        "labels": nullable({**labels_schema(), "description": "replaces the job's labels; "
                                                              "null or {} removes them"}),
    }, required=[], closed=True, minProperties=1)


def reschedule_request_schema(settings: JobsSettings) -> Schema:
    return obj(due_fields(settings, "Give due_at or delay, not both."), required=[],
               closed=True, oneOf=[{"required": ["due_at"]}, {"required": ["delay"]}])


def job_request_schema(settings: JobsSettings, handlers: list[str]) -> Schema:
    names = ", ".join(handlers) or "(none)"
    return obj({
        "handler": {"type": "string", "pattern": HANDLER_PATTERN, "enum": handlers,
                    "description": f"a registered handler: {names}"},
        "payload": {"description": (
            f"any JSON value, at most {settings.max_payload_bytes} bytes as compact JSON "
            "(JOBS_MAX_PAYLOAD_BYTES); larger is 413"),
            "x-max-json-bytes": settings.max_payload_bytes},
        **due_fields(settings, "With neither due_at nor delay the job is due now (a "
                               "recurring one: at its next occurrence)."),
        "idempotency_key": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN,
                            "not": {"pattern": "^occurrence:"},
                            "minLength": 1, "maxLength": 200, "description": (
                                "scheduling again with the same key returns the same job "
                                "(200); the same key for another handler or payload is 409. "
                                "Keys starting with 'occurrence:' are the app's own (400)")},
        "retry": ref("RetryPolicyRequest"),
        "recurrence": ref("Recurrence"),
        "notify": {"type": "string", "pattern": QUEUE_NAME_PATTERN, "minLength": 3,
                   "maxLength": 63,
                   "description": "storage queue for this job's state changes; it must be "
                                  "allowed by the JOBS_NOTIFY_QUEUES setting (names or "
                                  "prefixes), else 400; a task hub's queues never are"},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0,
                            "maximum": MAX_TIMEOUT_SECONDS,
                            "description": "per-attempt timeout; default: the handler's, "
                                           f"else {settings.job_timeout_seconds:g} s"},
        "labels": nullable(labels_schema()),
    }, required=["handler"], closed=True, **{"not": {"required": ["due_at", "delay"]}})


def job_schema() -> Schema:
    text = {"type": "string"}
    number = {"type": "number"}
    ends = {"until": TIMESTAMP, "max_runs": {"type": "integer"}, "jitter_seconds": number,
            "misfire_grace_seconds": number, "catch_up_max": {"type": "integer"},
            "overlap": {"type": "string", "enum": list(OVERLAP_POLICIES)}}
    return obj({
        "id": {"type": "string", "pattern": JOB_ID_PATTERN,
               "examples": ["j20261122T1400-s003-0000-1a2b3c4d5e6f7a8b"]},
        "handler": text,
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "due_at": TIMESTAMP,
        "created_at": TIMESTAMP,
        "updated_at": nullable(TIMESTAMP),
        "started_at": nullable(TIMESTAMP),
        "finished_at": nullable(TIMESTAMP),
        "attempts": {"type": "integer", "minimum": 0,
                     "description": "attempts of the current occurrence"},
        "max_attempts": {"type": "integer"},
        "runs": {"type": "integer", "minimum": 0,
                 "description": "finished runs: occurrences of a recurring job; a retry "
                                "starts a new run"},
        "payload": {},
        "result": {"description": "the handler's return value once succeeded"},
        "error": nullable(ref("ErrorInfo")),
        "compensation": nullable({**text, "description": "'succeeded' or the compensation's "
                                                         "error message"}),
        "idempotency_key": nullable(text),
        "retry": ref("RetryPolicy"),
        "recurrence": {"anyOf": [
            obj({"cron": text, "timezone": text, **ends}, required=["cron", "timezone"]),
            obj({"interval_seconds": number,
                 "interval_mode": {"type": "string", "enum": list(INTERVAL_MODES)},
                 "anchor": TIMESTAMP, **ends}, required=["interval_seconds"]),
            {"type": "null"}], "description": "as scheduled (jobs_core Recurrence.to_dict): "
                                              "members at their default are left out"},
        "notify": nullable(text),
        "cancel_reason": nullable(text),
        "labels": {"type": "object", "additionalProperties": text},
    }, required=["id", "handler", "status", "due_at", "created_at", "updated_at", "started_at",
                 "finished_at", "attempts", "max_attempts", "runs", "payload", "result",
                 "error", "compensation", "idempotency_key", "retry", "recurrence", "notify",
                 "cancel_reason", "labels"])


def problem_schema() -> Schema:
    return obj({
        "type": {"type": "string", "format": "uri",
                 "examples": ["https://jobs.example/problems/invalid-request"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what is wrong and how to fix it"},
        "field": {"type": "string", "description": "the request field at fault, if one is"},
    }, required=["type", "title", "status", "detail"],
        description="RFC 9457 problem details (application/problem+json)")


def batch_schemas(api: ApiSettings) -> dict[str, Schema]:
    done = obj({"status": {"type": "integer", "enum": [200, 201]}, "job": ref("Job")},
               required=["status", "job"], closed=True)
    refused = obj({"status": {"type": "integer", "minimum": 400, "maximum": 599},
                   "problem": ref("Problem")}, required=["status", "problem"], closed=True)
    return {
        "BatchRequest": obj({"jobs": {"type": "array", "items": ref("JobRequest"),
                                      "maxItems": api.max_batch,
                                      "description": f"at most {api.max_batch} jobs "
                                                     "(JOBS_MAX_BATCH)"}},
                            required=["jobs"]),
        "BatchResult": {"oneOf": [done, refused], "description": (
            "201 created, 200 idempotent replay, or the item's problem (the other items "
            "are still scheduled)")},
        "BatchResponse": obj({"results": {"type": "array", "items": ref("BatchResult"),
                                          "description": "one per item, in request order"}},
                             required=["results"]),
    }


def component_schemas(settings: JobsSettings, api: ApiSettings,
                      handlers: list[str]) -> dict[str, Schema]:
    return {
        "JobRequest": job_request_schema(settings, handlers),
        "RescheduleRequest": reschedule_request_schema(settings),
        "JobUpdate": job_update_schema(settings),
        "Job": job_schema(),
        "ErrorInfo": obj({"type": {"type": "string"}, "message": {"type": "string"},
                          "attempt": {"type": "integer"}, "permanent": {"type": "boolean"}},
                         required=["type", "message", "attempt", "permanent"]),
        **retry_schemas(settings),
        **recurrence_schemas(settings),
        "JobPage": obj({"jobs": {"type": "array", "items": ref("Job")},
                        "next_cursor": nullable({"type": "string", "description": (
                            "pass as ?cursor= for the next page; null on the last page")})},
                       required=["jobs", "next_cursor"]),
        **batch_schemas(api),
        "Problem": problem_schema(),
    }
