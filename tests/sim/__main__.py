"""python -m tests.sim --seeds N --start S [--ops K] [-v]: run seeds, print failures."""

from __future__ import annotations

import argparse
import os
import sys

from .runner import Totals, run_many, run_seed
from .world import LATEST_WORKLOAD, WORKLOADS


def main() -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":  # set iteration order is part of a replay
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "tests.sim", *sys.argv[1:]])
    parser = argparse.ArgumentParser(prog="python -m tests.sim")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--ops", type=int, default=None, help="client operations per seed")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every failure")
    parser.add_argument("--stop", action="store_true", help="stop at the first failure")
    parser.add_argument("--workers", type=int, default=1, help="processes (seeds in parallel)")
    parser.add_argument("--workload", type=int, choices=sorted(WORKLOADS),
                        default=LATEST_WORKLOAD,
                        help="the workload's version (a seed replays the one it was found "
                             "with): " + "; ".join(f"{k}: {v}" for k, v in WORKLOADS.items()))
    parser.add_argument("--no-v3-controls", action="store_const", dest="workload", const=2,
                        help="the same as --workload 2")
    args = parser.parse_args()
    if args.workers > 1:
        totals, failed = run_many(list(range(args.start, args.start + args.seeds)),
                                  args.workers, args.ops, args.workload)
        for result in sorted(failed, key=lambda r: r.seed):
            print(result.describe(12), flush=True)
        print(totals.summary())
        return 1 if failed else 0
    totals = Totals()
    for seed in range(args.start, args.start + args.seeds):
        result = run_seed(seed, args.ops, workload=args.workload)
        totals.add(result)
        if not result.ok:
            print(result.describe(60 if args.verbose else 12), flush=True)
            if args.stop:
                break
        elif args.verbose:
            print(f"seed {seed} ok: {result.operations} operations in {result.seconds:.2f} s")
    print(totals.summary())
    return 1 if totals.failed else 0


if __name__ == "__main__":
    sys.exit(main())
