"""Hypothesis fuzzing of every trace and profile reader (issue 16): mutated real files and random
text/bytes must either parse or raise the one bad-input error type (perfmodel.specs.errors.InputError,
which TraceError and SpecError are) — never anything else. The default run uses a few hundred
examples per reader; the slow-marked test runs 2 × 10⁴ across the eight readers."""
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specperf.calibration.latency_fit import read_runs
from specperf.calibration.traces import read_trace
from specperf.perfmodel.specs.errors import InputError
from specperf.perfmodel.latency.integrity import check_profile
from specperf.perfmodel.latency.measured import MeasuredLatency
from specperf.perfmodel.latency.table import LatencyTable
from specperf.perfmodel.latency.corrected import LatencyCorrection
from specperf.perfmodel.latency.tp import load_curves
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.alpha_model import read_alpha_document
from specperf.profiler.validate import load_rows
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS

ROOT = Path(__file__).resolve().parents[1]
CAL = ROOT / "tests" / "data" / "calibration"
SEEDS = {
    "trace": [CAL / n for n in ("iterations.csv", "vllm_metrics.txt", "gptfast_stdout.txt", "mean_length.json",
                                "vllm_two_scrapes.txt")],
    "runs": [CAL / "h100" / "v_graph.csv"],
    "profile": [CAL / "h100" / "p_graph.csv"],
    "acceptance": [CAL / "mean_length.json"],
    "alpha_doc": [ROOT / "docs" / "worked_example_alpha.json"],
    "correction": [ROOT / "studies" / "miniature" / "data" / "derived" / "hf_latency_correction.json"],
    "curve": [ROOT / "perfmodel" / "data" / "allreduce_h100-sxm_tp2.csv"],
    "validation": [ROOT / "evidence" / "validation_h100_smoke.csv"],
}
L7 = resolve_model("llama-7b")


def _read_profile(p):
    check_profile(p, "h100-sxm")
    LatencyTable.load(p)
    MeasuredLatency(p, GPUS["h100-sxm"]).forward(L7, 1, 2, 512, 1, "graph")


READERS = {
    "trace": lambda p: read_trace(p, "auto"),
    "runs": lambda p: read_runs(p),
    "profile": _read_profile,
    "acceptance": AcceptanceModel.load,
    "alpha_doc": lambda p: read_alpha_document(p),
    "correction": lambda p: LatencyCorrection.load(p),
    "curve": lambda p: load_curves(p),
    "validation": lambda p: load_rows(p),
}
NUMBERS = st.sampled_from(["0", "-1", "1e30", "1e-300", "nan", "inf", "-inf", "", "x", "1.5", "99999999999999999999",
                           "\x00", "\ufeff", ",", '"', "[]", "{}", "null", "true"])


@st.composite
def mutated(draw, kind: str):
    """A seed file with lines dropped, duplicated, truncated or cells replaced; or random text/bytes."""
    how = draw(st.sampled_from(["mutate", "mutate", "mutate", "text", "bytes"]))
    if how == "bytes":
        return draw(st.binary(max_size=400))
    if how == "text":
        return draw(st.text(max_size=400)).encode("utf-8", "surrogatepass")
    lines = draw(st.sampled_from(SEEDS[kind])).read_text().splitlines()[:40]
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "cut", "cell", "cell", "cell", "bom"]))
        if op == "drop":
            lines.pop(i)
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][:draw(st.integers(0, max(len(lines[i]) - 1, 0)))]
        elif op == "bom":
            lines[0] = "\ufeff" + lines[0]
        else:
            sep = "," if "," in lines[i] else " "
            cells = lines[i].split(sep)
            cells[draw(st.integers(0, len(cells) - 1))] = draw(NUMBERS)
            lines[i] = sep.join(cells)
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def _check(kind: str, data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"f{suffix}"
        p.write_bytes(data)
        try:
            READERS[kind](p)
        except InputError:
            pass  # the one allowed failure: a one-line bad-input error


SUFFIX = {"trace": ".txt", "runs": ".csv", "profile": ".csv", "acceptance": ".json", "alpha_doc": ".json",
          "correction": ".json", "curve": ".csv", "validation": ".csv"}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kind", list(READERS))
def test_readers_never_crash(kind):
    given(mutated(kind))(FAST(lambda data: _check(kind, data, SUFFIX[kind])))()


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(READERS))
def test_readers_never_crash_10k(kind, request):
    """2,500 examples × 8 readers = 2 × 10⁴ fuzzed files, 0 crashes. Runs when asked for:
    `pytest -m slow tests/test_fuzz_readers.py` (or SPECPERF_FUZZ_10K=1); the default run uses FAST."""
    if "slow" not in (request.config.option.markexpr or "") and not os.environ.get("SPECPERF_FUZZ_10K"):
        pytest.skip("10⁴-example fuzzing runs with -m slow or SPECPERF_FUZZ_10K=1")
    given(mutated(kind))(SLOW(lambda data: _check(kind, data, SUFFIX[kind])))()


