"""Summarise a `specperf validate` table as markdown: errors overall and by target, draft, batch
and γ; the oracle's realised acceptance against the closed form; the best (draft, γ) measured
versus predicted; the worst points. Used to write docs/accuracy.md.

Usage: python scripts/validate_report.py evidence/validation_h100_graph.csv [--predict-with PROFILE --gpu G]
(--predict-with re-predicts the same measured points from another profile, e.g. the shipped one.)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from specperf.profiler.validate import abs_error_summary, gamma_regret, load_rows, repredict  # noqa: E402


def pct(x, signed=False):
    return "n/a" if not np.isfinite(x) else (f"{x:+.1%}" if signed else f"{x:.1%}")


def breakdown(rows, key, label):
    print(f"\n| {label} | points | median \\|err\\| tok/s | p90 \\|err\\| | max \\|err\\| | mean signed | "
          "median \\|err\\| realised α |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for v in sorted({r[key] for r in rows}, key=lambda x: (str(type(x)), x)):
        rs = [r for r in rows if r[key] == v]
        s = abs_error_summary([r["err_tok_s_expected"] for r in rs])
        sr = abs_error_summary([r["err_tok_s"] for r in rs])
        print(f"| {v} | {s['n']} | {pct(s['median_abs'])} | {pct(s['p90_abs'])} | {pct(s['max_abs'])} | "
              f"{pct(s['mean_signed'], True)} | {pct(sr['median_abs'])} |")


def main(path, predict_with=None, gpu="h100-sxm"):
    rows = [r for r in load_rows(path) if r["status"] == "ok"]
    if predict_with:
        from specperf.perfmodel.specs.hardware import resolve_gpu
        from specperf.perfmodel.latency.providers import latency_provider

        rows = repredict(rows, latency_provider(resolve_gpu(gpu), profile=predict_with))
        print(f"predictions recomputed from {predict_with} (not the profile taken in the validation run)")
    meta_p = Path(str(path) + ".meta.json")
    meta = json.loads(meta_p.read_text()) if meta_p.exists() else {}
    print(f"card: {meta.get('gpu_name')} (driver {meta.get('driver')}, torch {meta.get('torch')}, "
          f"CUDA {meta.get('cuda')}), {meta.get('date')}")
    print(f"command: `{meta.get('command')}`")
    for mode in sorted({r["mode"] for r in rows}):
        rs = [r for r in rows if r["mode"] == mode]
        print(f"\n### {mode} mode: {len(rs)} points")
        print("\n| measure | median \\|err\\| | p90 \\|err\\| | max \\|err\\| | mean signed |")
        print("|---|---:|---:|---:|---:|")
        for k, name in (("err_tok_s_expected", "tokens/s, closed-form acceptance (latency model)"),
                        ("err_tok_s", "tokens/s, realised oracle acceptance"),
                        ("err_iteration_s", "iteration time"), ("err_speedup", "speedup over autoregressive")):
            s = abs_error_summary([r[k] for r in rs])
            print(f"| {name} | {pct(s['median_abs'])} | {pct(s['p90_abs'])} | {pct(s['max_abs'])} | "
                  f"{pct(s['mean_signed'], True)} |")
        for mk, name in (("measured_tok_s_expected", "closed-form acceptance"), ("measured_tok_s", "realised acceptance")):
            reg = gamma_regret(rs, mk)
            v = np.array([g["regret"] for g in reg])
            hit = np.mean([g["gamma_measured_best"] == g["gamma_predicted_best"] for g in reg])
            print(f"\nγ regret ({name}): {len(reg)} groups, mean {pct(v.mean())}, median {pct(np.median(v))}, "
                  f"max {pct(v.max())}; predicted γ* = measured best γ in {hit:.0%} of groups")
            for g in reg:
                if g["regret"] > 0.01:
                    print(f"  - {g['target']} ← {g['draft']} b={g['batch']} α={g['alpha']}: predicted γ*="
                          f"{g['gamma_predicted_best']}, measured best γ={g['gamma_measured_best']}, "
                          f"regret {pct(g['regret'])}")
        breakdown(rs, "target", "target")
        breakdown(rs, "draft", "draft")
        breakdown(rs, "batch", "batch")
        breakdown(rs, "gamma", "γ")
        z = np.array([r["acceptance_z"] for r in rs])
        n = np.array([r["iterations"] * r["batch"] for r in rs])
        print(f"\noracle on the GPU: realised − closed-form tokens/iteration in standard errors: mean z "
              f"{z.mean():+.2f}, sd {z.std():.2f}, |z| > 2 in {np.mean(np.abs(z) > 2):.1%} of points "
              f"(≈ 4.6 % expected), |z| > 3 in {np.mean(np.abs(z) > 3):.1%}; {n.min()}–{n.max()} "
              "accept/reject draws per point")
        print("\n| target | batch | α | measured best (draft, γ) | tok/s | predicted best (draft, γ) | "
              "its measured tok/s | loss |")
        print("|---|---:|---:|---|---:|---|---:|---:|")
        for t in sorted({r["target"] for r in rs}):
            for b in sorted({r["batch"] for r in rs}):
                for a in sorted({r["alpha"] for r in rs}):
                    g = [r for r in rs if r["target"] == t and r["batch"] == b and r["alpha"] == a]
                    mb = max(g, key=lambda r: r["measured_tok_s_expected"])
                    pb = max(g, key=lambda r: r["predicted_tok_s"])
                    loss = 1 - pb["measured_tok_s_expected"] / mb["measured_tok_s_expected"]
                    print(f"| {t} | {b} | {a} | {mb['draft']}, {mb['gamma']} | {mb['measured_tok_s_expected']:.0f} | "
                          f"{pb['draft']}, {pb['gamma']} | {pb['measured_tok_s_expected']:.0f} | {pct(loss)} |")
        worst = sorted(rs, key=lambda r: -abs(r["err_tok_s_expected"]))[:5]
        print("\nworst points (closed-form acceptance):")
        for r in worst:
            print(f"  - {r['target']} ← {r['draft']} b={r['batch']} γ={r['gamma']} α={r['alpha']}: measured "
                  f"{r['measured_iteration_s'] * 1e3:.3f} ms/iteration, predicted {r['predicted_iteration_s'] * 1e3:.3f} "
                  f"(draft {r['predicted_t_draft_s'] * 1e3:.3f} ×γ, verify {r['predicted_t_verify_s'] * 1e3:.3f}, "
                  f"overhead {r['predicted_overhead_s'] * 1e3:.3f}); tok/s error {pct(r['err_tok_s_expected'], True)}")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("table", nargs="?", default="evidence/validation_h100_graph.csv")
    ap.add_argument("--predict-with")
    ap.add_argument("--gpu", default="h100-sxm")
    a = ap.parse_args()
    main(a.table, a.predict_with, a.gpu)
