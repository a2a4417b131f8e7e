"""Retention: purge finished shard blobs and finished orchestration history.

``POST /api/maintenance/purge`` runs it now; the ``retention_purge`` timer runs it on
``JOBS_PURGE_SCHEDULE``. Both delete, with the retention ``JOBS_RETENTION_DAYS`` (or the
request's ``retention_days``):

- shard blobs whose jobs are all final and finished before the cutoff (``jobs_core.retention``);
- the Durable history of instances created before the cutoff that are Completed, Failed or
  Terminated. The slots' eternal orchestrators run on with ``continue_as_new`` and stay Running,
  so they are never purged.

Body (optional JSON object): ``dry_run`` (bool, default false: count, delete nothing) and
``retention_days`` (number, 1/24 .. 36500, default ``JOBS_RETENTION_DAYS``).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from jobs_core.errors import JobValidationError
from jobs_core.model import iso
from jobs_core.retention import purge_shards
from jobs_core.settings import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS

from .http_api import json_response, read_json
from .runtime import get_runtime

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4096
FIELDS = {"dry_run", "retention_days"}
PURGEABLE = [df.OrchestrationRuntimeStatus.Completed, df.OrchestrationRuntimeStatus.Failed,
             df.OrchestrationRuntimeStatus.Terminated]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the SDK requires a lower bound for created time


@dataclass(frozen=True)
class PurgeOptions:
    retention_days: float
    dry_run: bool = False


def parse_options(req: func.HttpRequest, default_days: float) -> PurgeOptions:
    """The purge options from an optional JSON body; bad input raises a 400/413/415."""
    if not (req.get_body() or b"").strip():
        return PurgeOptions(default_days)
    body = read_json(req, MAX_BODY_BYTES)
    if not isinstance(body, dict):
        raise JobValidationError('the body must be a JSON object, e.g. {"dry_run": true}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise JobValidationError(f"unknown fields: {unknown}; allowed: {sorted(FIELDS)}",
                                 field=unknown[0])
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise JobValidationError(f"dry_run must be true or false, got {dry_run!r}",
                                 field="dry_run")
    days = body.get("retention_days", default_days)
    if isinstance(days, bool) or not isinstance(days, int | float) or \
            not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS or not math.isfinite(days):
        raise JobValidationError(
            f"retention_days must be a number of days from 1/24 (one hour) to "
            f"{MAX_RETENTION_DAYS:g}, got {days!r}", field="retention_days")
    return PurgeOptions(float(days), dry_run)


async def purge_orchestrations(client: df.DurableOrchestrationClient, cutoff: datetime,
                               dry_run: bool) -> dict[str, Any]:
    """Purge (or count) finished instances created before ``cutoff``. Failures are reported in
    the result, not raised: the shard purge has happened either way."""
    until = cutoff.astimezone(UTC)
    try:
        if dry_run:
            found = await client.get_status_by(created_time_from=EPOCH, created_time_to=until,
                                               runtime_status=PURGEABLE)
            return {"instances_deleted": len(found)}
        result = await client.purge_instance_history_by(
            created_time_from=EPOCH, created_time_to=until, runtime_status=PURGEABLE)
        return {"instances_deleted": int(result.instances_deleted)}
    except Exception as exc:  # the Durable API answered an error or is unreachable
        log.warning("retention: purging orchestration history failed: %r", exc)
        return {"instances_deleted": 0, "error": str(exc)[:500]}


async def run_purge(client: df.DurableOrchestrationClient, options: PurgeOptions,
                    now: datetime | None = None) -> dict[str, Any]:
    runtime = get_runtime()
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=options.retention_days)
    report = await purge_shards(await runtime.store(), runtime.settings, now,
                                timedelta(days=options.retention_days), dry_run=options.dry_run,
                                events=runtime.events is not None)
    # idempotency-key blobs whose every claim is past the key window (the configured one,
    # not this run's retention: it is what deduplicates requests); a dry run deletes none
    # and does not count them: null, not a 0 that a real run contradicts (hunt of stop 29)
    keys = (await runtime.scheduler()).keys
    key_blobs_deleted = None if options.dry_run else await keys.purge(now)
    return {
        "dry_run": options.dry_run,
        "retention_days": options.retention_days,
        "cutoff": iso(cutoff),
        "shards": report.to_dict(),
        "keys": {"blobs_deleted": key_blobs_deleted,
                 "window_days": keys.window.total_seconds() / 86400},
        "orchestrations": await purge_orchestrations(client, cutoff, options.dry_run),
    }


async def purge_now(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    options = parse_options(req, get_runtime().settings.retention_days)
    result = await run_purge(client, options)
    log.info("retention purge (HTTP): %s", json.dumps(result))
    return json_response(result)


async def purge_on_timer(client: df.DurableOrchestrationClient) -> None:
    """The timer's purge with the configured retention; logs the report, never raises."""
    try:
        options = PurgeOptions(get_runtime().settings.retention_days)
        result = await run_purge(client, options)
    except Exception:
        log.exception("retention purge failed; the next run tries again")
        return
    log.info("retention purge: %s", json.dumps(result))
