"""Issue 25: ≥ 10⁴ seeded fuzz examples of the document readers, in the default run.

The readers of issue 16's hypothesis fuzz (tests/test_fuzz_readers.py: a few hundred examples by
default) that are cheap enough to run 10⁴ times here — acceptance files, α-model documents (JSON
and CSV), latency corrections, config.json, NAME:field=value overrides, all-reduce curves and
validation tables, profiles (with their integrity check) and latency-calibration runs — through
tests/fuzzkit.py, with their answers checked: probabilities in [0, 1)
with ordered intervals, correction factors finite and > 0, curve sizes and times finite and > 0,
models physical, profile rows and calibration runs with positive times and sizes.
"""
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from specperf.calibration.latency_fit import read_runs
from specperf.perfmodel.latency.corrected import LatencyCorrection
from specperf.perfmodel.latency.integrity import check_profile
from specperf.perfmodel.latency.table import LatencyTable
from specperf.perfmodel.latency.tp import load_curves
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.alpha_model import read_alpha_document
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.models import apply_overrides, from_hf_config
from specperf.profiler.validate import load_rows

from fuzzkit import run, text

ROOT = Path(__file__).resolve().parents[1]
CAL = ROOT / "tests" / "data" / "calibration"
FUZZ_N = int(os.environ.get("SPECPERF_FUZZ_N", "10000"))
L7 = resolve_model("llama-7b")


def _head(p: Path, lines: int = 30) -> bytes:
    return ("\n".join(p.read_text().splitlines()[:lines]) + "\n").encode()


def _prob_ok(a, ci=None) -> bool:
    if not (isinstance(a, float) and 0.0 <= a < 1.0):
        return False
    return ci is None or (len(ci) == 2 and all(type(x) is float for x in ci) and 0.0 <= ci[0] <= ci[1] <= 1.0)


def check_acceptance_model(m) -> str | None:
    ok = _prob_ok(m.alpha, m.alpha_ci) and all(0.0 <= a <= 1.0 for a in m.alpha_by_position or ())
    ok = ok and all(0.0 <= lo <= hi <= 1.0 for lo, hi in m.alpha_by_position_ci or ())
    return None if ok else f"alpha={m.alpha} ci={m.alpha_ci} by position={m.alpha_by_position}"


def check_alpha_doc(doc) -> str | None:
    for r in doc.get("pairs") or []:
        a, ci = r.get("alpha"), r.get("alpha_ci")
        if not (isinstance(a, (int, float)) and not isinstance(a, bool) and _prob_ok(float(a), ci)):
            return f"pair {r}"
    return None


def check_correction(c) -> str | None:
    for e in c.entries:
        if not all(math.isfinite(x) and x > 0 for x in (e.k_draft, e.k_verify)) or not math.isfinite(e.extra_overhead_s):
            return f"entry k_draft={e.k_draft} k_verify={e.k_verify} extra={e.extra_overhead_s}"
    return None


def check_spec(s) -> str | None:
    ok = s.params > 0 and s.weight_bytes > 0 and s.kv_bytes_per_token > 0 and s.n_layers >= 1 and s.d_model >= 1
    return None if ok else f"{s.name}: params={s.params} weights={s.weight_bytes} kv={s.kv_bytes_per_token}"


def check_curves(curves) -> str | None:
    for c in curves:
        if not 1 <= c.tp <= 1024:
            return f"tp={c.tp}"
        for name in ("size_bytes", "median_s"):
            v = getattr(c, name)
            if not (all(math.isfinite(x) and x > 0 for x in v)):
                return f"{name}={list(v)[:4]}"
    return None


def check_validation(rows) -> str | None:
    for r in rows:
        if not all(isinstance(r[k], int) and r[k] >= 1 for k in ("context", "batch", "gamma")):
            return f"context/batch/gamma {[r[k] for k in ('context', 'batch', 'gamma')]}"
        if not (0.0 <= r["alpha"] <= 1.0):
            return f"alpha={r['alpha']}"
    return None


def check_profile_rows(t) -> str | None:
    for r in t.ok_rows():
        if not (math.isfinite(r["median_s"]) and 0 < r["median_s"] <= 3600) or min(r["batch"], r["tp"], r["new_tokens"]) < 1 or r["context"] < 0:
            return f"row median_s={r['median_s']} batch={r['batch']} context={r['context']} tp={r['tp']}"
    return None


