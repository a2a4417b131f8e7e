"""Targets, the printed table and the lateness figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .telemetry import table as telemetry_table

BURST_TARGET = 0.05  # requests per job, schedule side of a burst
LONE_TARGET = 4  # requests for one lone job, end to end
THROUGHPUT_TARGET = 20.0  # x the raw one-record append rate
P99_TARGET_S = 1.0
SIDE_RATIO_TARGET = 10.0  # figure 9: our drain rate / APScheduler's


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    req, tp = r["requests_per_job"], r["throughput"]
    out = [
        {"name": "lone job requests (schedule+run+read)", "target": f"<= {LONE_TARGET}",
         "value": req["lone"]["requests_total"]},
        {"name": "burst single schedule() requests/job", "target": f"<= {BURST_TARGET}",
         "value": req["burst_single"]["schedule"]["requests_per_job"]},
        {"name": "burst schedule_many() requests/job", "target": f"<= {BURST_TARGET}",
         "value": req["burst_bulk"]["schedule"]["requests_per_job"]},
        {"name": "concurrent schedule() vs raw concurrent appends", "target":
         f">= {THROUGHPUT_TARGET:g}x", "value": tp["ratio_concurrent_vs_raw_concurrent"]},
        {"name": "schedule_many() vs raw concurrent appends", "target":
         f">= {THROUGHPUT_TARGET:g}x", "value": tp["ratio_bulk_vs_raw_concurrent"]},
    ]
    out[0]["met"] = out[0]["value"] <= LONE_TARGET
    out[1]["met"] = out[1]["value"] <= BURST_TARGET
    out[2]["met"] = out[2]["value"] <= BURST_TARGET
    out[3]["met"] = out[3]["value"] >= THROUGHPUT_TARGET
    out[4]["met"] = out[4]["value"] >= THROUGHPUT_TARGET
    for row in r["lateness"]:
        p99 = row["lateness_s"]["p99"]
        out.append({"name": f"lateness p99 at {row['rate_per_s']:g}/s", "target":
                    f"<= {P99_TARGET_S:g} s", "value": p99,
                    "met": p99 is not None and p99 <= P99_TARGET_S})
    for row in r.get("lateness_e2e", []):
        p99 = row["lateness_s"]["p99"]
        out.append({"name": f"e2e (devhost+HTTP, {_procs(row)}) lateness p99 at "
                            f"{row['rate_per_s']:g}/s",
                    "target": f"<= {P99_TARGET_S:g} s, all succeeded", "value": p99,
                    "met": bool(row.get("all_succeeded")) and p99 is not None
                    and p99 <= P99_TARGET_S})
    side = r.get("side_by_side")
    if side:
        out.append({"name": f"drain of {side['jobs']} jobs vs APScheduler (SQLite, 20 threads)",
                    "target": f">= {SIDE_RATIO_TARGET:g}x", "value": side.get("drain_ratio"),
                    "met": (side.get("drain_ratio") or 0) >= SIDE_RATIO_TARGET})
        for row in side["ours"]:
            p99 = (row.get("lateness_s") or {}).get("p99")
            out.append({"name": f"drain of {side['jobs']} jobs, lateness p99 ({_procs(row)})",
                        "target": f"<= {P99_TARGET_S:g} s", "value": p99,
                        "met": p99 is not None and p99 <= P99_TARGET_S
                        and row.get("ran") == side["jobs"]})
    out.append({"name": "warm get() requests constant", "target": "same for every shard size",
                "value": [row["warm"]["requests_total"] for row in r["status_query"]["rows"]],
                "met": r["status_query"]["warm_requests_constant"]})
    return out


def _procs(row: dict[str, Any]) -> str:
    workers = row.get("workers") or 0
    return f"{workers} workers" if workers else "host"


def _ops(counts: dict[str, int]) -> str:
    return " ".join(f"{op}={n}" for op, n in counts.items()) or "-"


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(r: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    req = r["requests_per_job"]
    add("1. Storage requests per job (RequestCounter, every request)")
    lone = req["lone"]
    add(f"  lone job        total {lone['requests_total']:>4}   schedule: {_ops(lone['schedule'])}"
        f" | run: {_ops(lone['run'])} | read back: {_ops(lone['read_back'])}")
    add(f"  {'burst':<24}{'jobs':>7}{'sched req/job':>15}{'run req/job':>13}{'total/job':>11}"
        "   schedule ops | run ops")
    for key in ("burst_single", "burst_bulk"):
        b = req[key]
        add(f"  {key:<24}{b['jobs']:>7}{b['schedule']['requests_per_job']:>15.4f}"
            f"{b['run']['requests_per_job']:>13.4f}{b['requests_per_job_total']:>11.4f}"
            f"   {_ops(b['schedule']['requests'])} | {_ops(b['run']['requests'])}")
    tp = r["throughput"]
    add("2. Schedule throughput (durable jobs/s) vs raw one-record append_block on one blob")
    for name, row, unit in (("schedule() sequential", tp["single_sequential"], "jobs_per_s"),
                            ("schedule() concurrent", tp["single_concurrent"], "jobs_per_s"),
                            ("schedule_many()", tp["bulk"], "jobs_per_s"),
                            ("raw append sequential", tp["raw_sequential"], "records_per_s"),
                            ("raw append concurrent", tp["raw_concurrent"], "records_per_s")):
        n = row.get("jobs", row.get("appends"))
        add(f"  {name:<24}{n:>7} in {row['seconds']:7.2f} s = {row[unit]:>10.0f} /s")
    add(f"  ratios: concurrent/raw-seq {tp['ratio_concurrent_vs_raw_sequential']:.1f}x, "
        f"concurrent/raw-conc {tp['ratio_concurrent_vs_raw_concurrent']:.1f}x, "
        f"bulk/raw-conc {tp['ratio_bulk_vs_raw_concurrent']:.1f}x")
    d = r["drain"]
    add(f"3. Drain: {d['jobs']} no-op jobs due now -> {d['succeeded']} succeeded in "
        f"{d['seconds']:.2f} s = {d['jobs_per_s']:.0f} jobs/s; {d['requests_total']} requests "
        f"({d['requests_per_job']:.4f}/job): {_ops(d['requests'])}")
    add("4. Lateness (handler start - due), jobs_core direct (Executor loops in-process)")
    add(f"  {'rate/s':>8}{'jobs':>7}{'ran':>7}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'max s':>8}"
        f"{'req/job':>9}{'cycles':>8}")
    for row in r["lateness"]:
        lat = row["lateness_s"]
        add(f"  {row['rate_per_s']:>8g}{row['jobs']:>7}{row['ran']:>7}{_f(lat['p50']):>8}"
            f"{_f(lat['p95']):>8}{_f(lat['p99']):>8}{_f(lat['max']):>8}"
            f"{row['requests_per_job']:>9.3f}{row['cycles']:>8}")
    add("4e. Lateness END TO END: Functions app on devhost + Azurite, HTTP client; one POST "
        "/api/jobs/batch per 100 ms tick, due_at spread at the rate 2 s ahead; "
        "started_at - due_at from GET /api/jobs")
    add(f"  {'rate/s':>8}{'app in':>11}{'jobs':>7}{'ok':>7}{'p50 s':>8}{'p95 s':>8}"
        f"{'p99 s':>8}{'max s':>8}{'POST p50/max s':>16}{'accepted late':>15}")
    for row in r.get("lateness_e2e", []):
        lat, post = row["lateness_s"], row.get("post_latency_s") or {}
        add(f"  {row['rate_per_s']:>8g}{_procs(row):>11}{row['jobs']:>7}{row['ran']:>7}"
            f"{_f(lat['p50']):>8}"
            f"{_f(lat['p95']):>8}{_f(lat['p99']):>8}{_f(lat['max']):>8}"
            f"{_f(post.get('p50'), 2) + '/' + _f(post.get('max'), 2):>16}"
            f"{row.get('accepted_after_due', '-'):>15}"
            + (f"  ERROR {row['error'][:120]}" if row.get("error") else ""))
    add("4d. Durable backend (devhost's model of Azure Storage: requests the real backend "
        "would make) during each e2e window")
    for row in r.get("lateness_e2e", []):
        b = row.get("durable_backend") or {}
        if b:
            steps = ", ".join(f"{k} {v}" for k, v in sorted(b["by_step"].items()) if v)
            add(f"  {row['rate_per_s']:>8g}/s ({_procs(row)}): {b['requests']} requests, "
                f"{b['per_job']} per job, "
                f"{b['per_s']}/s ({steps})")
    idle = r.get("idle_e2e")
    if idle:
        add(f"4i. A lone job after {idle['idle_s']:g} s idle (polling model, max "
            f"{idle.get('max_poll_seconds', '-')} s): lateness {_f(idle.get('lateness_s'))} s; "
            f"idle backend {idle.get('idle_backend_requests_per_s', '-')} requests/s"
            + (f"  ERROR {idle['error'][:120]}" if idle.get("error") else ""))
    rows = r.get("pending") or []
    if rows:
        add("8. A planning cycle, nothing due, jobs pending evenly over the next 364 days (one "
            "slot): requests / time; first cycle, warm cycle, and a full listing as before")
        for row in rows:
            c, w, f = row["cold"], row["warm"], row["full_listing"]
            add(f"  {row['jobs']:>8} jobs in {row['blobs']:>5} blobs: first {c['requests']} req "
                f"{c['seconds']:.3f} s | warm {w['requests']} req {w['seconds']:.3f} s | full "
                f"listing {f['requests']} req {f['seconds']:.3f} s | executor caches "
                f"{row['executor_cache_blobs']} blobs")
    side = r.get("side_by_side")
    if side:
        add(f"9. Drain side by side: {side['jobs']} no-op jobs all due at one instant, end to "
            "end; lateness from the due time (APScheduler: from when the last job was added, "
            "if that was later)")
        add(f"  {'scheduler':<44}{'schedule/s':>11}{'drain/s':>9}{'p50 s':>8}{'p99 s':>8}"
            f"{'ran':>7}")
        rows = [(f"ours, devhost + Azurite ({_procs(row)})", row) for row in side["ours"]]
        rows.append(("APScheduler 3.11, SQLAlchemy/SQLite, 20 threads", side["apscheduler"]))
        for name, row in rows:
            lat = row.get("lateness_s") or {}
            add(f"  {name:<44}{_f(row.get('schedule_per_s'), 0):>11}"
                f"{_f(row.get('drain_per_s'), 0):>9}{_f(lat.get('p50')):>8}"
                f"{_f(lat.get('p99')):>8}{row.get('ran', 0):>7}"
                + (f"  ERROR {row['error'][:120]}" if row.get("error") else ""))
        add(f"  drain ratio, ours (best) / APScheduler: {side.get('drain_ratio')}")
    add("5. Status query get(id): requests and time, cold (fresh scheduler) / warm (2nd get)")
    for row in r["status_query"]["rows"]:
        c, w = row["cold"], row["warm"]
        add(f"  {row['jobs_in_shard']:>7} jobs in shard: cold {c['requests_total']} req "
            f"{c['seconds'] * 1000:8.1f} ms | warm {w['requests_total']} req "
            f"{w['seconds'] * 1000:6.1f} ms")
    if r.get("telemetry"):
        lines.extend(telemetry_table(r["telemetry"]))
    m = r["memory"]
    add(f"6. Memory: executor draining {m['jobs']} jobs ({m['store']} store, "
        f"{m['jobs_per_s']:.0f} jobs/s); peak RSS {m['peak_rss_mb']:.1f} MB")
    for c in m["at"]:
        add(f"  after {c['finished']:>7} finished: RSS {c['rss_mb']:7.1f} MB, store "
            f"{c['store_mb']:6.1f} MB, RSS-store {c['rss_minus_store_mb']:7.1f} MB")
    ev = r.get("events")
    if ev:
        add("7. State-change events: the burst of figure 1 (schedule_many + drain) without "
            "events, with eager sends only, and published from the job log only")
        for key in ("without", "with", "from_log"):
            e = ev[key]
            add(f"  {key:<9}{e['jobs']:>7} jobs, drain {e['drain_jobs_per_s']:>7.0f} jobs/s, "
                f"blob req/job {e['blob_requests_per_job']:.4f}, queue req/job "
                f"{e['queue_requests_per_job']:.4f} ({_ops(e['queue_requests'])}), "
                f"{e['events']} events in {e['messages']} messages "
                f"({e['events_per_message']:.0f}/message)")
        add(f"  drain rate eager / without: {ev['drain_rate_ratio']:.2f}; from the log / "
            f"without: {ev['log_drain_rate_ratio']:.2f}; blob requests the log publisher adds "
            f"per job: {ev['log_added_blob_requests_per_job']:.4f}")
        for mode, lat in ev["latency"].items():
            q = lat["latency_s"]
            add(f"  latency {mode:<6} at {lat['rate_per_s']:.0f} jobs/s: change -> queue ack "
                f"p50 {_s(q['p50'])} p99 {_s(q['p99'])} max {_s(q['max'])} "
                f"({lat['events']} events)")
    add("Targets")
    for t in r["targets"]:
        value = t["value"]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        add(f"  {t['name']:<52} {t['target']:<26} {shown:<12} {_met(t['met'])}")
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> str:
    """Draw the lateness distribution; returns what happened (for the printout)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: lateness plot skipped"
    fig, ax = plt.subplots(figsize=(9, 5))
    series = [(row, "jobs_core direct", "-") for row in r["lateness"]]
    series += [(row, f"e2e devhost+HTTP ({_procs(row)})", "--")
               for row in r.get("lateness_e2e", [])]
    for row, kind, style in series:
        samples = sorted(row["samples"])
        if not samples:
            continue
        ys = [(i + 1) / len(samples) for i in range(len(samples))]
        ax.plot(samples, ys, linestyle=style, label=f"{kind}, {row['rate_per_s']:g} jobs/s "
                f"(n={len(samples)}, p99 {row['lateness_s']['p99']:.3f} s)")
    ax.axvline(P99_TARGET_S, color="grey", linestyle="--", label=f"p99 target ({P99_TARGET_S:g} s)")
    ax.set_xlabel("lateness: handler start (e2e: the job's started_at) - due time (s)")
    ax.set_ylabel("fraction of jobs with lateness <= x (CDF)")
    ax.set_title("Lateness distribution on Azurite: jobs_core direct vs Functions app end to end")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"lateness plot: {path}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"
