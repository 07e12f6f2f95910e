"""Predictions for the miniature study's measured runs, made with specperf's own commands, and the
study's results table.

For each draft: its greedy trace (prompt set A) → `specperf calibrate acceptance` (α by position);
for each measured loop run (prompt set B): `specperf predict` from the profile taken in the same GPU
run, that acceptance, the run's γ, batch 1 and the context its attention spanned → predicted
tokens/s. For Hugging Face: `specperf calibrate latency --fit draft,overhead` on ≤ 4 runs, then
`specperf predict --calibration` for every run (the others are held out). Writes results.csv,
summary.json and tables.md; every number in them comes from the files in --data.

    PYTHONPATH=. python -m studies.miniature.analyze --data studies/miniature/data

Key assumption: the loop's attention spans its whole static cache (see throughput.py), so the
context passed to predict is cache_span − γ − 1; HF's dynamic cache spans the tokens so far, so its
context is the run's mean. Acceptance for every prediction comes from set A, never from the run
being predicted.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import acceptance as acc
from . import stats
from .family import Shape, write_configs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HF_FIT_RUNS = 4  # the "≤ 4 runs"
# Acceptance for predictions: greedy trace iterations within the first 64 generated tokens — the HF
# runs' output length, and about what each loop run decodes (26 iterations × 1.3–2.4 tokens).
HORIZON_TOKENS = 64
PRIMARY = "greedy_h"
RESULT_COLUMNS = ("draft", "role", "mode", "gamma", "layers", "d_model", "params", "non_embedding_params",
                  "perplexity", "alpha", "alpha_by_position", "sampling_alpha", "sampling_alpha_by_position",
                  "context", "measured_tok_s", "predicted_tok_s", "error_pct", "measured_tokens_per_iteration",
                  "predicted_tokens_per_iteration", "measured_iteration_s", "predicted_iteration_s",
                  "iteration_error_pct", "measured_speedup", "predicted_speedup", "iterations", "prompts",
                  "predicted_tok_s_full_trace", "error_pct_full_trace", "predicted_tok_s_latency_only",
                  "error_pct_latency_only", "predicted_iteration_s_without_catchup",
                  "iteration_error_pct_without_catchup",
                  "in_fit", "gpu")


def cli(*args: str) -> dict:
    """Run `specperf ARGS --json` in a subprocess (the command a user types) and parse its output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "specperf", *args, "--json"], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"specperf {' '.join(args)} failed: {res.stdout[-300:]} {res.stderr[-300:]}")
    return json.loads(res.stdout)


def load(data: Path) -> tuple[dict, list]:
    recs = {}
    for ln in (data / "records.jsonl").read_text().splitlines():
        r = json.loads(ln)
        recs[r["key"]] = r
    traces = [json.loads(ln) for ln in (data / "traces.jsonl").read_text().splitlines()]
    return recs, traces


class Family:
    """The trained models as the run recorded them (shape, role, perplexity) and their config.json."""

    def __init__(self, recs: dict, data: Path):
        tr = [r for r in recs.values() if r["kind"] == "train" and r["status"] == "ok"]
        self.shapes = {r["model"]: Shape(r["model"], r["n_layers"], r["d_model"], r["role"]) for r in tr}
        self.ppl = {r["model"]: r["perplexity"] for r in tr}
        self.target = next(s for s in self.shapes.values() if s.role == "target")
        self.drafts = sorted((s for s in self.shapes.values() if s.role != "target"), key=lambda s: s.n_layers)
        vocab = recs["corpus"]["vocab"]
        self.configs = write_configs(self.shapes.values(), data / "configs", vocab=vocab)

    def cfg(self, name: str) -> str:
        return _rel(self.configs[name])


def calibrate(traces: list, derived: Path, horizon: int = HORIZON_TOKENS) -> dict:
    """draft → {kind: (AcceptanceModel JSON path, fit document)} for the greedy trace (whole, and
    its iterations within the first `horizon` generated tokens: kind 'greedy_h') and the sampling one."""
    out: dict = {}
    jobs = []
    for t in traces:
        a = np.array(t["accepted"])
        jobs.append((t, t["kind"], None))
        if t["kind"] == "greedy":
            jobs.append((t, "greedy_h", acc.within_horizon(a, horizon)))
    for t, kind, mask in jobs:
        csv_path = acc.write_trace(derived / f"{t['draft']}_{kind}.csv", np.array(t["accepted"]), t["gamma"],
                                   t["context"], mask=mask)
        js = derived / f"{t['draft']}_{kind}_acceptance.json"
        try:
            doc = cli("calibrate", "acceptance", _rel(csv_path), "--model", "per-position", "--gamma-max",
                      str(t["gamma"]), "--out", _rel(js))
        except RuntimeError as e:  # e.g. every draft accepted: no finite α; the draft gets no prediction
            print(f"no acceptance model for {t['draft']} ({t['kind']}): {e}", file=sys.stderr)
            continue
        out.setdefault(t["draft"], {})[kind] = (js, doc)
    return out


