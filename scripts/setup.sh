#!/usr/bin/env bash
# Create .venv from the committed lock file (uv.lock). Needs only Python 3.11 and the package registries.
# Sourced by run.sh and test.sh; safe to run again (a no-op when the environment is up to date).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 required, found {sys.version}"'

UV_VERSION=0.13.8
if [ ! -x .venv/bin/uv ] || ! .venv/bin/uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# --inexact keeps uv itself, which lives in the same environment.
UV_PYTHON_DOWNLOADS=never .venv/bin/uv sync --frozen --inexact --quiet --python .venv/bin/python