# ---- issue 25: config.json, NAME:field=value overrides and the closed form -------------------------
import math as _math  # noqa: E402

from specperf.perfmodel.specs.models import apply_overrides, from_hf_config  # noqa: E402
from specperf.perfmodel.specdec.acceptance import check_alpha  # noqa: E402
from specperf.perfmodel.specdec.maths import GAMMA_MAX, speedup_cost_ratio, tokens_per_iteration  # noqa: E402

SEEDS["config"] = [p for p in sorted((ROOT / "tests" / "fixtures" / "configs").glob("*/config.json"))]
READERS["config"] = lambda p: from_hf_config(p)
SUFFIX["config"] = ".json"
FIELDS = st.sampled_from(["n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab", "dtype_bytes", "max_positions",
                          "embed_dim", "attn_head_dim", "gated_mlp", "qk_norm", "family", "norm", "x", ""])


def _override(text: str) -> None:
    try:
        s = apply_overrides(L7, text)
    except InputError:
        return
    assert s.params > 0 and s.weight_bytes > 0 and s.kv_bytes_per_token > 0  # a spec that exists is physical


def _closed_form(alpha: float, gamma: int, c: float) -> None:
    try:
        a = check_alpha(alpha)
    except InputError:
        return
    t = float(tokens_per_iteration(a, gamma))
    assert 1.0 <= t <= gamma + 1 + 1e-9
    if 0 <= c <= 1e6:
        s = float(speedup_cost_ratio(a, gamma, c))
        assert _math.isfinite(s) and s > 0


OVERRIDE_TEXT = st.one_of(st.text(max_size=60),
                          st.lists(st.tuples(FIELDS, st.one_of(st.integers(-2 ** 40, 2 ** 40).map(str), st.text(max_size=8))),
                                   max_size=4).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv)))
ALPHAS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1))
GAMMAS = st.integers(1, GAMMA_MAX)
COSTS = st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e6), st.floats())


@pytest.mark.parametrize("kind", ["config"])
def test_config_reader_never_crashes(kind):
    given(mutated(kind))(FAST(lambda data: _check(kind, data, SUFFIX[kind])))()


def test_overrides_and_closed_form_never_crash():
    given(OVERRIDE_TEXT)(FAST(_override))()
    given(ALPHAS, GAMMAS, COSTS)(FAST(_closed_form))()


@pytest.mark.slow
def test_overrides_config_and_closed_form_10k(request):
    """10⁴ examples each of the config.json reader, the override parser and the closed form."""
    if "slow" not in (request.config.option.markexpr or "") and not os.environ.get("SPECPERF_FUZZ_10K"):
        pytest.skip("10⁴-example fuzzing runs with -m slow or SPECPERF_FUZZ_10K=1")
    big = settings(max_examples=10000, deadline=None, suppress_health_check=list(HealthCheck))
    given(mutated("config"))(big(lambda data: _check("config", data, ".json")))()
    given(OVERRIDE_TEXT)(big(_override))()
    given(ALPHAS, GAMMAS, COSTS)(big(_closed_form))()
