"""Figure 5: cost of ``get(id)`` when the job's shard holds 1k, 10k, 100k jobs.

All jobs go to one shard blob (one slot, one due time, sealing pushed out of the way). Cold:
the first ``get`` of a fresh scheduler (reads the whole blob); warm: a second ``get`` (reads
the tail since the last read)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs_core import JobRequest, JobScheduler
from jobs_core.ids import parse_job_id

from .common import Env, registry, settings, total

CHUNK = 5_000  # jobs per schedule_many call (about 1.7 MB per append block)


async def status_query(env: Env, sizes: list[int]) -> dict[str, Any]:
    store, counter = await env.store("status")
    reg = registry()
    cfg = settings(slots=1, seal_bytes=1 << 30)
    filler = JobScheduler(store, reg, cfg)
    due = datetime.now(UTC) + timedelta(hours=2)
    rows: list[dict[str, Any]] = []
    held = 0
    last_id = ""
    try:
        for size in sorted(sizes):
            while held < size:
                n = min(CHUNK, size - held)
                out = await filler.schedule_many([JobRequest("noop", due_at=due)
                                                  for _ in range(n)])
                last = out[-1]
                assert not isinstance(last, Exception), last
                last_id = last.job.id
                held += n
            row: dict[str, Any] = {"jobs_in_shard": held, "blob": parse_job_id(last_id).name}
            reader = JobScheduler(store, reg, cfg)
            for phase in ("cold", "warm"):
                counter.reset()
                start = time.perf_counter()
                job = await reader.get(last_id)
                elapsed = time.perf_counter() - start
                counts = counter.snapshot()
                assert job.id == last_id
                row[phase] = {"seconds": elapsed, "requests": counts,
                              "requests_total": total(counts)}
            rows.append(row)
    finally:
        await filler.close()
        await store.close()
    warm = {r["warm"]["requests_total"] for r in rows}
    return {"rows": rows, "warm_requests_constant": len(warm) == 1}
