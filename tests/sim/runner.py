"""Run one seed, or many, and report: seeds, operations, faults by kind, duplicates by cause."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from . import vloop
from .oracle import Violation
from .world import SimConfig, simulate

OPERATIONS = ("schedule", "schedule_error", "conflict", "get", "cancel", "run_now",
              "reschedule", "purge", "invocations")


@dataclass
class SeedResult:
    seed: int
    violations: list[Violation]
    operations: int
    faults: Counter[str]
    duplicates: Counter[str]
    trace: list[str]
    seconds: float
    config: SimConfig
    ops: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.violations

    def describe(self, trace_lines: int = 25) -> str:
        first = self.violations[0]
        lines = [f"seed {self.seed} violates {first}"]
        lines += [f"  also: {v}" for v in self.violations[1:6]]
        cfg = self.config
        lines.append(f"  config: processes={cfg.processes} slots={cfg.slots} "
                     f"bucket={cfg.bucket_minutes}min ops={cfg.ops} crash_every="
                     f"{cfg.crash_every:g}s faults={cfg.plan}")
        lines.append(f"  replay: python -m tests.sim --seeds 1 --start {self.seed} -v")
        lines.append("  trace (last lines):")
        lines += ["    " + t for t in self.trace[-trace_lines:]]
        return "\n".join(lines)


def run_seed(seed: int, ops: int | None = None) -> SeedResult:
    config = SimConfig.draw(seed, ops)
    began = time.perf_counter()
    logging.disable(logging.CRITICAL)  # the core logs every skipped record; the trace is ours
    try:
        oracle = vloop.run(simulate(config))
    finally:
        logging.disable(logging.NOTSET)
    operations = sum(n for op, n in oracle.ops.items() if op in OPERATIONS)
    return SeedResult(seed, oracle.violations, operations, oracle.faults,
                      oracle.duplicates, oracle.trace, time.perf_counter() - began, config,
                      oracle.ops)


@dataclass
class Totals:
    seeds: int = 0
    failed: list[int] = field(default_factory=list)
    operations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    ops: Counter[str] = field(default_factory=Counter)
    by_invariant: Counter[str] = field(default_factory=Counter)

    def add(self, result: SeedResult) -> None:
        self.seeds += 1
        self.operations += result.operations
        self.faults.update(result.faults)
        self.duplicates.update(result.duplicates)
        self.ops.update(result.ops)
        if not result.ok:
            self.failed.append(result.seed)
            self.by_invariant.update({v.invariant for v in result.violations})

    def summary(self) -> str:
        return (f"{self.seeds} seeds, {len(self.failed)} failed "
                f"({dict(self.by_invariant)}), {self.operations} operations, faults "
                f"{dict(sorted(self.faults.items()))}, duplicates {dict(self.duplicates)}, "
                f"by kind {dict(sorted(self.ops.items()))}")
