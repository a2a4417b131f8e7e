"""Read endpoints for operators and the dashboard: shards, a due/finished timeline, and one
job's record history. The domain logic (and what each costs in storage requests) is in
``jobs_core.shard_overview``, ``jobs_core.timeline`` and ``jobs_core.job_history``; this module
parses the query, answers JSON and keeps one reader of each kind per process (they cache).

Bad query parameters answer 400 problem+json naming the parameter; an empty parameter counts
as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from jobs_core.job_history import HistoryRecord, read_job_history
from jobs_core.model import iso_or_none
from jobs_core.shard_overview import APPEND_BLOB_BLOCK_LIMIT, MAX_PAGE, ShardOverview, ShardRow
from jobs_core.store import JobStore
from jobs_core.timeline import MAX_MINUTES, Timeline, TimelineReader

from .http_api import json_response
from .query_params import parse_int, parse_time
from .runtime import get_runtime

DEFAULT_PAGE = 100
DEFAULT_MINUTES = 60


@dataclass(frozen=True)
class _Readers:
    store: JobStore
    shards: ShardOverview
    timeline: TimelineReader


async def _get_readers() -> _Readers:
    """The process's readers, kept on the ``Runtime`` with its other process-wide objects."""
    runtime = get_runtime()
    store = await runtime.store()
    readers = runtime.extras.get("insights")
    if not isinstance(readers, _Readers) or readers.store is not store:
        readers = _Readers(store, ShardOverview(store, runtime.settings),
                           TimelineReader(store, runtime.settings))
        runtime.extras["insights"] = readers
    return readers


def _param(req: func.HttpRequest, name: str) -> str | None:
    return req.params.get(name) or None


iso = iso_or_none  # (one formatter: jobs_core.model)


async def list_shards(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    slots = get_runtime().settings.slots
    slot = parse_int("slot", _param(req, "slot"), 0, slots - 1)
    bucket_from = parse_time("bucket_from", _param(req, "bucket_from"))
    bucket_to = parse_time("bucket_to", _param(req, "bucket_to"))
    limit = parse_int("limit", _param(req, "limit"), 1, MAX_PAGE) or DEFAULT_PAGE
    readers = await _get_readers()
    page = await readers.shards.page(slot=slot, bucket_from=bucket_from, bucket_to=bucket_to,
                                     limit=limit, cursor=_param(req, "cursor"))
    return json_response({"shards": [shard_json(row) for row in page.shards],
                          "next_cursor": page.next_cursor})


def shard_json(row: ShardRow) -> dict[str, Any]:
    """A row as JSON. An ``unreadable`` row's log was not replayed: its counts and pending are
    unknown (``null``), never 0, which would say the blob holds no jobs."""
    known = row.counts_source != "unreadable"
    return {
        "name": row.name, "slot": row.slot, "bucket": iso(row.bucket), "index": row.index,
        "size": row.size, "blocks": row.blocks, "block_limit": APPEND_BLOB_BLOCK_LIMIT,
        "owner": row.claim.owner, "epoch": row.claim.epoch,
        "claim_expires": iso(row.claim.expires),
        "counts": row.counts if known else None, "pending": row.pending if known else None,
        "next_due": iso(row.next_due),
        "counts_source": row.counts_source, "error": row.error,
    }


async def timeline(req: func.HttpRequest,
                   client: df.DurableOrchestrationClient) -> func.HttpResponse:
    minutes = parse_int("minutes", _param(req, "minutes"), 1, MAX_MINUTES) or DEFAULT_MINUTES
    readers = await _get_readers()
    return json_response(timeline_json(await readers.timeline.timeline(minutes)))


def timeline_json(line: Timeline) -> dict[str, Any]:
    return {
        "from": iso(line.start), "to": iso(line.end), "bucket_seconds": line.bucket_seconds,
        "points": [{"at": iso(p.at), "due": p.due, "finished": p.finished}
                   for p in line.points],
        "jobs_scanned": line.jobs_scanned, "shards_read": line.shards_read,
        "errors": line.errors,
    }


async def job_history(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    job_id = req.route_params["id"]
    history = await read_job_history(await get_runtime().store(), job_id)
    return json_response({"job_id": job_id, "records": [record_json(r) for r in history.records],
                          "job": history.job.to_dict()})


def record_json(r: HistoryRecord) -> dict[str, Any]:
    return {
        "type": r.type, "at": iso(r.at), "attempt": r.attempt, "epoch": r.epoch,
        "error": r.error, "retry_at": iso(r.retry_at), "result": r.result,
        "due_at": iso(r.due_at), "next_due": iso(r.next_due), "compensation": r.compensation,
        "reason": r.reason, "handler": r.handler, "applied": r.applied, "note": r.note,
        "offset": r.offset, "blob": r.blob, "to": r.to,
    }