def check_runs(runs) -> str | None:
    for r in runs:
        if not (math.isfinite(r.iteration_s) and r.iteration_s > 0) or min(r.gamma, r.batch, r.context, r.tp) < 1:
            return f"run iteration_s={r.iteration_s} γ={r.gamma} batch={r.batch} context={r.context} tp={r.tp}"
    return None


def _profile(p: Path):
    check_profile(p, "h100-sxm")
    return LatencyTable.load(p)


def _writer(d: Path, name: str, read):
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)

    def parse(data: bytes):
        p.write_bytes(data)
        return read(p)
    return parse


ACCEPTANCE = [json.dumps({"alpha": 0.7, "alpha_ci": [0.6, 0.8], "n_iterations": 400, "source": "fuzz"}).encode(),
              json.dumps({"alpha": 0.62, "alpha_by_position": [0.8, 0.6, 0.5], "alpha_ci": [0.55, 0.7],
                          "alpha_by_position_ci": [[0.7, 0.9], [0.5, 0.7], [0.4, 0.6]]}, indent=1).encode()]
CORRECTION = [(ROOT / "studies" / "miniature" / "data" / "derived" / "hf_latency_correction.json").read_bytes()]
CONFIGS = [p.read_bytes() for p in sorted((ROOT / "tests" / "fixtures" / "configs").glob("*/config.json"))]
OVERRIDES = [b"n_layers=4", b"n_layers=2,d_model=2048,n_heads=16,d_ff=5504", b"n_kv_heads=8,vocab=32000",
             b"embed_dim=512,tied_embeddings=1", b"attn_head_dim=128,qk_norm=1", b"gated_mlp=0,norm=layernorm"]


def _cases(d: Path) -> dict:
    return {
        "acceptance file": (_writer(d, "acc.json", AcceptanceModel.load), ACCEPTANCE, check_acceptance_model),
        "alpha-model json": (_writer(d, "alpha.json", read_alpha_document),
                             [(ROOT / "docs" / "worked_example_alpha.json").read_bytes()], check_alpha_doc),
        "alpha-model csv": (_writer(d, "alpha.csv", read_alpha_document),
                            [b"draft,alpha,alpha_lo,alpha_hi\nsheared-llama-1.3b,0.7,0.6,0.8\ntinyllama-1.1b,0.65,,\n"],
                            check_alpha_doc),
        "latency correction": (_writer(d, "cal.json", LatencyCorrection.load), CORRECTION, check_correction),
        "config.json": (_writer(d, "cfg/config.json", from_hf_config), CONFIGS, check_spec),
        "overrides": (lambda data: apply_overrides(L7, text(data)), OVERRIDES, check_spec),
        "all-reduce curve": (_writer(d, "ar.csv", load_curves), [_head(ROOT / "perfmodel" / "data" / "allreduce_h100-sxm_tp2.csv", 8)],
                             check_curves),
        "validation table": (_writer(d, "val.csv", load_rows), [_head(ROOT / "evidence" / "validation_h100_smoke.csv", 3)],
                             check_validation),
        "profile": (_writer(d, "prof.csv", _profile), [_head(CAL / "h100" / "p_graph.csv", 8)], check_profile_rows),
        "latency runs": (_writer(d, "runs.csv", read_runs), [_head(CAL / "h100" / "v_graph.csv", 8)], check_runs),
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    shm = Path("/dev/shm")  # memory-backed where there is one
    d = Path(tempfile.mkdtemp(prefix="specperf-fuzz-", dir=shm)) if os.access(shm, os.W_OK) else tmp_path_factory.mktemp("f")
    yield _cases(d)
    shutil.rmtree(d, ignore_errors=True)


def _names() -> list:
    with tempfile.TemporaryDirectory() as d:
        return list(_cases(Path(d)))


@pytest.mark.parametrize("name", _names())
def test_document_reader_survives_10k_fuzz_examples(cases, name):
    parse, seeds, check = cases[name]
    rep = run(name, parse, seeds, FUZZ_N, seed=sum(map(ord, name)), check=check)
    print(rep.summary())
    assert not rep.failures, rep.summary()
    assert rep.accepted > 0, f"{name}: the fuzz never reached the success path"
