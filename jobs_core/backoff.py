"""One exponential back-off: ``base * 2**(n-1)`` after the n-th failure, at most ``cap`` (the
exponent is bounded, so a long run of failures never overflows)."""

from __future__ import annotations


def backoff(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0 or 1: ``base``)."""
    return float(min(cap, base * 2 ** min(60, max(0, failures - 1))))
