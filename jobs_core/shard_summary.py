"""The summary an executor keeps in a shard blob's metadata, for scanners and dashboards.

    format, slot, bucket, index   set when the blob is created
    events_*     the event publisher's cursor (``event_log.py``): kept as listed
    seen_size    blob size the summary describes (a larger size means newer records)
    pending      jobs not yet finished
    running      of those, attempts in progress
    min_due      earliest due time among waiting jobs ('' if none)
    counts       finished-by-status counts, e.g. 'succeeded=10,failed=1,cancelled=0'
    done_size    set once every job is final and the bucket is closed: if the blob still has
                 this size, a planner can skip it for good (an append would change the size)
    touch        blobs of future buckets this blob's touch records point at (a job in them was
                 made due earlier): a planner that skips this blob still reads those
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import records
from .ids import parse_shard_name
from .model import JobStatus

CREATION_KEYS = ("format", "slot", "bucket", "index")
KEPT_KEYS = ("events_at", "events_lag", "events_retry", "events_fails",  # event_log.py's
             "events_held")
MAX_TOUCH_NAMES = 20  # more than this and the blob is simply never skipped


def live_touches(touched: set[str], now: datetime, bucket_minutes: int) -> list[str]:
    """Touched blobs whose bucket has not begun yet (the planner would skip them otherwise)."""
    del bucket_minutes  # (kept for callers: a bucket that has begun is read anyway)
    out = []
    for name in sorted(touched):
        shard = parse_shard_name(name)
        if shard is not None and shard.key.bucket > now:
            out.append(name)
    return out


def summarize(listed: dict[str, str], state: Any, size: int, bucket_closed: bool,
              now: datetime | None = None, bucket_minutes: int = 60) -> dict[str, str]:
    pending = state.pending()
    due = [job.due_at for job in pending if job.status.is_waiting]
    counts = state.counts()
    summary = {k: listed[k] for k in (*CREATION_KEYS, *KEPT_KEYS) if k in listed}
    summary.update({
        "seen_size": str(size),
        "pending": str(len(pending)),
        "running": str(sum(1 for job in pending if job.status is JobStatus.RUNNING)),
        "min_due": records.ts(min(due)) if due else "",
        "counts": ",".join(f"{k}={counts[k]}" for k in ("succeeded", "failed", "cancelled")),
    })
    touches = live_touches(state.touched, now, bucket_minutes) if now is not None else []
    if touches:
        summary["touch"] = ",".join(touches[:MAX_TOUCH_NAMES])
        if len(touches) > MAX_TOUCH_NAMES:
            summary["running"] = "touch"  # never idle: planners read the blob itself
    if not pending and bucket_closed and not touches:
        summary["done_size"] = str(size)
    return summary
