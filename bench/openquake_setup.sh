#!/usr/bin/env bash
# Create bench/.oq-venv with OpenQuake's engine for bench/openquake_peer.py (not a project dependency).
# `pip install openquake-engine` fails: it pins GDAL 3.13 (Python bindings that build against the system's
# libgdal, 3.6 on Debian 12). The scenario calculators never call GDAL's bindings, so the engine is installed
# without dependencies and the others one by one; fiona and geopandas come as binary wheels that carry
# their own libgdal (the engine imports them at start-up).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
OQ_VERSION=${OQ_VERSION:-3.26.2}
if [ ! -x .oq-venv/bin/python ]; then
  "$PY" -m venv .oq-venv
fi
PIP=(.oq-venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --no-deps "openquake-engine==$OQ_VERSION"
# The engine's own requirement list less gdal, fiona and geopandas (see its METADATA).
for dep in "numpy>=2.2.6" "scipy>=1.7" "pandas>=2.2.3" "h5py>=3.13" "django>=4.2,<5" psutil requests \
           "pyzmq~=26.0.3" "h3>=4.4" "decorator~=5.1.1" "pillow~=12.2.0" "toml~=0.10.2" "numba~=0.61.2" \
           "alpha_shapes~=1.1.0" "docutils~=0.19.0" "django_cors_headers~=4.3.1" "pyproj~=3.7.2" shapely; do
  "${PIP[@]}" "$dep" || echo "warning: $dep did not install" >&2
done
"${PIP[@]}" --only-binary=:all: "fiona~=1.10.1" "geopandas~=1.1.1"
.oq-venv/bin/python -c "import openquake.engine, openquake.hazardlib; print('openquake', openquake.engine.__version__)"
