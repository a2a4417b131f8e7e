"""``python -m bench [--quick] [--out bench-results/bench.json]``.

Starts Azurite the way the tests do (``tests/azurite.py``: the one named by
``AZURITE_CONNECTION_STRING`` / ``AZURITE_BLOB_URL``, else a private one on free ports with a
fresh data folder), runs the workloads, prints a table, writes every figure as JSON to
``--out`` and the lateness distribution as a PNG next to it (if matplotlib is installed).

Figures: 1 storage requests per job (lone job, 10k-job bursts through ``schedule()`` and
``schedule_many()``, schedule and run sides); 2 schedule throughput next to the raw
one-record ``append_block`` rate; 3 drain rate; 4 lateness at steady rates (``jobs_core``
direct, and end to end through the Functions app on devhost over HTTP, ``bench/e2e.py``);
5 ``get(id)`` cost by shard size; 6 executor memory while draining (own process, in-memory
store); 8 a planning cycle's cost with a year of pending work; 7 the cost of state-change
events (queue requests per job, drain rate with and without); 9 a drain end to end next to
APScheduler 3 (SQLAlchemy/SQLite store, 20 threads) on the same workload; 10 what
OpenTelemetry costs off and on (``bench/telemetry.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests import azurite as azurite_helpers

from . import e2e, events, lateness, pending, report, status, telemetry, workloads
from .common import Env, percentiles


@dataclass(frozen=True)
class Scale:
    burst: int
    sequential: int
    raw_sequential: int
    raw_concurrent: int
    raw_in_flight: int
    lateness_rates: tuple[float, ...]
    lateness_window_s: float
    sleep_cap_s: float
    shard_sizes: tuple[int, ...]
    memory_jobs: int
    e2e_rates: tuple[float, ...]
    e2e_window_s: float
    idle_s: float  # 4i: idle time before a lone job (polling model on)
    pending_sizes: tuple[int, ...] = (1_000,)  # 8: jobs pending over the next year
    e2e_workers: tuple[int, ...] = (0, 2)  # 4e: devhost --workers (0: the app in the host)
    side_jobs: int = 300  # 9: no-op jobs due at one instant, ours and APScheduler's
    side_lead_s: float = 3.0  # 9: from the first POST to the due time


FULL = Scale(burst=10_000, sequential=300, raw_sequential=500, raw_concurrent=2_000,
             raw_in_flight=32, lateness_rates=(200, 1_000), lateness_window_s=10,
             sleep_cap_s=0.1, shard_sizes=(1_000, 10_000, 100_000), memory_jobs=100_000,
             e2e_rates=(200, 1_000), e2e_window_s=10, idle_s=600,
             pending_sizes=(1_000, 100_000), side_jobs=10_000, side_lead_s=10.0)
QUICK = Scale(burst=1_000, sequential=50, raw_sequential=100, raw_concurrent=300,
              raw_in_flight=32, lateness_rates=(200, 1_000), lateness_window_s=2,
              sleep_cap_s=0.1, shard_sizes=(1_000, 10_000), memory_jobs=10_000,
              e2e_rates=(50,), e2e_window_s=5, idle_s=15)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run_azurite(env: Env, scale: Scale) -> dict[str, Any]:
    log("1. lone job")
    lone = await workloads.lone_job(env)
    log(f"1/2/3. burst of {scale.burst} through concurrent schedule()")
    single = await workloads.burst(env, scale.burst, "single")
    log(f"1/2/3. burst of {scale.burst} through schedule_many()")
    bulk = await workloads.burst(env, scale.burst, "bulk")
    log("2. sequential schedule() and raw appends")
    seq = await workloads.sequential_schedule(env, scale.sequential)
    raw_seq = await workloads.raw_appends(env, scale.raw_sequential, 1)
    raw_conc = await workloads.raw_appends(env, scale.raw_concurrent, scale.raw_in_flight)
    late = []
    for per_s in scale.lateness_rates:
        log(f"4. lateness at {per_s:g}/s for {scale.lateness_window_s:g} s")
        late.append(await lateness.steady(env, per_s, scale.lateness_window_s,
                                          scale.sleep_cap_s))
    log(f"7. events: burst of {scale.burst} without events, eager, from the log; latency at "
        f"200/s for {scale.lateness_window_s:g} s")
    events_cost = await events.events_cost(env, scale.burst, 200.0, scale.lateness_window_s)
    pending_rows = []
    for jobs in scale.pending_sizes:
        log(f"8. a planning cycle with {jobs} jobs pending over the next year")
        pending_rows.append(await pending.cycle_cost(env, jobs))
    log(f"5. status query, shard sizes {list(scale.shard_sizes)}")
    status_query = await status.status_query(env, list(scale.shard_sizes))
    raw_s, raw_c = raw_seq["records_per_s"], raw_conc["records_per_s"]
    conc = {"jobs": single["jobs"], "seconds": single["schedule"]["seconds"],
            "jobs_per_s": single["schedule"]["jobs_per_s"]}
    bulk_tp = {"jobs": bulk["jobs"], "seconds": bulk["schedule"]["seconds"],
               "jobs_per_s": bulk["schedule"]["jobs_per_s"]}
    throughput = {
        "single_sequential": seq, "single_concurrent": conc, "bulk": bulk_tp,
        "raw_sequential": raw_seq, "raw_concurrent": raw_conc,
        "ratio_sequential_vs_raw_sequential": seq["jobs_per_s"] / raw_s,
        "ratio_concurrent_vs_raw_sequential": conc["jobs_per_s"] / raw_s,
        "ratio_concurrent_vs_raw_concurrent": conc["jobs_per_s"] / raw_c,
        "ratio_bulk_vs_raw_sequential": bulk_tp["jobs_per_s"] / raw_s,
        "ratio_bulk_vs_raw_concurrent": bulk_tp["jobs_per_s"] / raw_c,
    }
    run = bulk["run"]
    drain = {"jobs": bulk["jobs"], "scheduled_by": "schedule_many", "succeeded":
             run["succeeded"], "seconds": run["seconds"], "jobs_per_s": run["jobs_per_s"],
             "rounds": run["rounds"], "requests": run["requests"],
             "requests_total": run["requests_total"], "requests_per_job":
             run["requests_per_job"], "after_concurrent_burst": single["run"]}
    return {"requests_per_job": {"lone": lone, "burst_single": single, "burst_bulk": bulk},
            "throughput": throughput, "drain": drain, "lateness": late,
            "status_query": status_query, "events": events_cost, "pending": pending_rows}


def run_e2e(azurite: azurite_helpers.Azurite, scale: Scale) -> list[dict[str, Any]]:
    rows = []
    for workers in scale.e2e_workers:
        for per_s in scale.e2e_rates:
            log(f"4e. end-to-end lateness (devhost + HTTP, {e2e.processes(workers)}) at "
                f"{per_s:g}/s for {scale.e2e_window_s:g} s")
            row = e2e.steady(azurite, per_s, scale.e2e_window_s, workers=workers)
            if row.get("error"):
                log(f"4e. {per_s:g}/s failed: {row['error']}")
            rows.append(row)
    return rows


def run_side_by_side(azurite: azurite_helpers.Azurite, scale: Scale) -> dict[str, Any]:
    """Figure 9: our drain end to end (devhost, in the host and in 2 workers) next to
    APScheduler 3 (SQLAlchemy/SQLite store, 20 threads) on the same workload."""
    ours = []
    for workers in scale.e2e_workers:
        log(f"9. drain side by side: {scale.side_jobs} jobs due at one instant, ours "
            f"({e2e.processes(workers)})")
        ours.append(_summarised(e2e.drain(azurite, scale.side_jobs, lead_s=scale.side_lead_s,
                                          workers=workers)))
    log("9. drain side by side: the same on APScheduler 3 (SQLite, 20 threads)")
    try:
        out = subprocess.run([sys.executable, "-m", "bench.apscheduler_peer", "--jobs",
                              str(scale.side_jobs), "--lead", str(scale.side_lead_s)],
                             check=True, capture_output=True, text=True, timeout=1800,
                             cwd=Path(__file__).resolve().parent.parent)
        peer = _summarised(json.loads(out.stdout))
    except (subprocess.SubprocessError, ValueError) as exc:
        peer = {"error": repr(exc)[:1000]}
    best = max((row.get("drain_per_s") or 0 for row in ours), default=0)
    return {"jobs": scale.side_jobs, "ours": ours, "apscheduler": peer,
            "drain_ratio": round(best / peer["drain_per_s"], 2)
            if peer.get("drain_per_s") else None}


def _summarised(row: dict[str, Any]) -> dict[str, Any]:
    row["lateness_s"] = percentiles(row.pop("lateness_samples", []))
    return row


def run_idle(azurite: azurite_helpers.Azurite, scale: Scale) -> dict[str, Any]:
    log(f"4i. a lone job after {scale.idle_s:g} s of idle (devhost's polling model on)")
    row = e2e.idle(azurite, scale.idle_s)
    if row.get("error"):
        log(f"4i. failed: {row['error']}")
    return row


def run_memory(jobs: int) -> dict[str, Any]:
    log(f"6. memory: executor draining {jobs} jobs (own process)")
    out = subprocess.run([sys.executable, "-m", "bench.memory", "--jobs", str(jobs)],
                         check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="scaled-down run (under two minutes; the CI smoke test)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/bench.json"),
                        help="where to write the figures as JSON (default: %(default)s)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    started = time.perf_counter()
    found = azurite_helpers.from_environment()
    azurite = found or azurite_helpers.start()
    log(f"Azurite at {azurite.blob_endpoint} ({'given' if found else 'started'})")
    try:
        results = asyncio.run(run_azurite(Env(azurite), scale))
        results["lateness_e2e"] = run_e2e(azurite, scale)
        results["idle_e2e"] = run_idle(azurite, scale)
        results["side_by_side"] = run_side_by_side(azurite, scale)
    finally:
        if found is None:
            azurite.stop()
    results["memory"] = run_memory(scale.memory_jobs)
    log(f"10. telemetry off and on: {scale.memory_jobs // 5} jobs (in-memory store)")
    results["telemetry"] = telemetry.run(scale.memory_jobs // 5)
    results["targets"] = report.targets(results)
    results["meta"] = {"mode": "quick" if args.quick else "full", "scale": scale.__dict__,
                       "finished_at": datetime.now(UTC).isoformat(),
                       "seconds": time.perf_counter() - started,
                       "python": platform.python_version(), "machine": platform.machine(),
                       "cpus": _cpus(),
                       "end_to_end_functions_app": "devhost + Azurite over HTTP (lateness_e2e)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print(report.table(results))
    print(report.plot(results, args.out.with_name(args.out.stem + "-lateness.png")))
    print(f"figures: {args.out} ({results['meta']['seconds']:.0f} s)")
    return 0


def _cpus() -> int | None:
    import os

    return os.cpu_count()
