#!/usr/bin/env bash
# Regenerate the operator model's evidence and the shipped data derived from it (CPU, ~10 s): the
# per-point errors on unseen whole models (evidence/shape_check_errors_*.csv) and every derived
# shipped file, error bands included (perfmodel/data; perfmodel/data/manifest.json names the steps).
# Run from the checkout: bash scripts/operator_evidence.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
PY=${PYTHON:-python}
$PY -m perfmodel.data_build --write-evidence
# the same errors with eager from each run's own re-timed launch costs (docs only, not band evidence)
rm -f evidence/shape_check_errors_h200.csv
for f in shape_check_h200 shape_check_eager_h200; do
  $PY scripts/shape_check.py --report evidence/$f.csv --errors-out evidence/shape_check_errors_h200.csv > /dev/null
done