def _rel(p: Path) -> str:
    """Path relative to the repository (the form recorded in committed files), else absolute."""
    q = Path(p).resolve()
    return str(q.relative_to(ROOT)) if q.is_relative_to(ROOT) else str(q)


def predict(fam: Family, draft: str, acc_json: Path, gamma: int, context: int, mode: str, gpu: str, dtype: str,
            profile: Path, calibration: Path | None = None, catchup: bool = False) -> dict:
    args = ["predict", "--target", fam.cfg(fam.target.name), "--draft", fam.cfg(draft), "--gpu", gpu, "--profile", _rel(profile),
            "--acceptance", _rel(acc_json), "--gamma", str(max(gamma, 1)), "--batch", "1", "--context", str(context),
            "--mode", mode, "--dtype", dtype]
    if calibration is not None:
        args += ["--calibration", _rel(calibration)]
    if catchup:  # specperf's greedy loop: the draft's first step re-feeds the previous token
        args += ["--draft-catchup"]
    doc = cli(*args)
    r = doc["rows"][0]
    return {"predicted_tok_s": r["throughput_tok_s"] if gamma > 0 else r["baseline_tok_s"],
            "predicted_iteration_s": r["iteration_s"] if gamma > 0 else 1.0 / r["baseline_tok_s"],
            "predicted_tokens_per_iteration": r["tokens_per_iteration"] if gamma > 0 else 1.0,
            "predicted_speedup": r["speedup"] if gamma > 0 else 1.0,
            "predicted_t_draft_s": r["t_draft_s"], "predicted_t_verify_s": r["t_verify_s"]}


def _pct(p, m):
    return 100.0 * (p / m - 1.0) if (p is not None and m and math.isfinite(p) and math.isfinite(m)) else math.nan


def rows_for(fam: Family, recs: dict, accs: dict, profile: Path, gpu: str, dtype: str, derived: Path) -> list[dict]:
    shapes, ppl = fam.shapes, fam.ppl
    any_draft = next(d for d in accs if PRIMARY in accs[d])
    rows = []
    for r in recs.values():
        if r["kind"] not in ("loop", "hf") or r["status"] != "ok":
            continue
        d = r["draft"]
        s = shapes[d] if d != "none" else fam.target
        mode = "eager" if r["kind"] == "hf" else r["mode"]
        ctx = int(round(r["mean_context"])) if r["kind"] == "hf" else r["cache_span"] - r["gamma"] - 1
        row = dict(draft=d, role=s.role, mode=r["mode"], gamma=r["gamma"], layers=s.n_layers, d_model=s.d_model,
                   params=s.params, non_embedding_params=s.non_embedding_params, perplexity=ppl.get(s.name, math.nan),
                   context=ctx, measured_tok_s=r["measured_tok_s"], measured_tokens_per_iteration=r["tokens_per_iteration"],
                   measured_iteration_s=r["measured_iteration_s"], iterations=r["iterations"], prompts=r["prompts"],
                   gpu=gpu, in_fit="", _exec_mode=mode, _draft_for_predict=d if d != "none" else any_draft)
        if PRIMARY in accs.get(d, {}):
            g, s_ = accs[d][PRIMARY][1], accs[d].get("sampling", (None, {}))[1]
            row.update(alpha=g["alpha"], alpha_by_position=";".join(f"{a:.3f}" for a in g["alpha_by_position"]),
                       sampling_alpha=s_.get("alpha", math.nan),
                       sampling_alpha_by_position=";".join(f"{a:.3f}" for a in s_.get("alpha_by_position") or []))
        rows.append(row)
    rows = [r for r in rows if PRIMARY in accs.get(r["_draft_for_predict"], {}) or
            print(f"no prediction for {r['draft']} {r['mode']} γ={r['gamma']}: no acceptance model", file=sys.stderr)]
    for row in rows:
        if row["mode"] != "hf":
            row.update(predict(fam, row["_draft_for_predict"], accs[row["_draft_for_predict"]][PRIMARY][0],
                               row["gamma"], row["context"], row["_exec_mode"], gpu, dtype, profile,
                               catchup=row["draft"] != "none"))
    hf = [r for r in rows if r["mode"] == "hf"]
    if hf:
        corr = calibrate_hf(fam, hf, profile, gpu, dtype, derived)
        for row in (r for r in hf if r["draft"] != "none"):  # the target alone has no draft to calibrate
            row.update(predict(fam, row["_draft_for_predict"], accs[row["_draft_for_predict"]][PRIMARY][0],
                               row["gamma"], row["context"], "eager", gpu, dtype, profile, calibration=corr))
    base = {m: next((r["measured_tok_s"] for r in rows if r["mode"] == m and r["draft"] == "none"), math.nan)
            for m in ("graph", "eager", "hf")}
    extra = catchup_extra_s(profile, fam)
    for row in rows:
        it = row.get("predicted_iteration_s")
        if it and row["draft"] != "none" and row["mode"] != "hf":  # what leaving out the 2-token first step costs
            row["predicted_iteration_s_without_catchup"] = it - extra.get((row["draft"], row["mode"]), math.nan)
            row["iteration_error_pct_without_catchup"] = _pct(row["predicted_iteration_s_without_catchup"],
                                                              row["measured_iteration_s"])
        full = accs[row["_draft_for_predict"]]["greedy"][1]["alpha_by_position"]
        if it and row["draft"] != "none":
            row["predicted_tok_s_full_trace"] = acc.expected_tokens(full, row["gamma"]) / it
            row["predicted_tok_s_latency_only"] = row["measured_tokens_per_iteration"] / it
        row["error_pct_full_trace"] = _pct(row.get("predicted_tok_s_full_trace"), row["measured_tok_s"])
        row["error_pct_latency_only"] = _pct(row.get("predicted_tok_s_latency_only"), row["measured_tok_s"])
        row["error_pct"] = _pct(row.get("predicted_tok_s"), row["measured_tok_s"])
        row["iteration_error_pct"] = _pct(row.get("predicted_iteration_s"), row["measured_iteration_s"])
        row["measured_speedup"] = row["measured_tok_s"] / base[row["mode"]]
    order = {n: i for i, n in enumerate(["none"] + [d.name for d in fam.drafts])}
    rows.sort(key=lambda r: (["graph", "eager", "hf"].index(r["mode"]), order[r["draft"]], r["gamma"]))
    return rows


