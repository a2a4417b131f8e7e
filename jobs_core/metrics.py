"""Operator figures: a small mergeable latency histogram and the derived rates.

The figures operators of a durable job system watch (the list Orleans Durable Jobs documents):
shard claim time, lateness (start - due), retry rate, failures, storage requests per minute.
Histograms use fixed bucket bounds so they merge by adding counts (across batches, cycles and
slots) and stay a few dozen bytes in orchestration history; percentiles are the upper bound of
the bucket the rank falls in (so "p95 <= 250 ms" is what "p95: 250" means).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000)


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))
    max_ms: float = 0.0
    sum_ms: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def record(self, value_ms: float) -> None:
        value_ms = max(0.0, value_ms)
        index = next((i for i, bound in enumerate(BOUNDS_MS) if value_ms <= bound),
                     len(BOUNDS_MS))
        self.counts[index] += 1
        self.max_ms = max(self.max_ms, value_ms)
        self.sum_ms += value_ms

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.max_ms = max(self.max_ms, other.max_ms)
        self.sum_ms += other.sum_ms

    def percentile(self, q: float) -> float | None:
        """Upper bound of the bucket holding the ``q`` quantile (the max for the last one)."""
        total = self.count
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return float(min(BOUNDS_MS[i], self.max_ms)) if i < len(BOUNDS_MS) \
                    else round(self.max_ms, 1)
        return round(self.max_ms, 1)

    def summary(self) -> dict[str, Any]:
        """``{count, p50, p95, max, mean}`` in milliseconds (None when empty)."""
        total = self.count
        return {"count": total, "p50": self.percentile(0.5), "p95": self.percentile(0.95),
                "max": round(self.max_ms, 1) if total else None,
                "mean": round(self.sum_ms / total, 1) if total else None}

    def to_dict(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "max_ms": round(self.max_ms, 3),
                "sum_ms": round(self.sum_ms, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Histogram:
        if not data or len(data.get("counts") or []) != len(BOUNDS_MS) + 1:
            return cls()
        return cls([int(n) for n in data["counts"]], float(data.get("max_ms", 0.0)),
                   float(data.get("sum_ms", 0.0)))


def retry_rate(retried: int, succeeded: int, failed: int) -> float | None:
    """Share of finished attempts that ended in a retry (None before any attempt)."""
    attempts = retried + succeeded + failed
    return None if attempts == 0 else round(retried / attempts, 4)
