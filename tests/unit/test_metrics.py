"""Operator figures: histogram maths, the slot aggregate, and lateness/claim time as the
executor records them (memory store, controlled clock)."""

from __future__ import annotations

import pytest

from jobs_api.starter import aggregate_metrics
from jobs_core import InMemoryStore, JobRequest
from jobs_core.metrics import BOUNDS_MS, Histogram, retry_rate
from jobs_core.request_counter import operation_name
from tests.jobs_helpers import Clock, Recorder, make


def test_histogram_percentiles_are_bucket_upper_bounds() -> None:
    h = Histogram()
    for value in [1, 2, 3, 4, 20, 20, 20, 200, 900, 4000]:
        h.record(value)
    assert h.count == 10
    assert h.percentile(0.5) == 25  # the 5th value (20) is in the (10, 25] bucket
    assert h.percentile(0.95) == 4000  # the bound 5000 is capped at the max seen
    assert h.summary() == {"count": 10, "p50": 25.0, "p95": 4000.0, "max": 4000.0,
                           "mean": 517.0}
    assert Histogram().summary()["p50"] is None


def test_histograms_merge_by_adding_counts_and_survive_a_round_trip() -> None:
    a, b = Histogram(), Histogram()
    a.record(7)
    b.record(600_000)  # beyond the last bound: the overflow bucket
    a.merge(Histogram.from_dict(b.to_dict()))
    assert a.count == 2 and a.counts[-1] == 1 and a.max_ms == 600_000
    assert a.percentile(1.0) == 600_000
    assert Histogram.from_dict({"counts": [1, 2]}).count == 0  # other bounds: ignored
    assert len(a.counts) == len(BOUNDS_MS) + 1


def test_retry_rate() -> None:
    assert retry_rate(0, 0, 0) is None
    assert retry_rate(1, 3, 0) == 0.25


async def test_executor_records_lateness_and_claim_time() -> None:
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(InMemoryStore(), rec, clock, slots=1)
    for delay in (10, 10, 20):
        await scheduler.schedule(JobRequest("echo", delay=delay))
    clock.advance(30)  # the jobs are 20, 20 and 10 s late when they start
    plan, result = await executor.run_cycle(0)
    assert plan.claim_ms >= 0 and plan.to_dict()["claim_ms"] >= 0
    assert result.lateness.count == 3 and result.lateness.max_ms == 20_000
    # two of three in the (10 s, 30 s] bucket, whose bound is capped at the max seen
    assert result.lateness.percentile(0.5) == 20_000
    assert result.to_dict()["lateness"]["counts"][BOUNDS_MS.index(10_000)] == 1


def test_aggregate_sums_the_slots_and_skips_slots_without_status(
        monkeypatch: pytest.MonkeyPatch) -> None:
    h1, h2 = Histogram(), Histogram()
    h1.record(100)
    h2.record(300)
    h2.record(400)

    def slot(succeeded: int, retried: int, failed: int, hist: Histogram,
             claim: float) -> dict[str, object]:
        return {"custom_status": {
            "totals": {"started": succeeded + retried + failed, "succeeded": succeeded,
                       "retried": retried, "failed": failed},
            "metrics": {"lateness_histogram": hist.to_dict(), "claim_ms": claim}}}

    out = aggregate_metrics([slot(3, 1, 0, h1, 4.0), slot(1, 0, 1, h2, 8.0),
                             {"custom_status": None}])
    assert out["jobs"]["succeeded"] == 4 and out["failures"] == 1
    assert out["retry_rate"] == round(1 / 6, 4)
    assert out["lateness_ms"]["count"] == 3 and out["lateness_ms"]["max"] == 400
    assert out["claim_ms"] == {"last_max": 8.0, "last_mean": 6.0}


def test_queue_requests_have_names() -> None:
    base = "http://127.0.0.1:10001/devstoreaccount1/job-events"
    assert operation_name("POST", base + "/messages", {}) == "enqueue"
    assert operation_name("PUT", base, {}) == "create_queue"
    assert operation_name("PUT", "http://h/acct/c/b?comp=appendblock", {}) == "append"
