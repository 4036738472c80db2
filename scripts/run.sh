#!/usr/bin/env bash
# Set up the environment and run the main job: embedded data (generated once), every domain's features,
# a quick training where no champion exists, then the service with its dashboard on localhost and the live
# cycle beside it (files dropped in <data>/inbox/<source>/ or rows POSTed to /observations re-score the city).
# URBAN_SAFETY_CITY=daejeon runs another city: its data in data/daejeon/, its own models (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# No usage reporting from BentoML or MLflow (a city's closed network) unless set to something else.
export BENTOML_DO_NOT_TRACK="${BENTOML_DO_NOT_TRACK:-True}"
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
export DO_NOT_TRACK="${DO_NOT_TRACK:-true}"
bash scripts/setup.sh
US=.venv/bin/urban-safety
# The city's data folder, a point in it (its ASOS station's site) and that station, for the examples.
read -r DATA LAT LON STN < <(.venv/bin/python -c '
from urban_safety.settings import get_settings
s = get_settings(); c = s.city_config
w = next(w for w in c.weather_stations if w.kind == "asos" and not w.upwind)
print(s.data, w.lat, w.lon, w.id)')
if [ ! -d "$DATA/raw" ] || [ -n "${REGENERATE:-}" ]; then
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
    -d '{"domain":"flood","locations":[{"lat":$LAT,"lon":$LON}],"conditions":{"rain_1h":60,"rain_fcst_3h":120}}'
  curl -s -XPOST localhost:$PORT/risk -H 'Content-Type: application/json' \\
    -d '{"domain":"traffic","locations":[{"lat":$LAT,"lon":$LON}],"conditions":{"hour":18,"weekday":4,"rain_3h_mm":15}}'
  curl -s -XPOST localhost:$PORT/risk -H 'Content-Type: application/json' \\
    -d '{"domain":"earthquake","locations":[{"lat":$LAT,"lon":$LON}],"conditions":{"magnitude":5.5,"epicentre_lat":$LAT,"epicentre_lon":$LON,"depth_km":10}}'
  curl -s -XPOST localhost:$PORT/risk -H 'Content-Type: application/json' \\
    -d '{"domain":"fine_dust","locations":[{"lat":$LAT,"lon":$LON}]}'
  curl -s -XPOST localhost:$PORT/risk_map -H 'Content-Type: application/json' -d '{"domain":"flood"}' | head -c 400
  curl -s -XPOST localhost:$PORT/observations -H 'Content-Type: application/json' \
    -d '{"source":"asos","rows":[{"station_id":$STN,"time":"2024-01-01 01:00","rain_mm":40.0,"temp_c":2.0}]}'
  curl -s localhost:$PORT/alerts
Stop it with Ctrl-C.

TXT
$US serve --prepare-only >/dev/null
$US live --inbox "$DATA/inbox" &
LIVE=$!
trap 'kill $LIVE 2>/dev/null || true' EXIT
$US serve --port "$PORT"
