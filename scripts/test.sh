#!/usr/bin/env bash
# The test command: bootstrap, lint, then every test (Azurite is started by the tests).
# Usage: scripts/test.sh [pytest args...]   e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
