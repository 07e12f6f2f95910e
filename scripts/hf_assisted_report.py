"""specperf's tokens/s against a real client, Hugging Face assisted generation (CPU only): for each
run of scripts/hf_assisted_check.py, the prediction from specperf's shipped latency providers for the
run's shapes (eager mode: HF generate runs eager) and the run's measured tokens per iteration,
through specperf's one iteration-time formula, plus an HF per-iteration overhead calibrated on at
most 4 runs; then the error on the other (held-out) runs.

    PYTHONPATH=. python scripts/hf_assisted_report.py evidence/hf_assisted/hf_assisted_h100.csv
    PYTHONPATH=. python scripts/hf_assisted_report.py FILE --gpu h100-sxm --markdown --errors-out errors.csv

Per run (a pair of models at one γ, batch 1):
    forwards_s   = iteration_time_s(γ·t_draft, t_draft(2) − t_draft(1), t_verify(γ+1), 0)
                   (perfmodel.specdec.draft_model.DraftModel with catch-up: HF's first draft step of an
                   iteration re-feeds 2 tokens; specperf's draft context rule)
    overhead_s   = a + b·(γ + 1)         a per iteration, b per forward (γ draft + 1 target)
    predicted tok/s = tokens_per_iteration / (forwards_s + overhead_s)
The overhead is fitted by least squares on the calibration runs to measured_iteration − forwards_s
(measured iteration = tokens_per_iteration / measured decode tok/s). Calibration rule, fixed before
any GPU data was seen (`--calibration`):
- `first` (default, the headline): the first 4 assisted runs in file order with distinct γ (the
  check script writes pair-major, γ ascending: the first pair's γ = 1..4);
- `spread`: one run from each of the first 4 pairs in file order, at γ = 1, 6, 2, 5 respectively.
Held out: every other assisted run. The target alone (γ = 0) is predicted as 1 / (t_target + b)
(its per-step HF cost taken as one forward's b) and reported apart, with the speedups.
Variants, all fixed in advance and all printed: `first` (a, b), `spread` (a, b) and `spread+layer`
(a, b and c per decoder layer executed, γ·L_draft + L_target: HF's Python per layer, which
specperf's eager profile of its own blocks does not carry; identifiable only across shapes, so only
with `spread`).
Two latency sources: `specperf` (the shipped providers — what a user gets) and `measured` (the
run's own per-forward times, CUDA events or `--forward-clock wall`, timed alone at the run's context
— isolates the loop and overhead model from the latency model). The `latency` column is specperf's
forwards per iteration over the measured ones − 1, before any calibration.

Ends with one JSON line. Key assumption: acceptance is an input (the measured tokens per
iteration), so the error is latency + loop + overhead, not acceptance.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.specdec.maths import chain_proposal_s, iteration_time_s  # noqa: E402

SPREAD_GAMMAS = (1, 6, 2, 5)
GPU_RULES = (("h200", "h200"), ("h100 pcie", "h100-pcie"), ("h100", "h100-sxm"), ("a100", "a100-sxm-80gb"),
             ("l40s", "l40s"), ("a10g", "a10g"), ("4090", "rtx-4090"))


def gpu_key(name: str) -> str:
    """Catalog key for a device name ('NVIDIA H100 80GB HBM3' → 'h100-sxm'), as profiler.env does."""
    n = name.lower()
    for needle, key in GPU_RULES:
        if needle in n:
            return key
    raise SystemExit(f"gpu_name={name!r}: no catalog GPU for it; pass --gpu (e.g. h100-sxm, h200)")


def read(path) -> list[dict]:
    with Path(path).open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("decode_tok_s")]
    for r in rows:
        for k in ("gamma", "batch", "context", "prompt_len", "new_tokens", "t_n_layers", "d_n_layers", "repeats"):
            r[k] = int(float(r[k]))
        for k in ("decode_tok_s", "tokens_per_iteration"):
            r[k] = float(r[k])
        for k in ("t_target_s", "t_verify_s", "t_draft_s", "t_draft2_s"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else math.nan
        r["measured_iteration_s"] = r["tokens_per_iteration"] / r["decode_tok_s"]
    return rows


def forwards_measured(r) -> float:
    """The run's forwards per iteration from its own per-forward times (specperf's formula, no overhead)."""
    g = r["gamma"]
    if g == 0:
        return r["t_target_s"]
    return float(iteration_time_s(chain_proposal_s(g, r["t_draft_s"]), r["t_draft2_s"] - r["t_draft_s"],
                                  r["t_verify_s"], 0.0))


def specs_of(r):
    from specperf.perfmodel.specs.hf_config import spec_fields
    from specperf.perfmodel.specs.models import ModelSpec

    by = {"fp16": 2, "bf16": 2, "fp32": 4}[r.get("dtype", "fp16")]
    out = []
    for role in ("target", "draft"):
        cfg = json.loads(r[f"{role}_config"])
        f = spec_fields(cfg, Path(f"{r['pair']}-{role}/config.json"), by)
        f["name"] = f"{r['pair']}-{role}"
        out.append(ModelSpec(**f))
    return out


def forwards_specperf(rows, gpu: str, mode: str = "eager", data_dir=None):
    """Per row: (forwards_s, t_target_s, source kinds) from specperf's shipped providers on `gpu`."""
    from specperf.perfmodel.latency.providers import DATA, build_provider
    from specperf.perfmodel.specdec.draft_model import DraftModel
    from specperf.perfmodel.specs.hardware import resolve_gpu

    lat = build_provider(resolve_gpu(gpu), modes=(mode,), data_dir=Path(data_dir) if data_dir else DATA).target
    out = []
    for r in rows:
        tgt, drf = specs_of(r)
        ctx, g = r["context"], r["gamma"]
        t1 = lat.forward(tgt, 1, 1, ctx, 1, mode)
        kinds = {getattr(p, "coarse", "") for p in t1.sources.values()}
        if g == 0:
            fw = float(np.asarray(t1.total_s))
        else:
            c = DraftModel(draft=drf, catchup=True).costs(lat, tgt, [1], [ctx], [g], tp=1, mode=mode)
            fw = float(np.asarray(iteration_time_s(c.proposal_s, c.catchup_s, c.verify_s, 0.0)).ravel()[0])
            kinds |= {getattr(p, "coarse", "") for k, p in c.sources.items() if k.startswith(("draft_", "target_"))}
        out.append((fw, float(np.asarray(t1.total_s)), "+".join(sorted(kinds - {"", "none"}))))
    return out


