#!/usr/bin/env bash
# Set up the environment and run the main job: embedded data (generated once), then every domain's features.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
US=.venv/bin/urban-safety
if [ ! -d data/raw ] || [ -n "${REGENERATE:-}" ]; then
  $US data generate
fi
$US features build --domain all
$US train --domain all --profile quick --missing-only
