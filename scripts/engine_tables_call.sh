#!/usr/bin/env bash
# One GPU call that brings a card's shipped plain-kernel operator table to the engine kernels in the
# per-forward-step layout and measures what its glue and accuracy need (written for the H200, whose
# table predates the engine kernels; ~9.5 min on one H200). Run from the repository root on the GPU
# machine:   OUT=/some/dir GPU=h200 bash scripts/engine_tables_call.sh
# Produces under $OUT/r: the migrated + re-swept operator table (attention, attention_gqa,
# attention_verify, rope, kv_write re-timed; every other operator kept), engine layer rows (graph,
# eager), independent reference timings (graph), the attention bench and `pytest -m gpu`; tarred.
# Afterwards (CPU): copy the table over perfmodel/data/operators_${GPU}_fp16.csv(+.meta.json), point the
# manifest's glue entries at the new layer rows (under evidence/), add the reference to
# reference_checks, run `python -m specperf.perfmodel.data_build` and scripts/reference_report.py --gpu $GPU.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
GPU=${GPU:-h200}
R=$OUT/r; mkdir -p "$R"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$R/card.txt"
python3 - "$GPU" "$R" <<'PY'
import sys
from specperf.perfmodel.latency.operator_table import OperatorTable
gpu, out = sys.argv[1], sys.argv[2]
t = OperatorTable.load(f"perfmodel/data/operators_{gpu}_fp16.csv")
keep = ("attention", "attention_gqa", "attention_verify", "rope", "kv_write")
t.rows = [r for r in t.rows if r["op"] not in keep]  # the kernel- and layout-dependent operators
for k in ("glue", "glue_fit", "glue_fit_compiled", "attention_choices"):
    t.meta.pop(k, None)
t.meta.update(kernels="engine", layer_layout="per-forward-step",
              migrated_from=f"perfmodel/data/operators_{gpu}_fp16.csv: {', '.join(keep)} dropped to be re-timed")
t.save(f"{out}/operators_{gpu}_fp16.csv")
print(f"kept {len(t.rows)} rows")
PY
timeout 90 python -m pytest -q -m gpu -p no:cacheprovider -W ignore tests > "$R/pytest_gpu.txt" 2>&1; echo "pytest rc $?" >> "$R/pytest_gpu.txt"; tail -2 "$R/pytest_gpu.txt"
timeout 70 python -W ignore scripts/attention_bench.py --out "$R/attention_bench.json" > "$R/attention_bench.txt" 2>&1; tail -1 "$R/attention_bench.txt"
timeout 250 python -W ignore -m specperf profile --operators --ops attention,attention_gqa,attention_verify,rope,kv_write \
  --out "$R/operators_${GPU}_fp16.csv" --mode graph,eager --deadline-s 235 --device cuda > "$R/ops.txt" 2>&1; tail -2 "$R/ops.txt"
timeout 85 python -W ignore -m specperf profile --models llama-7b,sheared-llama-1.3b,tinyllama-1.1b,llama-3.1-8b,qwen2.5-0.5b,qwen2.5-7b,mistral-7b,llama-2-70b \
  --batch 1,8,32 --context 512,2048,8192 --new-tokens 1,5 --mode graph,eager --out "$R/layers_engine_${GPU}.csv" --deadline-s 70 --quiet > "$R/layers.txt" 2>&1; tail -1 "$R/layers.txt"
timeout 55 python -W ignore scripts/reference_check.py --impls plain --modes graph --out "$R/reference_${GPU}.csv" --deadline-s 45 > "$R/reference.txt" 2>&1; tail -1 "$R/reference.txt"
cd "$OUT" && tar czf "engine_tables_${GPU}.tgz" r && rm -rf r