def calibration_indices(rows, rule: str = "first") -> list[int]:
    """Indices (into rows) of at most 4 assisted runs, by the fixed rule (see the module docstring)."""
    if rule == "first":
        seen, idx = set(), []
        for i, r in enumerate(rows):
            if r["gamma"] > 0 and r["gamma"] not in seen:
                seen.add(r["gamma"])
                idx.append(i)
            if len(idx) == 4:
                break
        return idx
    if rule == "spread":
        pairs = []
        for r in rows:
            if r["pair"] not in pairs:
                pairs.append(r["pair"])
        idx = []
        for p, g in zip(pairs[:4], SPREAD_GAMMAS):
            hit = [i for i, r in enumerate(rows) if r["pair"] == p and r["gamma"] == g]
            if hit:
                idx.append(hit[0])
        return idx
    raise SystemExit(f"--calibration {rule!r} is not allowed; use first or spread")


MODELS = ("iter+fwd", "iter+fwd+layer")


def features(r, model: str = "iter+fwd") -> list[float]:
    """The overhead's regressors for one run: per iteration (1; 0 for the target alone), per forward
    (γ draft + 1 target), and with `iter+fwd+layer` per decoder layer executed (γ·L_draft + L_target:
    HF's Python per layer, which specperf's eager profile of its own blocks does not have)."""
    g = r["gamma"]
    f = [1.0 if g > 0 else 0.0, float(g + 1) if g > 0 else 1.0]
    if model == "iter+fwd+layer":
        f.append(float(g * r["d_n_layers"] + r["t_n_layers"]) if g > 0 else float(r["t_n_layers"]))
    elif model != "iter+fwd":
        raise SystemExit(f"overhead model {model!r} is not allowed; use one of {', '.join(MODELS)}")
    return f


