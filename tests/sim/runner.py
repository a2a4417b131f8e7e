"""Run one seed, or many, and report: seeds, operations, faults by kind, duplicates by cause."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from jobs_core.store import JobStore

from . import faults, vloop
from .facts import Violation
from .workload import simulate
from .world import LATEST_WORKLOAD, SimConfig

OPERATIONS = ("schedule", "schedule_error", "conflict", "get", "cancel", "run_now",
              "reschedule", "pause", "resume", "update", "purge", "invocations")


async def _real_io(request: Awaitable[Any]) -> Any:
    faults.REAL_IO_IN_FLIGHT[0] += 1
    try:
        return await request
    finally:
        faults.REAL_IO_IN_FLIGHT[0] -= 1


def _busy() -> bool:
    return faults.REAL_IO_IN_FLIGHT[0] > 0


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

    def digest(self) -> str:
        """A fingerprint of the world this seed made: its trace, faults and operations."""
        world = (self.trace, sorted(self.faults.items()), sorted(self.duplicates.items()),
                 sorted(self.ops.items()), [str(v) for v in self.violations])
        return hashlib.sha256(repr(world).encode()).hexdigest()[:16]

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


# I13: a world must end. The slowest seeds of a soak take ~60 s on a loaded 2-core machine; a
# world whose work piles up (seed 34542, before overdue plans backed off) runs for hours
REAL_SECONDS = 600.0


def run_seed(seed: int, ops: int | None = None, *,
             store: Callable[[], Awaitable[JobStore]] | None = None,
             workload: int = LATEST_WORKLOAD,
             real_seconds: float | None = REAL_SECONDS) -> SeedResult:
    """One seed; with ``store`` (a factory of a real store, e.g. on Azurite) the same world
    runs against that service, its block limit unscaled. ``workload``: the version of the
    workload (``world.WORKLOADS``; a seed found with an older one replays it). A world still
    running after ``real_seconds`` of real time fails I13 (None: no limit)."""
    config = replace(SimConfig.draw(seed, ops), workload=workload)
    if store is not None:
        config = config.unscaled()
    began = time.perf_counter()
    logging.disable(logging.CRITICAL)  # the core logs every skipped record; the trace is ours
    shared: list[Any] = []

    async def main() -> Any:
        real = await _real_io(store()) if store is not None else None
        if real is not None:
            shared.append(real)
        try:
            return await simulate(config, real)
        finally:
            if real is not None:
                await _real_io(real.close())

    try:
        oracle = vloop.run(main(), io_busy=_busy if store is not None else None,
                           real_seconds=real_seconds)
    except vloop.Overtime as exc:
        return SeedResult(seed, [Violation("I13", f"the world did not end in {real_seconds:g} s "
                                                  f"of real time: {exc}")], 0, Counter(),
                          Counter(), [], time.perf_counter() - began, config)
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


def run_many(seeds: list[int], workers: int = 1, ops: int | None = None,
             workload: int = LATEST_WORKLOAD) -> tuple[Totals, list[SeedResult]]:
    """Run ``seeds`` (in ``workers`` processes); returns the totals and the failed results."""
    totals, failed = Totals(), []
    if workers <= 1:
        results = (run_seed(seed, ops, workload=workload) for seed in seeds)
        for result in results:
            totals.add(result)
            if not result.ok:
                failed.append(result)
        return totals, failed
    import multiprocessing
    import os

    # string hashing (set order) is fixed at interpreter start: the workers start with
    # PYTHONHASHSEED=0, as the CLI does, so a failing seed replays exactly from the CLI
    saved = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = "0"
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers) as pool:
            for result in pool.imap_unordered(_run_one,
                                              [(seed, ops, workload) for seed in seeds]):
                totals.add(result)
                if not result.ok:
                    failed.append(result)
    finally:
        if saved is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = saved
    return totals, failed


def _run_one(args: tuple[int, int | None, int]) -> SeedResult:
    seed, ops, workload = args
    result = run_seed(seed, ops, workload=workload)
    result.trace = result.trace[-60:]  # keep what crosses the process boundary small
    return result
