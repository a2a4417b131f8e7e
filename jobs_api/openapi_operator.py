"""The operator routes of the OpenAPI document: the scheduler (jobs_api/starter.py and the
orchestrator's custom status), shards, timeline and history (jobs_api/insights.py), retention
(jobs_api/maintenance.py), the dashboard and the document itself."""

from __future__ import annotations

from jobs_core import JobsSettings, JobStatus
from jobs_core.settings import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS
from jobs_core.shard_overview import MAX_PAGE
from jobs_core.timeline import MAX_MINUTES

from .maintenance import MAX_BODY_BYTES as PURGE_BODY_BYTES
from .openapi_parts import (
    TIMESTAMP,
    Doc,
    Schema,
    errors,
    json_body,
    nullable,
    obj,
    operation,
    query,
    ref,
)

TEXT: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
COUNT: Schema = {"type": "integer", "minimum": 0}
NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}


def text_header(description: str) -> Doc:
    return {"description": description, "required": True, "schema": TEXT}


def metrics_schemas() -> dict[str, Schema]:
    """Figures of jobs_core/metrics.py as the orchestrator and starter.report put them."""
    return {
        "Counts": {"type": "object", "additionalProperties": COUNT,
                   "description": "jobs started, succeeded, retried, failed, abandoned, "
                                  "skipped ... by name"},
        "LatencySummary": obj({"count": COUNT, "p50": NUMBER_OR_NULL, "p95": NUMBER_OR_NULL,
                               "max": NUMBER_OR_NULL, "mean": NUMBER_OR_NULL},
                              required=["count", "p50", "p95", "max", "mean"],
                              description="milliseconds; a percentile is the upper bound "
                                          "of its histogram bucket"),
        "Histogram": obj({"counts": {"type": "array", "items": COUNT},
                          "max_ms": {"type": "number"}, "sum_ms": {"type": "number"}},
                         required=["counts", "max_ms", "sum_ms"]),
        "EventStats": {"anyOf": [{"type": "object", "additionalProperties": INT},
                                 {"type": "null"}],
                       "description": "state-change events of this process (null when no "
                                      "events queue is set)"},
    }


def scheduler_schemas() -> dict[str, Schema]:
    slot_metrics = obj({
        "claim_ms": NUMBER_OR_NULL, "lateness_ms": ref("LatencySummary"),
        "lateness_ms_total": ref("LatencySummary"), "lateness_histogram": ref("Histogram"),
        "retry_rate": NUMBER_OR_NULL,
        "storage_requests_per_minute": {"type": ["integer", "null"]},
        "events": ref("EventStats"),
        "events_from_log": {"anyOf": [obj({
            "blobs_read": COUNT, "events": COUNT, "messages_sent": COUNT,
            "send_failures": COUNT,
            "lagging": {"type": "object", "additionalProperties": INT,
                        "description": "queues behind, with the number of blobs each is "
                                       "behind in (at most 10 named)"},
            "errors": {"type": "array", "items": TEXT},
        }), {"type": "null"}], "description": "the last publish of state-change events from "
                                              "the job log (jobs_core/event_log.py)"},
    })
    custom = obj({
        "slot": INT, "cycle": INT, "last_cycle": TIMESTAMP, "next_wake": TIMESTAMP,
        "due": INT, "pending": INT, "batches": INT,
        "counts": {**ref("Counts"), "description": "of the last cycle"},
        "totals": {**ref("Counts"), "description": "since the slot started"},
        "metrics": slot_metrics,
        "last_error": nullable(TEXT), "last_error_at": nullable(TIMESTAMP),
        "plans_overdue": {**INT, "description": "cycles in a row whose plan_cycle was still "
                          "out at the cycle's deadline (JOBS_CYCLE_DEADLINE_SECONDS); each "
                          "next cycle waits longer for its plan (1 s, 2 s ... up to "
                          "JOBS_MAX_SLEEP_SECONDS more)"},
    }, description="set by the slot's orchestrator after each cycle")
    return {
        "SlotCustomStatus": custom,
        "SlotStatus": obj({
            "slot": COUNT, "instance_id": TEXT,
            "runtime_status": nullable({**TEXT, "description": "Durable Functions runtime "
                                        "status; null if the slot never ran"}),
            "custom_status": {"anyOf": [ref("SlotCustomStatus"), {"type": "null"}]},
            "last_updated": nullable(TEXT),
        }, required=["slot", "instance_id", "runtime_status", "custom_status",
                     "last_updated"]),
        "SchedulerMetrics": obj({
            "jobs": ref("Counts"), "failures": COUNT, "retry_rate": NUMBER_OR_NULL,
            "lateness_ms": ref("LatencySummary"),
            "claim_ms": obj({"last_max": NUMBER_OR_NULL, "last_mean": NUMBER_OR_NULL},
                            required=["last_max", "last_mean"]),
            "storage_requests_per_minute": {"type": ["integer", "null"]},
            "events": ref("EventStats"),
        }, required=["jobs", "failures", "retry_rate", "lateness_ms", "claim_ms",
                     "storage_requests_per_minute", "events"],
            description="over every slot"),
        "SchedulerStatus": obj({"slots": {"type": "array", "items": ref("SlotStatus")},
                                "metrics": ref("SchedulerMetrics"),
                                "handler_limits": {"type": "object", "additionalProperties": obj({
                                    "max_concurrency": nullable(COUNT),
                                    "max_per_second": nullable({"type": "number"}),
                                    "in_use": nullable(COUNT)},
                                    required=["max_concurrency", "max_per_second", "in_use"]),
                                    "description": "each limited handler's limits and the "
                                                   "permits in use now"}},
                               required=["slots", "metrics", "handler_limits"]),
        "SlotStart": obj({
            "slot": COUNT, "instance_id": TEXT,
            "action": {"type": "string", "enum": ["already running", "started", "error"]},
            "status": TEXT, "previous": nullable(TEXT), "error": TEXT,
        }, required=["slot", "instance_id", "action"]),
        "SchedulerStart": obj({"slots": {"type": "array", "items": ref("SlotStart")}},
                              required=["slots"]),
    }


