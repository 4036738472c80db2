#!/usr/bin/env bash
# Set up the environment, then lint and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# The dashboard test drives Debian's Chromium (no browser download); install it when missing and possible.
if { ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi nanum; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-nanum) >/dev/null 2>&1 \
    || echo "warning: could not install chromium; the dashboard test will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
