"""What the ``jobsctl`` CLI prints: a job as ``name  value`` lines, tables for lists and slots,
one line per change for ``watch``, or JSON (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from ._codec import as_json
from .models import Job, JobHistory
from .operator_models import SchedulerStart, SchedulerStatus


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_json(out: TextIO, model: Any) -> None:
    """One line of JSON: the model as the API sent it (unknown members included)."""
    data = as_json(model) if not isinstance(model, dict) else model
    out.write(json.dumps(data, ensure_ascii=False) + "\n")


def job_lines(job: Job) -> list[tuple[str, str]]:
    rows = [("id", job.id), ("handler", job.handler), ("status", job.status),
            ("due_at", when(job.due_at)),
            ("attempts", f"{job.attempts}/{job.max_attempts}"), ("runs", str(job.runs))]
    if job.recurrence is not None:
        r = job.recurrence
        every = (f"cron {r.cron!r} in {r.timezone or 'UTC'}" if r.cron
                 else f"every {r.interval_seconds:g} s")
        rows.append(("recurrence", every))
    for name, moment in (("started_at", job.started_at), ("finished_at", job.finished_at)):
        if moment is not None:
            rows.append((name, when(moment)))
    if job.payload is not None:
        rows.append(("payload", compact(job.payload)))
    if job.result is not None:
        rows.append(("result", compact(job.result)))
    if job.error is not None:
        rows.append(("error", f"{job.error.type}: {job.error.message} "
                              f"(attempt {job.error.attempt})"))
    if job.labels:
        rows.append(("labels", ", ".join(f"{k}:{v}" for k, v in sorted(job.labels.items()))))
    for name in ("compensation", "cancel_reason", "idempotency_key", "notify"):
        if getattr(job, name) is not None:
            rows.append((name, str(getattr(job, name))))
    return rows


def print_job(out: TextIO, job: Job) -> None:
    width = max(len(name) for name, _ in job_lines(job))
    for name, value in job_lines(job):
        out.write(f"{name:<{width}}  {value}\n")


def table(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [list(r) for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    for row in [list(header), *rows]:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                  .rstrip() + "\n")


JOB_HEADER = ("ID", "STATUS", "HANDLER", "DUE (UTC)", "ATTEMPTS", "RUNS")


def job_row(job: Job) -> list[str]:
    return [job.id, job.status, job.handler, when(job.due_at),
            f"{job.attempts}/{job.max_attempts}", str(job.runs)]


def change_line(job: Job) -> str:
    """A line of ``watch``: when, status, attempt, runs, and the error if there is one."""
    line = (f"{when(job.updated_at or job.created_at)}  {job.status:<9}  attempt "
            f"{job.attempts}/{job.max_attempts}  runs {job.runs}  due {when(job.due_at)}")
    if job.error is not None and job.status != "succeeded":
        line += f"  error {job.error.type}: {job.error.message}"
    if job.result is not None:
        line += f"  result {compact(job.result, 80)}"
    return line


def print_status(out: TextIO, status: SchedulerStatus) -> None:
    rows = []
    for slot in status.slots:
        custom = slot.custom_status
        rows.append([
            str(slot.slot), slot.runtime_status or "-",
            str(custom.cycle) if custom and custom.cycle is not None else "-",
            when(custom.last_cycle) if custom else "-",
            when(custom.next_wake) if custom else "-",
            str(custom.pending) if custom and custom.pending is not None else "-",
            (custom.last_error or "")[:60] if custom else "",
        ])
    table(out, ("SLOT", "RUNTIME", "CYCLE", "LAST CYCLE", "NEXT WAKE", "PENDING", "LAST ERROR"),
          rows)
    m = status.metrics
    counts = ", ".join(f"{k} {v}" for k, v in sorted(m.jobs.items()) if v)
    late = m.lateness_ms
    lateness = (f"lateness p50 {late.p50:g} ms, p95 {late.p95:g} ms"
                if late is not None and late.p50 is not None and late.p95 is not None
                else "lateness -")
    rate = "-" if m.storage_requests_per_minute is None else str(m.storage_requests_per_minute)
    out.write(f"jobs: {counts or 'none yet'}; {lateness}; storage requests/min {rate}\n")
    if status.handler_limits:
        def shown(value: float | None) -> str:
            return "-" if value is None else f"{value:g}"
        out.write("\n")
        table(out, ("HANDLER", "MAX CONCURRENCY", "IN USE", "MAX PER SECOND"),
              ([name, shown(limit.max_concurrency), shown(limit.in_use),
                shown(limit.max_per_second)]
               for name, limit in sorted(status.handler_limits.items())))


def print_start(out: TextIO, start: SchedulerStart) -> None:
    table(out, ("SLOT", "INSTANCE", "ACTION", "ERROR"),
          ([str(s.slot), s.instance_id, s.action, s.error or ""] for s in start.slots))


def print_history(out: TextIO, history: JobHistory) -> None:
    rows = []
    for r in history.records:
        error = f"{r.error.get('type')}: {r.error.get('message')}" if r.error else ""
        note = r.note or error or r.reason or ""
        rows.append([str(r.offset), r.type, when(r.at), "yes" if r.applied else "no",
                     "-" if r.attempt is None else str(r.attempt), note[:70]])
    table(out, ("OFFSET", "TYPE", "AT (UTC)", "APPLIED", "ATTEMPT", "NOTE"), rows)
