#!/usr/bin/env bash
# Idempotent developer/CI setup: Python venv with the dev requirements, and Azurite.
# Usage: scripts/bootstrap.sh   (from any directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

AZURITE_VERSION="3.37.0"
PYTHON="${PYTHON:-python3}"

if [[ ! -x .venv/bin/python ]]; then
  echo "bootstrap: creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi

# pip is quick when everything is already installed; a stamp avoids even that.
stamp=".venv/.requirements-stamp"
if [[ ! -f "$stamp" || requirements.txt -nt "$stamp" || requirements-dev.txt -nt "$stamp" ]]; then
  echo "bootstrap: installing requirements-dev.txt"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  touch "$stamp"
fi

if [[ ! -x .azurite/node_modules/.bin/azurite ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: npm not found: install Node.js 18+ to get Azurite (Azurite tests are" \
      "skipped without it, and fail in CI)" >&2
  else
    echo "bootstrap: installing Azurite ${AZURITE_VERSION} into .azurite/"
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix .azurite \
      "azurite@${AZURITE_VERSION}"
  fi
fi
