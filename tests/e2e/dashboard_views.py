"""The dashboard's numbers two ways: what the JSON API says, written as the page should show
it, and what the page shows (read through ``Dashboard``), so a test can compare them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from tests.e2e.dashboard_page import Dashboard
from tests.e2e.helpers import Api

SHARD_COUNTS = ["scheduled", "running", "retrying", "succeeded", "failed", "cancelled", "paused"]
SLOT_COUNTS = ["started", "succeeded", "retried", "failed", "abandoned", "skipped", "compensated",
               "throttled"]
DASH = "\u2013"  # the page writes an en dash for a missing value


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def shown(value: Any) -> str:
    """How the page writes a number."""
    if value is None:
        return DASH
    assert isinstance(value, int), value
    return f"{value:,}"


def get_json(api: Api, path: str, **params: Any) -> dict[str, Any]:
    r = api.request("GET", path, params={k: v for k, v in params.items() if v})
    assert r.status_code == 200, (path, r.status_code, r.text)
    return dict(r.json())


def api_jobs(api: Api, **params: Any) -> tuple[list[dict[str, str]], str | None]:
    body = get_json(api, "/api/jobs", **params)
    rows = [{"id": j["id"], "handler": j["handler"], "status": j["status"],
             "attempts": f"{j['attempts']} / {j['max_attempts']}", "runs": shown(j["runs"])}
            for j in body["jobs"]]
    return rows, body["next_cursor"]


# ---- what the API says, as the page should show it -----------------------------------------
def expected_shards(api: Api) -> dict[str, dict[str, str]]:
    out = {}
    for shard in get_json(api, "/api/shards", limit=20)["shards"]:
        assert shard["block_limit"] == 50_000, shard
        row = {c: shown((shard["counts"] or {}).get(c)) for c in SHARD_COUNTS}  # null: unreadable
        row["pending"] = shown(shard["pending"])
        row["blocks"] = f"{shard['blocks']:,} / {shard['block_limit']:,}"
        out[shard["name"]] = row
    return out


def expected_slots(scheduler: dict[str, Any]) -> dict[int, dict[str, str]]:
    out = {}
    for slot in scheduler["slots"]:
        status = slot["custom_status"] or {}
        counts, totals = status.get("counts") or {}, status["totals"]
        row = {"status": slot["runtime_status"] or "not started",
               "jobs-run": shown(totals["started"]), "jobs-failed": shown(totals["failed"]),
               "plan": f"{shown(status.get('due'))} due, {shown(status.get('batches'))} "
                       f"batches, {shown(status.get('pending'))} pending",
               "last-error": status.get("last_error") or "none"}
        row.update({f"cycle-{c}": shown(counts.get(c)) for c in SLOT_COUNTS})
        row.update({f"total-{c}": shown(totals.get(c)) for c in SLOT_COUNTS})
        out[slot["slot"]] = row
    return out


def api_view(api: Api) -> dict[str, Any]:
    """Everything the page shows that stays put while nothing is due (slot cycles go on, so
    their cycle numbers are compared separately)."""
    scheduler = get_json(api, "/api/scheduler")
    timeline = get_json(api, "/api/timeline", minutes=60)
    return {
        "jobs": api_jobs(api, limit=25)[0],
        "shards": expected_shards(api),
        "slots": expected_slots(scheduler),
        "metrics": {"failures": shown(scheduler["metrics"]["failures"]),
                    "jobs-run": shown(scheduler["metrics"]["jobs"]["started"]),
                    "jobs-succeeded": shown(scheduler["metrics"]["jobs"]["succeeded"])},
        "chart": {"points": str(len(timeline["points"])),
                  "due-total": str(sum(p["due"] for p in timeline["points"])),
                  "finished-total": str(sum(p["finished"] for p in timeline["points"]))},
    }


def cycles(api: Api) -> dict[int, int]:
    return {s["slot"]: (s["custom_status"] or {}).get("cycle", 0)
            for s in get_json(api, "/api/scheduler")["slots"]}


def page_view(dash: Dashboard, slots: list[int]) -> tuple[dict[str, Any], dict[int, int]]:
    view_slots, shown_cycles = {}, {}
    for k in slots:
        texts = dash.texts(f"slot-{k}-")
        shown_cycles[k] = int(texts["cycle"].replace(",", ""))
        row = {name: texts[name] for name in ("status", "jobs-run", "jobs-failed", "plan")}
        row["last-error"] = re.sub(r" \([^()]*\)$", "", texts["last-error"])  # without its time
        row.update({f"cycle-{c}": texts[f"cycle-{c}"] for c in SLOT_COUNTS})
        row.update({f"total-{c}": texts[f"total-{c}"] for c in SLOT_COUNTS})
        view_slots[k] = row
    shards = dash.shard_rows([*SHARD_COUNTS, "pending", "blocks"])
    for row in shards.values():
        row["blocks"] = row["blocks"].split(" (")[0]
    metrics = dash.texts("metric-")
    view = {"jobs": dash.job_rows(), "shards": shards, "slots": view_slots,
            "metrics": {k: metrics[k] for k in ("failures", "jobs-run", "jobs-succeeded")},
            "chart": dash.chart_totals()}
    return view, shown_cycles
