"""The summary an executor keeps in a shard blob's metadata, for scanners and dashboards.

    format, slot, bucket, index   set when the blob is created
    seen_size    blob size the summary describes (a larger size means newer records)
    pending      jobs not yet finished
    running      of those, attempts in progress
    min_due      earliest due time among waiting jobs ('' if none)
    counts       finished-by-status counts, e.g. 'succeeded=10,failed=1,cancelled=0'
    done_size    set once every job is final and the bucket is closed: if the blob still has
                 this size, a planner can skip it for good (an append would change the size)
"""

from __future__ import annotations

from typing import Any

from . import records as rec

CREATION_KEYS = ("format", "slot", "bucket", "index")


def summarize(listed: dict[str, str], state: Any, size: int, bucket_closed: bool) -> dict[str, str]:
    pending = state.pending()
    due = [job.due_at for job in pending if job.status.is_waiting]
    counts = state.counts()
    summary = {k: listed[k] for k in CREATION_KEYS if k in listed}
    summary.update({
        "seen_size": str(size),
        "pending": str(len(pending)),
        "running": str(sum(1 for job in pending if not job.status.is_waiting)),
        "min_due": rec.ts(min(due)) if due else "",
        "counts": ",".join(f"{k}={counts[k]}" for k in ("succeeded", "failed", "cancelled")),
    })
    if not pending and bucket_closed:
        summary["done_size"] = str(size)
    return summary