def insight_schemas() -> dict[str, Schema]:
    statuses = {s.value: COUNT for s in JobStatus}
    when = nullable(TIMESTAMP)
    return {
        "ShardRow": obj({
            "name": {"type": "string", "pattern": r"^shards/s[0-9]{3}/[0-9]{8}T[0-9]{4}-[0-9]{4}"
                                                  r"\.jsonl$"},
            "slot": COUNT, "bucket": TIMESTAMP, "index": COUNT, "size": COUNT,
            "blocks": {"type": ["integer", "null"], "description": "committed blocks"},
            "block_limit": COUNT, "owner": nullable(TEXT), "epoch": {"type": ["integer", "null"]},
            "claim_expires": when,
            "counts": nullable(obj(statuses, additionalProperties=COUNT,
                                   description="null when counts_source is unreadable")),
            "pending": nullable(COUNT), "next_due": when,
            "counts_source": {"type": "string", "enum": ["summary", "log", "unreadable"]},
            "error": nullable(TEXT),
        }, required=["name", "slot", "bucket", "index", "size", "blocks", "block_limit",
                     "owner", "epoch", "claim_expires", "counts", "pending", "next_due",
                     "counts_source", "error"]),
        "ShardPage": obj({"shards": {"type": "array", "items": ref("ShardRow"),
                                     "description": "newest bucket first"},
                          "next_cursor": nullable(TEXT)}, required=["shards", "next_cursor"]),
        "Timeline": obj({
            "from": TIMESTAMP, "to": TIMESTAMP, "bucket_seconds": {"type": "integer",
                                                                   "minimum": 1},
            "points": {"type": "array", "items": obj(
                {"at": TIMESTAMP, "due": COUNT, "finished": COUNT},
                required=["at", "due", "finished"])},
            "jobs_scanned": COUNT, "shards_read": COUNT,
            "errors": {"type": "array", "items": TEXT},
        }, required=["from", "to", "bucket_seconds", "points", "jobs_scanned", "shards_read",
                     "errors"]),
        "HistoryRecord": obj({
            "type": {**TEXT, "examples": ["add", "start", "ok", "fail", "cancel", "run_now"]},
            "at": when, "offset": COUNT, "applied": {"type": "boolean"},
            "note": nullable({**TEXT, "description": "why the replay ignored the record"}),
            "attempt": {"type": ["integer", "null"]}, "epoch": {"type": ["integer", "null"]},
            "error": {"type": ["object", "null"]}, "retry_at": when,
            "result": {}, "due_at": when, "next_due": when, "compensation": nullable(TEXT),
            "reason": nullable(TEXT), "handler": nullable(TEXT),
            "blob": {**TEXT, "description": "the shard blob holding the record: the job's home, "
                     "or a blob it moved to (recurring jobs and long retry chains move on)"},
            "to": nullable({**TEXT, "description": "move, moved, ptr: where the job went"}),
        }, required=["type", "at", "offset", "applied", "note", "attempt", "epoch", "error",
                     "retry_at", "result", "due_at", "next_due", "compensation", "reason",
                     "handler", "blob", "to"]),
        "JobHistory": obj({"job_id": TEXT, "records": {"type": "array",
                                                       "items": ref("HistoryRecord"),
                                                       "description": "in log order"},
                           "job": ref("Job")}, required=["job_id", "records", "job"]),
    }