def fit(X, y) -> np.ndarray:
    """Least squares of y on the columns of X; columns the calibration runs cannot identify (rank)
    are dropped from the right and get 0 (one distinct γ fits the per-iteration constant alone)."""
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    k = X.shape[1] if X.ndim == 2 else 0
    coef = np.zeros(k)
    if y.size == 0:
        return coef
    for m in range(k, 0, -1):
        if np.linalg.matrix_rank(X[:, :m]) == m:
            coef[:m] = np.linalg.lstsq(X[:, :m], y, rcond=None)[0]
            return coef
    return coef


def fit_overhead(gammas, residual_s) -> tuple[float, float]:
    """(a, b) of overhead = a + b·(γ+1), least squares on the calibration runs' residuals (measured
    iteration − forwards). One run, or one distinct γ, fits a alone (b = 0)."""
    g = np.asarray(gammas, dtype=float)
    X = np.stack([np.ones_like(g), g + 1.0], axis=1) if g.size else np.zeros((0, 2))
    a, b = fit(X, residual_s)
    return float(a), float(b)


def predict(rows, forwards, cal_idx, model: str = "iter+fwd") -> dict:
    """Calibrate on cal_idx, predict every row. Returns {a_s, b_s, c_s, rows: [...]} with per-row
    predicted tok/s and error = predicted/measured − 1; the target alone is 1/(t_target + b (+ c·L))."""
    fw = np.asarray(forwards, dtype=float)
    cal = [i for i in cal_idx if np.isfinite(fw[i]) and rows[i]["gamma"] > 0]
    nf = len(features(rows[0], model)) if rows else 2
    X = np.asarray([features(rows[i], model) for i in cal]) if cal else np.zeros((0, nf))
    coef = fit(X, [rows[i]["measured_iteration_s"] - fw[i] for i in cal])
    out = []
    for i, r in enumerate(rows):
        g = r["gamma"]
        it = fw[i] + float(np.dot(features(r, model), coef))
        # a non-positive predicted iteration is a failed prediction: infinite tok/s, counted as such
        pred = (r["tokens_per_iteration"] if g > 0 else 1.0) / it if it > 0 else math.inf
        out.append({"pair": r["pair"], "gamma": g, "role": "calibration" if i in cal else ("baseline" if g == 0 else "held-out"),
                    "measured_tok_s": r["decode_tok_s"], "predicted_tok_s": float(pred),
                    "error": float(pred / r["decode_tok_s"] - 1), "forwards_s": float(fw[i]),
                    "measured_iteration_s": r["measured_iteration_s"],
                    "measured_overhead_s": r["measured_iteration_s"] - float(fw[i])})
    c = list(coef) + [0.0] * (3 - len(coef))
    return {"a_s": c[0], "b_s": c[1], "c_s": c[2], "model": model,
            "calibration": [rows[i]["pair"] + f"/γ{rows[i]['gamma']}" for i in cal], "rows": out}


def summary(pred_rows, role: str = "held-out") -> dict:
    """|error| statistics over the rows of `role`; a failed prediction (non-positive iteration
    time) counts as an infinite error and is counted in `failed`."""
    e = np.asarray([p["error"] for p in pred_rows if p["role"] == role and not math.isnan(p["error"])])
    if e.size == 0:
        return {"n": 0}
    ab = np.abs(e)
    with np.errstate(invalid="ignore"):
        p90 = float(np.percentile(ab, 90))
    p90 = math.inf if math.isnan(p90) else p90
    return {"n": int(e.size), "median_abs": float(np.median(ab)), "p90_abs": p90,
            "max_abs": float(ab.max()), "median_signed": float(np.median(e)), "failed": int(np.sum(~np.isfinite(e)))}


def speedups(rows, pred_rows) -> list[dict]:
    base = {p["pair"]: p for p in pred_rows if p["gamma"] == 0}
    out = []
    for p in pred_rows:
        if p["gamma"] > 0 and p["pair"] in base:
            m = p["measured_tok_s"] / base[p["pair"]]["measured_tok_s"]
            s = p["predicted_tok_s"] / base[p["pair"]]["predicted_tok_s"]
            out.append({"pair": p["pair"], "gamma": p["gamma"], "measured": m, "predicted": s, "error": s / m - 1})
    return out


