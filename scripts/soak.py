"""A long simulation soak in chunks, resumable, with a tally: what a release's core must pass.

    .venv/bin/python scripts/soak.py --until 20000          # run chunks until seed 19,999
    .venv/bin/python scripts/soak.py --tally                # what the log holds so far
    .venv/bin/python scripts/soak.py --tree /tmp/soak ...   # a checkout of another revision
    .venv/bin/python scripts/soak.py --same-as core:...,sim:... --start 7000
                                   # replay a logged chunk here: are its counts identical?

Each chunk is ``python -m tests.sim --seeds CHUNK --start S --workers W`` under ``nice`` with
its summary appended to the log (default ``.soak/soak.log``), headed by the trees of
``jobs_core/`` and ``tests/sim/`` it ran on. A rerun starts at the first chunk the log lacks
for those trees, so a soak survives a stopped machine; a change to either tree starts the count
again (another key in the log). ``touch .soak/stop`` ends it after the running chunk. Seeds are
deterministic: a chunk's result is the same on every run of the same trees.

``--same-as KEY`` runs one chunk (``--start``) on this tree and compares its summary (seeds,
failures, operations, every fault, duplicate and operation count) with that chunk in the log
under ``KEY``: a core change that the simulated worlds never reach (a path no workload takes)
replays those worlds identically, and that is how it shows.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = re.compile(r"^=== chunk (\d+)\+(\d+) trees (\S+) rc (-?\d+) secs (\d+)$")
SUMMARY = re.compile(r"^(\d+) seeds, (\d+) failed .*?, (\d+) operations, faults (\{.*?\}), "
                     r"duplicates")


def trees(root: Path) -> str:
    """The trees the soak judges: jobs_core/ and tests/sim/ as committed, plus a mark when the
    working tree differs from them (a soak of uncommitted code is not a release's)."""
    core, sim = (subprocess.run(["git", "rev-parse", f"HEAD:{path}"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()[:10]
                 for path in ("jobs_core", "tests/sim"))
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "jobs_core", "tests/sim"],
                           cwd=root, check=True, capture_output=True, text=True).stdout.strip()
    return f"core:{core},sim:{sim}" + (",dirty" if dirty else "")


def read_log(log: Path, key: str) -> dict[int, tuple[int, str]]:
    """The chunks of ``key`` in the log: start -> (return code, their output)."""
    chunks: dict[int, tuple[int, str]] = {}
    if not log.exists():
        return chunks
    current: tuple[int, int] | None = None
    for line in log.read_text().splitlines():
        head = HEADER.match(line)
        if head:
            current = (int(head.group(1)), int(head.group(4))) \
                if head.group(3) == key else None
            if current:
                chunks[current[0]] = (current[1], "")
        elif current:
            rc, text = chunks[current[0]]
            chunks[current[0]] = (rc, text + line + "\n")
    return chunks


def tally(log: Path, key: str) -> int:
    """Print the totals of ``key``'s chunks; 1 if any failed."""
    chunks = read_log(log, key)
    seeds = failed = operations = 0
    faults: Counter[str] = Counter()
    bad = []
    for start, (rc, text) in sorted(chunks.items()):
        found = [SUMMARY.match(line) for line in text.splitlines()]
        summary = next((m for m in found if m), None)
        if summary is None or rc != 0 or int(summary.group(2)):
            bad.append(start)
        if summary:
            seeds += int(summary.group(1))
            failed += int(summary.group(2))
            operations += int(summary.group(3))
            faults.update(ast.literal_eval(summary.group(4)))
    covered = sorted(chunks)
    print(f"trees {key}: {len(chunks)} chunks from seed {covered[0] if covered else '-'}, "
          f"{seeds:,} seeds, {failed} failed, {operations:,} operations, "
          f"{faults['crash']:,} process crashes, "
          f"{sum(v for k, v in faults.items() if k != 'crash'):,} injected faults")
    if bad:
        print("chunks that failed or did not finish: " + ", ".join(map(str, bad)))
    return 1 if bad else 0


def run_chunk(tree: Path, start: int, seeds: int,
              workers: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nice", "-n", "19", sys.executable, "-m", "tests.sim", "--seeds", str(seeds),
         "--start", str(start), "--workers", str(workers)],
        cwd=tree, capture_output=True, text=True)


def summary_line(text: str) -> str | None:
    return next((line for line in text.splitlines() if SUMMARY.match(line)), None)


def same_as(log: Path, key: str, tree: Path, start: int, workers: int) -> int:
    """Replay the logged chunk of ``key`` from ``start`` on ``tree``; 0 when its summary is
    identical."""
    logged = read_log(log, key).get(start)
    before = summary_line(logged[1]) if logged else None
    match = SUMMARY.match(before) if before else None
    if before is None or match is None:
        print(f"the log has no finished chunk from seed {start} under {key}", file=sys.stderr)
        return 2
    seeds = int(match.group(1))
    now = summary_line(run_chunk(tree, start, seeds, workers).stdout)
    span = f"seeds {start}..{start + seeds - 1}"
    if now == before:
        print(f"{span}: identical to {key} ({now})")
        return 0
    print(f"{span} differ from {key}:\n  logged: {before}\n  here:   {now}")
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak.py", description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--until", type=int, default=20_000, help="end seed (exclusive)")
    parser.add_argument("--chunk", type=int, default=200, help="seeds per chunk")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout whose core and sim run (default: this one)")
    parser.add_argument("--log", type=Path, default=ROOT / ".soak" / "soak.log")
    parser.add_argument("--tally", action="store_true", help="print the log's totals only")
    parser.add_argument("--same-as", metavar="KEY",
                        help="replay the chunk from --start logged under KEY, compare")
    args = parser.parse_args()
    key = trees(args.tree)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    if args.tally:
        return tally(args.log, key)
    if args.same_as:
        return same_as(args.log, args.same_as, args.tree, args.start, args.workers)
    stop = args.log.parent / "stop"
    stop.unlink(missing_ok=True)
    done = read_log(args.log, key)
    for start in range(args.start, args.until, args.chunk):
        if stop.exists():
            break
        if start in done and done[start][0] == 0:
            continue
        seeds = min(args.chunk, args.until - start)
        began = time.monotonic()
        run = run_chunk(args.tree, start, seeds, args.workers)
        with args.log.open("a") as log:
            log.write(f"=== chunk {start}+{seeds} trees {key} rc {run.returncode} secs "
                      f"{time.monotonic() - began:.0f}\n{run.stdout}{run.stderr}")
        if run.returncode:
            print(f"chunk from seed {start} failed: see {args.log}", file=sys.stderr)
    return tally(args.log, key)


if __name__ == "__main__":
    sys.exit(main())