def purge_schemas(settings: JobsSettings) -> dict[str, Schema]:
    counts = ("shards_scanned", "shards_read", "shards_deleted", "jobs_deleted",
              "bytes_deleted", "shards_kept_recent", "shards_kept_unfinished",
              "shards_kept_changed", "shards_kept_events", "shards_vanished", "error_count")
    return {
        "PurgeRequest": obj({
            "dry_run": {"type": "boolean", "default": False,
                        "description": "count what would be deleted, delete nothing"},
            "retention_days": {"type": "number", "minimum": MIN_RETENTION_DAYS,
                               "maximum": MAX_RETENTION_DAYS,
                               "default": settings.retention_days,
                               "description": "keep what finished within this many days "
                                              "(default: JOBS_RETENTION_DAYS)"},
        }, closed=True),
        "ShardPurge": obj({
            "cutoff": TIMESTAMP, "dry_run": {"type": "boolean"},
            **dict.fromkeys(counts, COUNT),
            "errors": {"type": "array", "items": TEXT, "description": "the first ones"},
        }, required=["cutoff", "dry_run", *counts, "errors"],
            description="shard blobs; in a dry run *_deleted say what would be deleted"),
        "PurgeReport": obj({
            "dry_run": {"type": "boolean"}, "retention_days": {"type": "number"},
            "cutoff": TIMESTAMP, "shards": ref("ShardPurge"),
            "keys": obj({"blobs_deleted": nullable(COUNT), "window_days": {"type": "number"}},
                        required=["blobs_deleted", "window_days"],
                        description="idempotency-key blobs whose every claim is older than "
                                    "the key window (a dry run deletes none and counts none: "
                                    "null)"),
            "orchestrations": obj({"instances_deleted": COUNT, "error": TEXT},
                                  required=["instances_deleted"],
                                  description="finished Durable instances created before "
                                              "the cutoff"),
        }, required=["dry_run", "retention_days", "cutoff", "shards", "keys",
                     "orchestrations"]),
    }


def operator_schemas(settings: JobsSettings) -> dict[str, Schema]:
    return {**metrics_schemas(), **scheduler_schemas(), **insight_schemas(),
            **purge_schemas(settings)}


def operator_paths(settings: JobsSettings) -> dict[str, Doc]:
    last_slot = settings.slots - 1
    when = {"type": "string", "format": "date-time"}
    html = {"description": "The dashboard: one self-contained page over this API (pass the "
                           "key as ?code=; the page sends it on as x-functions-key)",
            "headers": {"Content-Security-Policy": text_header("a fresh nonce per response"),
                        "Cache-Control": text_header("no-store: the URL carries the key")},
            "content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "/jobs/{id}/history": {
            "parameters": [{"$ref": "#/components/parameters/JobId"}],
            "get": operation("jobs_history", "Every record of one job, with what the replay "
                                             "did with it",
                             {"200": json_body(ref("JobHistory"), "The job and its records"),
                              **errors(400, 404, 503)})},
        "/shards": {"get": operation(
            "shards_list", "Shard blobs with their size, blocks, counts and slot claim",
            {"200": json_body(ref("ShardPage"), "One page, newest bucket first"),
             **errors(400, 503)},
            parameters=[
                query("slot", {"type": "integer", "minimum": 0, "maximum": last_slot},
                      f"only this slot (0..{last_slot})"),
                query("bucket_from", when, "from the bucket holding this time"),
                query("bucket_to", when, "to the bucket holding this time (not before "
                                         "bucket_from)"),
                query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                "default": 100}, "page size"),
                query("cursor", TEXT, "next_cursor of the previous page"),
            ])},
        "/timeline": {"get": operation(
            "jobs_timeline", "Jobs due and finished per minute",
            {"200": json_body(ref("Timeline"), "One point per minute"), **errors(400, 503)},
            parameters=[query("minutes", {"type": "integer", "minimum": 1,
                                          "maximum": MAX_MINUTES, "default": 60},
                              "how many minutes back from now")])},
        "/scheduler/start": {"post": operation(
            "scheduler_start", "Make sure every slot's orchestrator runs",
            {"200": json_body(ref("SchedulerStart"), "Each slot's action"), **errors(503)})},
        "/scheduler": {"get": operation(
            "scheduler_status", "Each slot's runtime and custom status, and the figures over "
                                "all slots",
            {"200": json_body(ref("SchedulerStatus"), "One entry per slot"), **errors(503)})},
        "/maintenance/purge": {"post": operation(
            "purge_now", "Delete shard blobs whose jobs all finished before the retention",
            {"200": json_body(ref("PurgeReport"), "What was (or, dry run: would be) deleted"),
             **errors(400, 413, 415, 503)},
            requestBody={"required": False, "description": (
                f"optional JSON, at most {PURGE_BODY_BYTES} bytes; no body: the defaults"),
                "content": {"application/json": {"schema": ref("PurgeRequest")}}})},
        "/dashboard": {"get": operation("dashboard_page", "The dashboard (HTML)",
                                        {"200": html, **errors()})},
        "/openapi.json": {"get": operation(
            "openapi_document", "This document",
            {"200": json_body({"type": "object", "required": ["openapi", "paths"]},
                              "The OpenAPI 3.1 document",
                              headers={"Cache-Control": text_header("briefly cacheable")}),
             **errors()})},
    }