VARIANTS = (("first", "iter+fwd"), ("spread", "iter+fwd"), ("spread", "iter+fwd+layer"))
REQUIRED = ("gpu_name", "pair", "gamma", "context", "decode_tok_s", "tokens_per_iteration", "t_n_layers", "d_n_layers",
            "target_config", "draft_config", "t_target_s", "t_verify_s", "t_draft_s", "t_draft2_s")


def finite(x):
    """JSON-safe: NaN/inf become None, recursively."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="hf_assisted.csv from scripts/hf_assisted_check.py")
    ap.add_argument("--gpu", help="catalog GPU (default: from the CSV's gpu_name)")
    ap.add_argument("--mode", default="eager", choices=("eager", "graph", "compiled"),
                    help="specperf mode to price forwards in (HF generate runs eager)")
    ap.add_argument("--calibration", default="first", choices=("first", "spread"), help="the headline's rule")
    ap.add_argument("--forward-clock", default="events", choices=("events", "wall"),
                    help="the measured-forward variant's per-forward times: CUDA events or host clock")
    ap.add_argument("--no-specperf", action="store_true", help="only the measured-forward variant (no providers)")
    ap.add_argument("--errors-out", help="write per-run predictions and errors of every variant (CSV)")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    a = ap.parse_args(argv)
    path = Path(a.csv)
    if not path.is_file():
        print(f"{a.csv}: no such file", file=sys.stderr)
        return 2
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        print(f"{a.csv}: not an hf_assisted_check table (missing {', '.join(missing)})", file=sys.stderr)
        return 2
    rows = read(path)
    if not rows:
        print(f"{a.csv}: no measured runs", file=sys.stderr)
        return 2
    if a.forward_clock == "wall":
        for r in rows:
            for k in ("t_target_s", "t_verify_s", "t_draft_s", "t_draft2_s"):
                w = r.get(k.replace("_s", "_wall_s"))
                r[k] = float(w) if w not in (None, "") else math.nan
    card = rows[0]["gpu_name"]
    gpu = a.gpu or (None if a.no_specperf else gpu_key(card))
    fw = {"measured": [forwards_measured(r) for r in rows]}
    sources, extra = {}, {}
    if not a.no_specperf:
        try:
            fs = forwards_specperf(rows, gpu, a.mode)
        except Exception as e:  # SpecError and friends: one line, exit 2
            print(f"specperf cannot price these runs on {gpu!r}: {e}", file=sys.stderr)
            return 2
        fw["specperf"] = [x[0] for x in fs]
        sources = {f"{r['pair']}/γ{r['gamma']}": x[2] for r, x in zip(rows, fs)}
    variants = {}
    for src, f in fw.items():
        for rule, model in VARIANTS:
            key = f"{src}/{rule}" + ("" if model == "iter+fwd" else "+layer")
            variants[key] = predict(rows, f, calibration_indices(rows, rule), model)
    head = f"{'measured' if a.no_specperf else 'specperf'}/{a.calibration}"
    def other_pairs(v):
        cal_pairs = {c.split("/γ")[0] for c in v["calibration"]}
        return summary([p for p in v["rows"] if p["pair"] not in cal_pairs])

    summ = {k: {"held_out": summary(v["rows"]), "held_out_other_shapes": other_pairs(v),
                "target_alone": summary(v["rows"], "baseline"),
                "calibration_fit": summary(v["rows"], "calibration"), "model": v["model"],
                "a_ms": v["a_s"] * 1e3, "b_ms": v["b_s"] * 1e3, "c_ms": v["c_s"] * 1e3,
                "calibrated_on": v["calibration"]} for k, v in variants.items()}
    print(f"card: {card}; torch {rows[0].get('torch')}, transformers {rows[0].get('transformers')}, "
          f"{rows[0].get('dtype')}; {len(rows)} runs ({sum(r['gamma'] > 0 for r in rows)} assisted); specperf GPU "
          f"{gpu or '-'}, mode {a.mode}; headline {head}, forward clock {a.forward_clock}")
    hv = variants[head]
    mv = variants[f"measured/{a.calibration}"]["rows"]
    lat = [f_s / f_m - 1 if "specperf" in fw else math.nan for f_s, f_m in zip(fw.get("specperf", fw["measured"]), fw["measured"])]
    if a.markdown:
        print("\n| pair | γ | tokens/iter | measured tok/s | predicted | error | with measured forwards | "
              "specperf forwards vs measured | role |")
        print("|---|---|---|---|---|---|---|---|---|")
    else:
        print(f"\n{'pair':26s} {'γ':>2s} {'TPI':>5s} {'meas':>8s} {'pred':>8s} {'err':>7s} {'meas-fwd':>8s} {'latency':>8s}  role")
    for r, p, q, le in zip(rows, hv["rows"], mv, lat):
        if a.markdown:
            print(f"| {p['pair']} | {p['gamma']} | {r['tokens_per_iteration']:.2f} | {p['measured_tok_s']:.1f} | "
                  f"{p['predicted_tok_s']:.1f} | {p['error']:+.1%} | {q['error']:+.1%} | {le:+.1%} | {p['role']} |")
        else:
            print(f"{p['pair']:26s} {p['gamma']:2d} {r['tokens_per_iteration']:5.2f} {p['measured_tok_s']:8.1f} "
                  f"{p['predicted_tok_s']:8.1f} {p['error']:+7.1%} {q['error']:+8.1%} {le:+8.1%}  {p['role']}")
    print()
    for k, s in summ.items():
        h, bl = s["held_out"], s["target_alone"]
        line = (f"{k:24s} a={s['a_ms']:7.3f} b={s['b_ms']:7.3f}" + (f" c={s['c_ms']:6.3f}" if s["model"] != "iter+fwd" else "")
                + f" ms  held-out n={h.get('n', 0):2d}"
                + (f"  median {h['median_abs']:6.1%}  p90 {h['p90_abs']:6.1%}  max {h['max_abs']:6.1%}  "
                   f"signed {h['median_signed']:+6.1%}" if h.get("n") else ""))
        ho = s["held_out_other_shapes"]
        if ho.get("n") and ho["n"] != h.get("n"):
            line += f"  | other shapes n={ho['n']} median {ho['median_abs']:.1%}"
        if bl.get("n"):
            line += f"  | target alone n={bl['n']} median {bl['median_abs']:.1%} signed {bl['median_signed']:+.1%}"
        print(line)
    print("\nHF's own cost per iteration outside the forwards (measured iteration − the run's measured forwards), ms:")
    per_pair: dict = {}
    for r, f in zip(rows, fw["measured"]):
        per_pair.setdefault(r["pair"], []).append((r["gamma"], (r["measured_iteration_s"] - f) * 1e3))
    for pair, v in per_pair.items():
        print(f"  {pair:26s} " + "  ".join(f"γ{g}: {x:6.3f}" for g, x in sorted(v)))
    extra["measured_overhead_ms"] = {pair: {str(g): x for g, x in v} for pair, v in per_pair.items()}
    sp = speedups(rows, hv["rows"])
    if sp:
        e = np.abs([x["error"] for x in sp])
        extra["speedup"] = {"n": len(sp), "median_abs": float(np.nanmedian(e)), "max_abs": float(np.nanmax(e))}
        print(f"speedup over the target alone ({head}): n={len(sp)} median |error| {np.nanmedian(e):.1%}, max {np.nanmax(e):.1%}")
    if "specperf" in fw:
        le = np.asarray([x for x in lat if math.isfinite(x)])
        if le.size:
            extra["latency_only"] = {"n": int(le.size), "median_abs": float(np.median(np.abs(le))),
                                     "median_signed": float(np.median(le)), "max_abs": float(np.abs(le).max())}
            print(f"latency alone (specperf's forwards per iteration / the run's measured ones − 1): median |error| "
                  f"{extra['latency_only']['median_abs']:.1%}, signed {extra['latency_only']['median_signed']:+.1%}, "
                  f"max {extra['latency_only']['max_abs']:.1%}")
        extra["specperf_sources"] = sorted(set(sources.values()))
        print(f"specperf sources: {', '.join(extra['specperf_sources'])}")
    if a.errors_out:
        with open(a.errors_out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["variant"] + list(hv["rows"][0]))
            w.writeheader()
            for k, v in variants.items():
                for p in v["rows"]:
                    w.writerow({"variant": k, **p})
    print(json.dumps(finite({"card": card, "gpu": gpu, "mode": a.mode, "csv": str(a.csv), "runs": len(rows),
                             "headline": head, "held_out": summ[head]["held_out"], "variants": summ, **extra})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
