#!/usr/bin/env bash
# What running the app needs, and nothing else: a Python venv with requirements.txt, and Azurite.
# scripts/run.sh calls it; scripts/bootstrap.sh adds the test tooling on top. Idempotent.
# Usage: scripts/setup-runtime.sh   (from any directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

AZURITE_VERSION="3.37.0"
PYTHON="${PYTHON:-python3}"

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi

# pip is quick when everything is already installed; a stamp avoids even that.
stamp=".venv/.runtime-stamp"
if [[ ! -f "$stamp" || requirements.txt -nt "$stamp" ]]; then
  echo "setup: installing requirements.txt"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  touch "$stamp"
fi

if [[ ! -x .azurite/node_modules/.bin/azurite ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm not found: install Node.js 18+ to get Azurite (scripts/run.sh needs it" \
      "unless a storage emulator already listens; Azurite tests are skipped without it, and" \
      "fail in CI)" >&2
  else
    echo "setup: installing Azurite ${AZURITE_VERSION} into .azurite/"
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix .azurite \
      "azurite@${AZURITE_VERSION}"
  fi
fi
