#!/usr/bin/env bash
# Idempotent developer/CI setup: what running needs (scripts/setup-runtime.sh: the venv,
# requirements.txt, Azurite), then what the tests need: requirements-dev.txt and Chromium.
# Usage: scripts/bootstrap.sh   (from any directory; scripts/test.sh calls it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-runtime.sh  # the venv, requirements.txt and Azurite

# pip is quick when everything is already installed; a stamp avoids even that.
stamp=".venv/.requirements-stamp"
if [[ ! -f "$stamp" || requirements.txt -nt "$stamp" || requirements-dev.txt -nt "$stamp" ||
      jobs_client/pyproject.toml -nt "$stamp" ]]; then
  echo "bootstrap: installing requirements-dev.txt"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  touch "$stamp"
fi

# Chromium for the browser test (tests/e2e/test_dashboard.py): Debian's package, driven by
# Playwright through executable_path (Playwright's own browser download is never used).
if ! command -v chromium >/dev/null 2>&1; then
  as_root=()
  if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  fi
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 || ${#as_root[@]} -gt 0 ]]; then
    echo "bootstrap: installing chromium (apt-get)"
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    ci="${CI:-}"
    case "${ci,,}" in
      "" | 0 | false | no)
        echo "bootstrap: chromium not found and apt-get cannot install it here (needs root or" \
          "passwordless sudo): the browser test is skipped" >&2 ;;
      *)
        echo "bootstrap: chromium is required in CI for the browser test, and it is missing:" \
          "install Debian's chromium package (apt-get install chromium) or run as root" >&2
        exit 1 ;;
    esac
  fi
fi
