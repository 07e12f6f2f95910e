#!/usr/bin/env bash
# Regenerate the operator model's shipped evidence from the measured shape-check files (CPU, ~1 min):
# per-point errors on unseen whole models, then the error bands that every operator-composed
# prediction carries (perfmodel/data/error_bands.json). Run from the checkout: bash scripts/operator_evidence.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
PY=${PYTHON:-python}
D=perfmodel/data
rm -f $D/shape_check_errors_h200.csv $D/shape_check_errors_h200_xhost.csv \
      $D/shape_check_errors_compiled_h200.csv $D/shape_check_errors_bf16_h200.csv
# graph + eager: runs A and B, the four interleaved rounds of run C and the three of run D (each an
# ordinary single timing);
# eager predicted from the shipped launch costs, as on a host that was never profiled
for f in shape_check_h200 shape_check_eager_h200 shape_check_eager_rounds_h200_r{0,1,2,3} \
         shape_check_eager_rounds2_h200_r{0,1,2}; do
  $PY scripts/shape_check.py --report $D/$f.csv --shipped-launch-costs --errors-out $D/shape_check_errors_h200_xhost.csv
done
# the same, eager from each run's own re-timed launch costs (not band evidence)
for f in shape_check_h200 shape_check_eager_h200; do
  $PY scripts/shape_check.py --report $D/$f.csv --errors-out $D/shape_check_errors_h200.csv
done
for f in shape_check_eager_rounds_h200 shape_check_eager_rounds2_h200; do  # least-contended rounds of C and D
  $PY scripts/shape_check.py --report $D/$f.csv
  $PY scripts/shape_check.py --report $D/$f.csv --shipped-launch-costs
done
$PY scripts/shape_check.py --report $D/shape_check_compiled_h200.csv --errors-out $D/shape_check_errors_compiled_h200.csv \
  --errors-modes compiled
$PY scripts/shape_check.py --report $D/shape_check_bf16_h200.csv --errors-out $D/shape_check_errors_bf16_h200.csv
$PY scripts/error_bands.py --operator-check $D/shape_check_errors_h200_xhost.csv \
  --operator-check $D/shape_check_errors_compiled_h200.csv --operator-check $D/shape_check_errors_bf16_h200.csv