def catchup_extra_s(profile: Path, fam: Family) -> dict:
    """(draft, mode) → n_layers × (layer time at 2 new tokens − at 1), at the profile's first context:
    what the loop's catch-up step (previous + last token) costs beyond the 1-token step the
    prediction would charge without `--draft-catchup`. A diagnostic, read from the same profile."""
    rows = list(csv.DictReader(profile.open()))
    ctx = min(int(r["context"]) for r in rows if r["component"] == "layer")
    t = {(r["shape"], r["mode"], int(r["new_tokens"])): float(r["median_s"]) for r in rows
         if r["component"] == "layer" and int(r["context"]) == ctx and r.get("status", "ok") in ("", "ok")}
    out = {}
    for d in fam.drafts:
        key = f"llama:d{d.d_model}:h{d.n_heads}:kv{d.n_heads}:ff{d.d_ff}:glu"
        for mode in ("graph", "eager"):
            if (key, mode, 1) in t and (key, mode, 2) in t:
                out[(d.name, mode)] = d.n_layers * (t[(key, mode, 2)] - t[(key, mode, 1)])
    return out


def hf_fit_set(hf_rows: list[dict]) -> list[dict]:
    """4 runs (what `calibrate latency` needs for two parameters): the shallowest and the deepest
    draft that have runs at two γ, each at its smallest and largest γ."""
    rs = [r for r in hf_rows if r["draft"] != "none"]
    two = sorted({r["layers"] for r in rs if len({q["gamma"] for q in rs if q["layers"] == r["layers"]}) > 1})
    if not two:
        return rs[:HF_FIT_RUNS]
    pick = []
    for L in dict.fromkeys((two[0], two[-1])):
        at = sorted((r for r in rs if r["layers"] == L), key=lambda r: r["gamma"])
        pick += [at[0], at[-1]]
    return pick[:HF_FIT_RUNS]


def calibrate_hf(fam: Family, hf_rows: list[dict], profile: Path, gpu: str, dtype: str, derived: Path) -> Path:
    fit = hf_fit_set(hf_rows)
    path = derived / "hf_fit_runs.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["gpu", "mode", "dtype", "target", "draft", "gamma", "batch", "context", "iteration_s"])
        for r in fit:
            w.writerow([gpu, "eager", dtype, fam.cfg(fam.target.name), fam.cfg(r["draft"]), r["gamma"], 1, r["context"],
                        r["measured_iteration_s"]])
            r["in_fit"] = "yes"
    for r in hf_rows:
        r["in_fit"] = r["in_fit"] or ("baseline" if r["draft"] == "none" else "no")
    out = derived / "hf_latency_correction.json"
    cli("calibrate", "latency", _rel(path), "--profile", _rel(profile), "--fit", "draft,overhead", "--out", _rel(out))
    return out


def write_results(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(RESULT_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k, "")) for k in RESULT_COLUMNS})


def _cell(v):
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--gpu", default=None, help="catalog GPU for predict (default: the profile's; a CPU dry run needs one)")
    ap.add_argument("--out-dir", default=str(HERE), help="where results.csv, summary.json and tables.md go")
    a = ap.parse_args(argv)
    from .summary import summarize, tables

    data = Path(a.data).resolve()
    derived = data / "derived"
    derived.mkdir(exist_ok=True)
    recs, traces = load(data)
    profile = data / "profile.csv"
    meta = json.loads((data / "profile.csv.meta.json").read_text())
    gpu, dtype = a.gpu or meta["gpu"], meta["dtype"]
    fam = Family(recs, data)
    accs = calibrate(traces, derived)
    rows = rows_for(fam, recs, accs, profile, gpu, dtype, derived)
    out = Path(a.out_dir)
    write_results(rows, out / "results.csv")
    summ = summarize(rows, recs, accs, meta, fam)
    (out / "summary.json").write_text(json.dumps(summ, indent=1, default=float) + "\n")
    (out / "tables.md").write_text(tables(rows, summ))
    print(tables(rows, summ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
