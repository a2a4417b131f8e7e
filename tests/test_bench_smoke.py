"""Smoke test of the benchmark: ``python -m bench --quick`` runs and writes every figure.

No thresholds on times (CI machines are noisy); only that each figure is there and that the
request counters saw requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import azurite as azurite_helpers

REPO = Path(__file__).resolve().parent.parent
FIGURES = ("requests_per_job", "throughput", "drain", "lateness", "lateness_e2e",
           "status_query", "memory", "targets", "meta", "side_by_side")


@pytest.mark.azurite
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_quick(tmp_path: Path, azurite: azurite_helpers.Azurite) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "AZURITE_CONNECTION_STRING": azurite.connection_string}
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=290)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert all(name in r for name in FIGURES), sorted(r)
    req = r["requests_per_job"]
    assert req["lone"]["requests_total"] > 0 and req["lone"]["status"] == "succeeded"
    for key in ("burst_single", "burst_bulk"):
        assert req[key]["schedule"]["requests_total"] > 0
        assert req[key]["run"]["requests_total"] > 0
        assert req[key]["all_succeeded"]
    tp = r["throughput"]
    for key in ("single_sequential", "single_concurrent", "bulk", "raw_sequential",
                "raw_concurrent"):
        assert tp[key]["seconds"] > 0
    assert tp["raw_sequential"]["requests_total"] > 0
    assert tp["raw_concurrent"]["requests_total"] > 0
    assert r["drain"]["requests_total"] > 0 and r["drain"]["succeeded"] == r["drain"]["jobs"]
    assert len(r["lateness"]) == 2
    for row in r["lateness"]:
        assert row["requests_total"] > 0 and row["ran"] >= row["jobs"]
        assert all(row["lateness_s"][k] is not None for k in ("p50", "p95", "p99", "max"))
    for row in r["status_query"]["rows"]:
        assert row["cold"]["requests_total"] > 0 and row["warm"]["requests_total"] > 0
    mem = r["memory"]
    assert mem["finished"] == mem["jobs"] and len(mem["at"]) == 3 and mem["peak_rss_mb"] > 0
    # end to end through the Functions app on devhost: every job ran, lateness measured
    assert [row["workers"] for row in r["lateness_e2e"]] == [0, 2]  # in the host; 2 workers
    for row in r["lateness_e2e"]:
        assert "error" not in row, row.get("error", "") + row.get("devhost_log_tail", "")
        assert row["all_succeeded"] and row["ran"] == row["jobs"] > 0
        assert all(row["lateness_s"][k] is not None for k in ("p50", "p95", "p99", "max"))
        backend = row["durable_backend"]  # devhost's model of the Durable backend's cost
        assert backend["requests"] > 0 and backend["by_step"]["episode"] > 0
    idle = r["idle_e2e"]
    assert "error" not in idle, idle.get("error", "") + idle.get("devhost_log_tail", "")
    assert idle["lateness_s"] is not None and idle["idle_backend_requests_per_s"] > 0
    side = r["side_by_side"]  # figure 9: ours next to APScheduler on the same drain
    for row in [*side["ours"], side["apscheduler"]]:
        assert "error" not in row, row.get("error", "") + row.get("devhost_log_tail", "")
        assert row["ran"] == side["jobs"] and row["drain_per_s"] > 0
    assert side["drain_ratio"] > 0
    assert "END TO END" in proc.stdout and "not measured" not in proc.stdout
