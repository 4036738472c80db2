#!/usr/bin/env bash
# Set up the environment, then lint and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# No usage reporting from BentoML or MLflow (a city's closed network) unless set to something else.
export BENTOML_DO_NOT_TRACK="${BENTOML_DO_NOT_TRACK:-True}"
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
export DO_NOT_TRACK="${DO_NOT_TRACK:-true}"
bash scripts/setup.sh
# The dashboard test drives Debian's Chromium (no browser download); install it when missing and possible.
if { ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi nanum; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-nanum) >/dev/null 2>&1 \
    || echo "warning: could not install chromium; the dashboard test will be skipped" >&2
fi
# The PostgreSQL tests (the live store; MLflow server and Optuna study, which create and drop databases of
# their own) run against a real server (127.0.0.1:5432, user postgres, database test, trust
# auth for local TCP); start Debian's where none answers and it can be installed or started.
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (command -v pg_ctlcluster >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql)) >/dev/null 2>&1 || true
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    grep -q '^host all all 127.0.0.1/32 trust' "$hba" || sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    (pg_ctlcluster "$ver" main start || pg_ctlcluster "$ver" main reload) >/dev/null 2>&1 || true
    su postgres -c "createdb test" >/dev/null 2>&1 || true
  else
    echo "warning: no PostgreSQL server; the PostgreSQL store tests will be skipped" >&2
  fi
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
