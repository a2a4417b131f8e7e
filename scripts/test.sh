#!/usr/bin/env bash
# The test command: bootstrap, lint, then every test (Azurite is started by the tests).
# Usage: scripts/test.sh [pytest args...]   e.g. scripts/test.sh -m "not slow" -x
#
# Without arguments, the simulation's CI seeds (CPU-bound, about 10 minutes on 2 cores) run in
# a second pytest beside the rest of the suite (mostly waiting on Azurite and devhost), at a
# lower CPU priority; both must pass. With arguments, one pytest runs exactly what they say.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy  # jobs_core strict; jobs_api, the apps, devhost, bench, the client ([tool.mypy] in pyproject.toml)
if [[ $# -gt 0 ]]; then
  exec .venv/bin/python -m pytest "$@"
fi

SIM=tests/sim/test_sim.py::test_every_invariant_holds_on_the_ci_seeds
sim_log=$(mktemp -t sim-ci.XXXXXX.log)
nice -n 10 .venv/bin/python -m pytest -p no:cacheprovider "$SIM" >"$sim_log" 2>&1 &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true' INT TERM

status=0
.venv/bin/python -m pytest --deselect "$SIM" || status=$?
sim_status=0
wait "$sim_pid" || sim_status=$?
echo "=== the simulation's CI seeds ($SIM) ==="
cat "$sim_log"
rm -f "$sim_log"
if [[ $status -ne 0 ]]; then
  exit "$status"
fi
exit "$sim_status"
