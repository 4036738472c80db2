#!/usr/bin/env bash
# Set up the environment and run the main job: embedded data (generated once), every domain's features,
# a quick training where no champion exists, then the service with its dashboard on localhost and the live
# cycle beside it (files dropped in data/inbox/<source>/ or rows POSTed to /observations re-score the city).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
US=.venv/bin/urban-safety
if [ ! -d data/raw ] || [ -n "${REGENERATE:-}" ]; then
  $US data generate
fi
$US features build --domain all
$US train --domain all --profile quick --missing-only
PORT=${URBAN_SAFETY_PORT:-3000}
cat <<TXT

The service starts on http://127.0.0.1:$PORT — dashboard: http://127.0.0.1:$PORT/dashboard
Try (in another terminal):
  curl -s localhost:$PORT/domains | head -c 600
  curl -s -XPOST localhost:$PORT/risk -H 'Content-Type: application/json' \\
    -d '{"domain":"flood","locations":[{"lat":37.4777,"lon":126.6249}],"conditions":{"rain_1h":60,"rain_fcst_3h":120}}'
  curl -s -XPOST localhost:$PORT/risk -H 'Content-Type: application/json' \\
    -d '{"domain":"traffic","locations":[{"lat":37.507,"lon":126.722}],"conditions":{"hour":18,"weekday":4,"rain_3h_mm":15}}'
  curl -s -XPOST localhost:$PORT/risk -H 'Content-Type: application/json' \\
    -d '{"domain":"earthquake","locations":[{"lat":37.45,"lon":126.70}],"conditions":{"magnitude":5.5,"epicentre_lat":37.45,"epicentre_lon":126.45,"depth_km":10}}'
  curl -s -XPOST localhost:$PORT/risk -H 'Content-Type: application/json' \\
    -d '{"domain":"fine_dust","locations":[{"lat":37.45,"lon":126.73}],"conditions":{"target_date":"2023-04-12"}}'
  curl -s -XPOST localhost:$PORT/risk_map -H 'Content-Type: application/json' -d '{"domain":"flood"}' | head -c 400
  curl -s -XPOST localhost:$PORT/observations -H 'Content-Type: application/json' \
    -d '{"source":"asos","rows":[{"station_id":112,"time":"2024-01-01 01:00","rain_mm":40.0,"temp_c":2.0}]}'
  curl -s localhost:$PORT/alerts
Stop it with Ctrl-C.

TXT
$US serve --prepare-only >/dev/null
$US live --inbox data/inbox &
LIVE=$!
trap 'kill $LIVE 2>/dev/null || true' EXIT
$US serve --port "$PORT"
