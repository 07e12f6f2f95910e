"""Analysis of the miniature re-run (studies/miniature/rerun.py; issue 29), on any machine: agreement
records rebuilt from agreement.npz + prompts.jsonl; for every timed loop run, acceptance calibrated on
set A (disjoint prompts) replayed with the run's own protocol (warm-up iterations skipped, the timed
ones counted) → `specperf predict` from the run's profile → error against the measured tokens/s;
the replay of the run's own set-B record against the loop's measured tokens per iteration (the
replay's identity with the real loop); 90 % prediction intervals for held-out prompts; HF assisted
generation predicted after `specperf calibrate latency` on 4 of its runs; and the second finding —
acceptance versus perplexity across two recipes at matched perplexity.

    PYTHONPATH=. python -m studies.miniature.reanalyze --data .gpu_results/miniature_rerun --out-dir studies/miniature/rerun

Key assumption: the loop's attention spans its whole static cache, so the context given to predict
is cache_span − γ − 1 (as studies.miniature.analyze); HF's context is prompt + half the new tokens.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

from .analyze import _pct, _rel, cli
from .family import Shape, write_configs

WEIGHTING = "iteration"  # engines count tokens per iteration pooled over requests
EXTRA: list = []  # extra predict flags (a CPU dry run: --allow-gpu-mismatch)


def load(data: Path):
    recs = {}
    for ln in (data / "records.jsonl").read_text().splitlines():
        r = json.loads(ln)
        recs[r["key"]] = r
    prompts = [json.loads(ln) for ln in (data / "prompts.jsonl").read_text().splitlines()]
    return recs, prompts, np.load(data / "agreement.npz")


def record(z, prompts, draft: str, s: str, kind: str, upto: int | None = None, weights: dict | None = None,
           only=None):
    """The agreement record of one draft × prompt set × kind (greedy | sampling), optionally cut to
    its first `upto` generated tokens; `weights` {domain: copies}: each prompt of a domain repeated
    that many times (a workload's domain mix, for the pooled replay); `only`: these prompt ids alone."""
    from specperf.calibration.agreement import make_record

    ps = [p for p in prompts if p["set"] == s]
    cols = [z[f"{draft}/{s}/{kind}/{c}"][:, :upto] for c in ("greedy_match", "draft_rank", "accept_prob")]
    idx = [(i, c) for i, p in enumerate(ps) if only is None or p["id"] in only
           for c in range((weights or {}).get(p["domain"], 1 if weights is None else 0))]
    ps, cols = [dict(ps[i], id=f"{ps[i]['id']}#{c}") for i, c in idx], [x[[i for i, _ in idx]] for x in cols]
    return make_record([p["id"] for p in ps], [p["domain"] for p in ps], list(cols[0]), list(cols[1].astype(np.int64)),
                       list(cols[2].astype(float)) if kind == "sampling" else None,
                       {"continuation": "greedy" if kind == "greedy" else "sample", "draft": draft, "set": s,
                        "temperature": 0.0 if kind == "greedy" else 1.0})


class Fam:
    def __init__(self, recs, data: Path):
        tr = [r for r in recs.values() if r["kind"] == "train" and r["status"] == "ok"]
        self.runs = {r["model"]: r for r in tr}
        self.target = next(r["model"] for r in tr if r["model"] == r["shape"] and "target" in r["model"])
        shapes = {r["shape"]: Shape(r["shape"], r["n_layers"], r["d_model"], "target" if r["shape"] == self.target else "draft")
                  for r in tr}
        self.configs = write_configs(shapes.values(), data / "configs", vocab=recs["corpus"]["vocab"])

    def cfg(self, name: str) -> str:
        return _rel(self.configs[self.runs[name]["shape"]])


def predict(fam, draft, acc_json, gamma, context, mode, gpu, dtype, profile, calibration=None, catchup=True) -> dict:
    args = ["predict", "--target", fam.cfg(fam.target), "--draft", fam.cfg(draft), "--gpu", gpu, "--profile", _rel(profile),
            "--acceptance", _rel(acc_json), "--gamma", str(max(gamma, 1)), "--batch", "1", "--context", str(context),
            "--mode", mode, "--dtype", dtype]
    if calibration is not None:
        args += ["--calibration", _rel(calibration)]
    if catchup:
        args += ["--draft-catchup"]
    r = cli(*args, *EXTRA)["rows"][0]
    return {"predicted_tok_s": r["throughput_tok_s"] if gamma > 0 else r["baseline_tok_s"],
            "predicted_tok_s_lo": r.get("throughput_tok_s_lo"), "predicted_tok_s_hi": r.get("throughput_tok_s_hi"),
            "predicted_iteration_s": r["iteration_s"] if gamma > 0 else 1.0 / r["baseline_tok_s"],
            "predicted_tokens_per_iteration": r["tokens_per_iteration"] if gamma > 0 else 1.0}


def loop_rows(fam, recs, prompts, z, profile, gpu, dtype, derived) -> list[dict]:
    from specperf.calibration import replay as rp
    from specperf.perfmodel.specs.safeio import write_json

    rows = []
    for r in recs.values():
        if r["kind"] != "loop" or r["status"] != "ok" or r["gamma"] == 0:
            continue
        d, g, warm, its = r["draft"], r["gamma"], int(r.get("warmup", 2)), r["iterations"] // r["prompts"]
        recA, recB = record(z, prompts, d, "A", "greedy"), record(z, prompts, d, "B", "greedy")
        try:
            model = rp.acceptance_model(recA, g, skip=warm, iterations=its, weighting=WEIGHTING, gammas=(g,),
                                        new_prompts=r["prompts"])  # α intervals for this many new prompts
        except ValueError as e:  # e.g. every draft token accepted: no finite α, no prediction
            print(f"no prediction for {d} γ={g}: {e}", file=sys.stderr)
            continue
        js = derived / f"{d}_A_g{g}_acceptance.json"
        write_json(js, model.to_dict())
        iv = rp.interval(rp.replay(recA, g, skip=warm, iterations=its), WEIGHTING, level=0.90, new_prompts=r["prompts"])
        repB = rp.replay(recB, g, skip=warm, iterations=its)
        ctx = r["cache_span"] - g - 1
        row = dict(draft=d, recipe=fam.runs[d].get("recipe"), gamma=g, mode=r["mode"], prompts=r["prompts"], context=ctx,
                   measured_tok_s=r["measured_tok_s"], measured_tokens_per_iteration=r["tokens_per_iteration"],
                   measured_iteration_s=r["measured_iteration_s"], replayed_A_tokens_per_iteration=iv["tokens_per_iteration"],
                   pi90_lo=iv["prediction_interval"][0], pi90_hi=iv["prediction_interval"][1],
                   replayed_B_tokens_per_iteration=repB.tokens_per_iteration)
        loopB = np.asarray(r["accepted"]).reshape(r["prompts"], its) + 1
        row["replay_B_equals_loop_prompts"] = int(np.sum(np.isclose(repB.tokens, loopB.sum(axis=1))))
        row.update(predict(fam, d, js, g, ctx, r["mode"], gpu, dtype, profile))
        row["error_pct"] = _pct(row["predicted_tok_s"], row["measured_tok_s"])
        row["latency_only_error_pct"] = _pct(row["measured_tokens_per_iteration"] / row["predicted_iteration_s"], row["measured_tok_s"])
        row["acceptance_only_error_pct"] = _pct(row["replayed_A_tokens_per_iteration"], row["measured_tokens_per_iteration"])
        lo, hi = row.get("predicted_tok_s_lo"), row.get("predicted_tok_s_hi")
        row["predict_band_covers_measured"] = bool(lo is not None and lo <= r["measured_tok_s"] <= hi)
        row["iteration_error_pct"] = _pct(row["predicted_iteration_s"], row["measured_iteration_s"])
        row["pi90_covers_measured"] = bool(iv["prediction_interval"][0] <= r["tokens_per_iteration"] <= iv["prediction_interval"][1])
        rows.append(row)
    return rows


def loop_calibrated(fam, loops, profile, gpu, dtype, derived, fit_recipe: str = "scratch") -> list[dict]:
    """The documented remedy for a latency model that misses on this host: `specperf calibrate
    latency --fit verify,overhead` on the loop runs of one recipe, then predict every run with that
    correction (the other recipe's runs are held out: same shapes, other acceptance)."""
    fit = [r for r in loops if r["recipe"] == fit_recipe]
    if len(fit) < 4:
        return []
    path = derived / "loop_fit_runs.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["gpu", "mode", "dtype", "target", "draft", "gamma", "batch", "context", "iteration_s"])
        for r in fit:
            w.writerow([gpu, r["mode"], dtype, fam.cfg(fam.target), fam.cfg(r["draft"]), r["gamma"], 1, r["context"],
                        r["measured_iteration_s"]])
    corr = derived / "loop_latency_correction.json"
    try:
        cli("calibrate", "latency", _rel(path), "--profile", _rel(profile), "--fit", "verify,overhead", "--out", _rel(corr))
    except RuntimeError as e:
        print(f"no calibrated loop predictions: {e}", file=sys.stderr)
        return []
    out = []
    for r in loops:
        js = derived / f"{r['draft']}_A_g{r['gamma']}_acceptance.json"
        p = predict(fam, r["draft"], js, r["gamma"], r["context"], r["mode"], gpu, dtype, profile, calibration=corr)
        out.append({"draft": r["draft"], "gamma": r["gamma"], "in_fit": r["recipe"] == fit_recipe,
                    "error_pct": _pct(p["predicted_tok_s"], r["measured_tok_s"]),
                    "iteration_error_pct": _pct(p["predicted_iteration_s"], r["measured_iteration_s"])})
    return out


def target_alone(fam, recs, profile, gpu, dtype, derived, loops) -> dict | None:
    """specperf predict's baseline (target alone) against the loop's γ = 0 run: the latency model alone."""
    r = recs.get(f"loop:{loops[0]['mode']}:target") if loops else None
    if not r or r["status"] != "ok":
        return None
    js = derived / f"{loops[0]['draft']}_A_g{loops[0]['gamma']}_acceptance.json"
    p = predict(fam, loops[0]["draft"], js, 0, r["cache_span"] - 1, r["mode"], gpu, dtype, profile, catchup=False)
    return {"measured_tok_s": r["measured_tok_s"], "predicted_tok_s": p["predicted_tok_s"],
            "error_pct": _pct(p["predicted_tok_s"], r["measured_tok_s"])}


def hf_protocol(match, gamma: int, new_tokens: int) -> tuple[int, int]:
    """(tokens, target forwards) of greedy assisted generation as transformers runs it, from one prompt's
    greedy agreement row: each iteration proposes min(γ, tokens still to make − 1) drafts, accepts the
    leading matches and emits them + 1, until `new_tokens`; the prefill is the first verification
    (host_overheads.hf_counts, which also counts the draft calls)."""
    from .host_overheads import hf_counts

    return hf_counts(match, gamma, new_tokens)[:2]


def hf_rows(fam, recs, prompts, z, profile, gpu, dtype, derived, split: str = "drafts") -> list[dict]:
    """HF: latency corrected on 4 runs, the rest held out. split "drafts" (the design fixed before run 1):
    the first two timed drafts with both γ — in these runs both 1 × 1024, so the fit never sees another
    depth; "recipe" (chosen after run 2, reported as such): the scratch-recipe runs of both shapes fit,
    the distilled draft held out, as the loop's latency fit splits."""
    from specperf.calibration import replay as rp
    from specperf.perfmodel.specs.safeio import write_json

    hf = recs.get("hf")
    if not hf or hf["status"] != "ok":
        return []
    runs = [r for r in hf["runs"] if r["draft"] != "none"]
    ctx = int(len(prompts[0]["tokens"]) + runs[0]["new_tokens"] / 2)
    drafts = list(dict.fromkeys(r["draft"] for r in runs))
    if split == "recipe":
        fit = [r for r in runs if fam.runs[r["draft"]].get("recipe") == "scratch"]
    else:
        fit = [r for r in runs if r["draft"] in drafts[:2]]
    tag = "" if split == "drafts" else f"_{split}"
    path = derived / f"hf_fit_runs{tag}.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["gpu", "mode", "dtype", "target", "draft", "gamma", "batch", "context", "iteration_s"])
        for r in fit:
            w.writerow([gpu, "eager", dtype, fam.cfg(fam.target), fam.cfg(r["draft"]), r["gamma"], 1, ctx, r["measured_iteration_s"]])
    corr = derived / f"hf_latency_correction{tag}.json"
    try:
        cli("calibrate", "latency", _rel(path), "--profile", _rel(profile), "--fit", "draft,overhead", "--out", _rel(corr))
    except RuntimeError as e:
        print(f"no HF predictions: {e}", file=sys.stderr)
        return []
    out = []
    dom = {p["id"]: p["domain"] for p in prompts}
    mix: dict = {}
    for pid in runs[0].get("prompt_ids", []):  # the HF prompts' domain mix, as copies per set-A prompt
        mix[dom[pid]] = mix.get(dom[pid], 0) + 1
    for r in runs:
        recA = record(z, prompts, r["draft"], "A", "greedy", upto=r["new_tokens"] + r["gamma"], weights=mix or None)
        js = derived / f"{r['draft']}_A_hf_g{r['gamma']}_acceptance.json"
        write_json(js, rp.acceptance_model(recA, r["gamma"], weighting=WEIGHTING, gammas=(r["gamma"],)).to_dict())
        row = dict(draft=r["draft"], gamma=r["gamma"], mode="hf", prompts=r["prompts"], context=ctx, in_fit=r in fit,
                   measured_tok_s=r["measured_tok_s"], measured_tokens_per_iteration=r["tokens_per_iteration"],
                   measured_iteration_s=r["measured_iteration_s"])
        row.update(predict(fam, r["draft"], js, r["gamma"], ctx, "eager", gpu, dtype, profile, calibration=corr, catchup=False))
        row["error_pct"] = _pct(row["predicted_tok_s"], row["measured_tok_s"])
        row["iteration_error_pct"] = _pct(row["predicted_iteration_s"], row["measured_iteration_s"])
        row["acceptance_only_error_pct"] = _pct(row["predicted_tokens_per_iteration"], row["measured_tokens_per_iteration"])
        row["domain_mix"] = json.dumps(mix)
        if r.get("prompt_ids"):  # the same prompts' set-B record, HF's protocol: acceptance error from prompt choice vs from HF
            recB = record(z, prompts, r["draft"], "B", "greedy", upto=r["new_tokens"] + r["gamma"], only=set(r["prompt_ids"]))
            row["replayed_B_same_prompts_tokens_per_iteration"] = rp.replay(recB, r["gamma"]).tokens_per_iteration
            row["hf_vs_same_prompts_replay_pct"] = _pct(row["measured_tokens_per_iteration"],
                                                         row["replayed_B_same_prompts_tokens_per_iteration"])
            ib = {p["id"]: i for i, p in enumerate(q for q in prompts if q["set"] == "B")}
            gm = z[f"{r['draft']}/B/greedy/greedy_match"]
            ex = [hf_protocol(gm[ib[pid]], r["gamma"], r["new_tokens"]) for pid in r["prompt_ids"]]
            row["hf_protocol_replay_forwards"], row["target_forwards"] = int(sum(f for _, f in ex)), r["target_forwards"]
            row["hf_forwards_equal_protocol_replay"] = row["hf_protocol_replay_forwards"] == r["target_forwards"]
            ga = z[f"{r['draft']}/A/greedy/greedy_match"]  # set A under HF's protocol, weighted to the HF prompts' domains
            wa = [(mix or {}).get(q["domain"], 1 if not mix else 0) for q in prompts if q["set"] == "A"]
            exa = [(w, hf_protocol(ga[i], r["gamma"], r["new_tokens"])) for i, w in enumerate(wa) if w]
            row["hf_protocol_A_tokens_per_iteration"] = sum(w * t for w, (t, _) in exa) / sum(w * f for w, (_, f) in exa)
            row["hf_protocol_A_acceptance_error_pct"] = _pct(row["hf_protocol_A_tokens_per_iteration"], row["measured_tokens_per_iteration"])
            if r.get("per_prompt"):  # run 2 on: prompt by prompt
                row["hf_prompts_equal_protocol_replay"] = int(sum(f == pp[3] for (_, f), pp in zip(ex, r["per_prompt"])))
        out.append(row)
    return out


def loop_bookkeeping(fam, recs, loops, profile, gpu, dtype, derived, target_alone_row) -> dict:
    """specperf's loop predicted with its bookkeeping as a measured term (host_overheads): where the
    run timed it (`bookkeeping` records: the loop with spin-kernel stand-ins for its forwards), a
    correction file with bookkeeping_s {γ: s} (no fitted factor) and every loop run predicted with it
    — all held out, no loop run enters; without such records, the γ = 0 proxy (a lower bound)."""
    from specperf.perfmodel.latency.corrected import KIND, SCHEMA_VERSION

    from .host_overheads import bookkeeping_table, loop_bookkeeping_proxy

    table = bookkeeping_table(recs)
    if not table or not loops:
        prox = loop_bookkeeping_proxy(target_alone_row, None)
        if prox and loops:  # informative only: the γ = 0 gap added to every run (a lower bound at γ > 0)
            errs = [_pct(r["replayed_A_tokens_per_iteration"] / (r["predicted_iteration_s"] + prox["gamma0_unmodelled_s"]),
                         r["measured_tok_s"]) for r in loops]
            prox["errors_pct_with_gamma0_gap"] = [round(e, 2) for e in errs]
            prox["median_abs_error_pct_with_gamma0_gap"] = float(np.median(np.abs(errs)))
            prox["unmodelled_per_run_ms"] = [round(1e3 * (r["measured_iteration_s"] - r["predicted_iteration_s"]), 3) for r in loops]
        return {"measured": False, "proxy": prox}
    corr = derived / "loop_bookkeeping_correction.json"
    entry = {"gpu": gpu, "mode": loops[0]["mode"], "k_draft": 1.0, "k_verify": 1.0, "extra_overhead_s": 0.0,
             "targets": [], "drafts": [], "bookkeeping_s": {str(g): v for g, v in table.items()},
             "source_note": "measured: the loop with spin-kernel stand-ins (studies/miniature/rerun.py bookkeeping)"}
    corr.write_text(json.dumps({"kind": KIND, "schema_version": SCHEMA_VERSION, "provider": "profile",
                                "source": "bookkeeping records", "entries": [entry]}, indent=1) + "\n")
    out = []
    for r in loops:
        js = derived / f"{r['draft']}_A_g{r['gamma']}_acceptance.json"
        p = predict(fam, r["draft"], js, r["gamma"], r["context"], r["mode"], gpu, dtype, profile, calibration=corr)
        out.append({"draft": r["draft"], "gamma": r["gamma"], "error_pct": _pct(p["predicted_tok_s"], r["measured_tok_s"]),
                    "iteration_error_pct": _pct(p["predicted_iteration_s"], r["measured_iteration_s"]),
                    "latency_only_error_pct": _pct(r["measured_tokens_per_iteration"] / p["predicted_iteration_s"], r["measured_tok_s"])})
    res = {"measured": True, "bookkeeping_ms": {g: 1e3 * v for g, v in table.items()},
           "records": {k: round(1e3 * v["bookkeeping_s"], 4) for k, v in recs.items()
                       if v.get("kind") == "bookkeeping" and v.get("status") == "ok"},
           "rows": out, "median_abs_error_pct": float(np.median([abs(x["error_pct"]) for x in out])),
           "iteration_median_abs_error_pct": float(np.median([abs(x["iteration_error_pct"]) for x in out])),
           "latency_only_median_abs_error_pct": float(np.median([abs(x["latency_only_error_pct"]) for x in out]))}
    r0 = recs.get(f"loop:{loops[0]['mode']}:target")
    if r0 and r0.get("status") == "ok":  # the γ = 0 run: its overhead row replaced by the measured bookkeeping
        js = derived / f"{loops[0]['draft']}_A_g{loops[0]['gamma']}_acceptance.json"
        p0 = predict(fam, loops[0]["draft"], js, 0, r0["cache_span"] - 1, r0["mode"], gpu, dtype, profile,
                     calibration=corr, catchup=False)
        res["target_alone_error_pct"] = _pct(p0["predicted_tok_s"], r0["measured_tok_s"])
    return res


def hf_host(fam, recs, prompts, z, profile, gpu, dtype, derived) -> dict | None:
    """HF's host time as its own term (studies.miniature.host_overheads): specperf's uncorrected
    eager prediction of every HF run (the target alone included) + a·[γ>0] + b·F + c·L, (a, b, c)
    calibrated by each fixed rule of host_overheads.HF_SPLITS, the rest held out."""
    from .host_overheads import hf_host_model

    hf = recs.get("hf")
    if not hf or hf["status"] != "ok":
        return None
    runs = hf["runs"]
    assisted = [r for r in runs if r["draft"] != "none"]
    ctx = int(len(prompts[0]["tokens"]) + runs[0]["new_tokens"] / 2)
    dom = {p["id"]: p["domain"] for p in prompts}
    mix: dict = {}
    for pid in runs[0].get("prompt_ids", []):
        mix[dom[pid]] = mix.get(dom[pid], 0) + 1

    def forwards_of(r):
        d = r["draft"] if r["gamma"] > 0 else assisted[0]["draft"]
        js = derived / f"{d}_A_hf_g{r['gamma'] if r['gamma'] > 0 else assisted[0]['gamma']}_acceptance.json"
        p = predict(fam, d, js, r["gamma"], ctx, "eager", gpu, dtype, profile, catchup=False)
        return p["predicted_iteration_s"], p["predicted_tokens_per_iteration"]
    out = hf_host_model(fam, prompts, z, runs, forwards_of, mix or None)
    (derived / "hf_host_model.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    return out


def second_finding(fam, prompts, z) -> dict:
    """Per draft: perplexity, greedy and T=1 acceptance on set A; per shape, logit α regressed on
    ln perplexity and a distilled-recipe indicator: the indicator's coefficient is the recipe's
    effect at matched perplexity (OLS, t interval)."""
    from scipy import stats

    rows = []
    for name, r in fam.runs.items():
        if name == fam.target or f"{name}/A/greedy/greedy_match" not in z.files:
            continue
        rows.append(dict(draft=name, shape=r["shape"], recipe=r.get("recipe"), seed=r["seed"], tokens=r["tokens"],
                         perplexity=r["perplexity"], alpha_greedy=float(z[f"{name}/A/greedy/greedy_match"].mean()),
                         alpha_t1=float(z[f"{name}/A/sampling/accept_prob"].mean())))
    out = {"drafts": rows, "by_shape": {}}
    for shape in sorted({r["shape"] for r in rows}):
        rs = [r for r in rows if r["shape"] == shape]
        if len({r["recipe"] for r in rs}) < 2 or len(rs) < 4:
            continue
        for key in ("alpha_greedy", "alpha_t1"):
            a = np.clip([r[key] for r in rs], 1e-4, 1 - 1e-4)  # a CPU dry run's synthetic drafts can match every token
            y = np.log(a / (1 - a))
            X = np.column_stack([np.ones(len(rs)), [math.log(r["perplexity"]) for r in rs],
                                 [r["recipe"] == "distill" for r in rs]]).astype(float)
            b, *_ = np.linalg.lstsq(X, y, rcond=None)
            dof = len(rs) - 3
            s2 = float(np.sum((y - X @ b) ** 2) / dof) if dof > 0 else float("nan")
            se = np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X))) if dof > 0 else np.full(3, np.nan)
            t = float(stats.t.ppf(0.975, dof)) if dof > 0 else float("nan")
            rho = {rec: float(stats.spearmanr([r["perplexity"] for r in rs if r["recipe"] == rec],
                                               [r[key] for r in rs if r["recipe"] == rec])[0])
                   for rec in ("scratch", "distill") if sum(r["recipe"] == rec for r in rs) >= 3}
            out["by_shape"].setdefault(shape, {})[key] = {
                "n": len(rs), "distill_logit_effect": float(b[2]), "distill_ci95": [float(b[2] - t * se[2]), float(b[2] + t * se[2])],
                "log_ppl_slope": float(b[1]), "log_ppl_ci95": [float(b[1] - t * se[1]), float(b[1] + t * se[1])],
                "spearman_by_recipe": rho, "perplexity_range": {rec: [min(r["perplexity"] for r in rs if r["recipe"] == rec),
                                                                      max(r["perplexity"] for r in rs if r["recipe"] == rec)]
                                                                for rec in ("scratch", "distill")}}
    shapes = sorted({r["shape"] for r in rows})
    if len(rows) >= 6 and len(shapes) >= 2 and len({r["recipe"] for r in rows}) >= 2:
        # every draft at once: logit α on ln perplexity, a distilled indicator and one indicator per
        # shape but the first — the recipe and the shape at matched perplexity, both with t intervals
        names = ["intercept", "log_perplexity", "distill"] + [f"shape:{sh}" for sh in shapes[1:]]
        X = np.column_stack([np.ones(len(rows)), [math.log(r["perplexity"]) for r in rows],
                             [r["recipe"] == "distill" for r in rows]]
                            + [[r["shape"] == sh for r in rows] for sh in shapes[1:]]).astype(float)
        dof = len(rows) - X.shape[1]
        for key in ("alpha_greedy", "alpha_t1"):
            a = np.clip([r[key] for r in rows], 1e-4, 1 - 1e-4)
            y = np.log(a / (1 - a))
            b, *_ = np.linalg.lstsq(X, y, rcond=None)
            s2 = float(np.sum((y - X @ b) ** 2) / dof) if dof > 0 else float("nan")
            se = np.sqrt(np.diag(s2 * np.linalg.pinv(X.T @ X))) if dof > 0 else np.full(len(b), np.nan)
            t = float(stats.t.ppf(0.975, dof)) if dof > 0 else float("nan")
            out.setdefault("pooled", {"baseline_shape": shapes[0], "n": len(rows)})[key] = {
                nm: {"coef": float(b[i]), "ci95": [float(b[i] - t * se[i]), float(b[i] + t * se[i])]} for i, nm in enumerate(names)}
    return out


def _host_summary(h: dict | None) -> dict | None:
    if not h:
        return None
    return {"model": h["model"], "rules": h["rules"],
            "protocol_forwards_equal_measured": [r["protocol_forwards_equal_measured"] for r in h["runs"]],
            **{k: {kk: (vv if kk != "rows" else {f"{x['draft']} γ={x['gamma']} ({x['role']})":
                                                 [round(x["error_pct"], 2), round(x["iteration_error_pct"], 2),
                                                  round(x["acceptance_error_pct"], 2)] for x in vv})
                   for kk, vv in v.items()} for k, v in h["splits"].items()},
            "rows_legend": "tokens/s error %, iteration error %, acceptance (set A, HF protocol) error %"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--gpu", default=None, help="catalog GPU for predict (default: the profile's)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--allow-gpu-mismatch", action="store_true", help="CPU dry run: predict from a CPU profile")
    a = ap.parse_args(argv)
    if a.allow_gpu_mismatch:
        EXTRA.append("--allow-gpu-mismatch")
    data, out = Path(a.data).resolve(), Path(a.out_dir)
    derived = out / "derived"
    derived.mkdir(parents=True, exist_ok=True)
    recs, prompts, z = load(data)
    meta = json.loads((data / "profile.csv.meta.json").read_text())
    gpu, dtype = a.gpu or meta["gpu"], meta["dtype"]
    fam = Fam(recs, out)
    profile = data / "profile.csv"
    loops = loop_rows(fam, recs, prompts, z, profile, gpu, dtype, derived)
    hf = hf_rows(fam, recs, prompts, z, profile, gpu, dtype, derived)
    med = lambda xs: float(np.median(np.abs(xs))) if len(xs) else float("nan")  # noqa: E731
    summary = {"gpu": meta.get("gpu_name", gpu), "loop_points": len(loops),
               "loop_median_abs_error_pct": med([r["error_pct"] for r in loops]),
               "loop_p90_abs_error_pct": float(np.percentile(np.abs([r["error_pct"] for r in loops]), 90)) if loops else None,
               "loop_latency_only_median_abs_error_pct": med([r["latency_only_error_pct"] for r in loops]),
               "loop_acceptance_only_median_abs_error_pct": med([r["acceptance_only_error_pct"] for r in loops]),
               "loop_acceptance_only_errors_pct": [round(r["acceptance_only_error_pct"], 2) for r in loops],
               "target_alone": target_alone(fam, recs, profile, gpu, dtype, derived, loops),
               "loop_latency_calibrated": (lc := loop_calibrated(fam, loops, profile, gpu, dtype, derived)),
               "loop_latency_calibrated_heldout_median_abs_error_pct": med([r["error_pct"] for r in lc if not r["in_fit"]]),
               "pi90_coverage": [sum(r["pi90_covers_measured"] for r in loops), len(loops)],
               "predict_band_coverage_tok_s": [sum(r["predict_band_covers_measured"] for r in loops), len(loops)],
               "replay_equals_loop_prompts": [sum(r["replay_B_equals_loop_prompts"] for r in loops), sum(r["prompts"] for r in loops)],
               "hf_heldout_median_abs_error_pct": med([r["error_pct"] for r in hf if not r["in_fit"]]),
               "hf_fit_median_abs_error_pct": med([r["error_pct"] for r in hf if r["in_fit"]]),
               "hf_prompts": hf[0]["prompts"] if hf else 0,
               "hf_recipe_split_posthoc": {f"{r['draft']} γ={r['gamma']}{'' if r['in_fit'] else ' (held out)'}": round(r["error_pct"], 2)
                                           for r in (hf_rows(fam, recs, prompts, z, profile, gpu, dtype, derived, split="recipe"))},
               "hf_errors_pct": {f"{r['draft']} γ={r['gamma']}{'' if r['in_fit'] else ' (held out)'}": round(r["error_pct"], 2) for r in hf},
               "hf_acceptance_only_errors_pct": [round(r["acceptance_only_error_pct"], 2) for r in hf],
               "hf_tokens_per_iteration_vs_same_prompts_replay_pct": [round(r.get("hf_vs_same_prompts_replay_pct", float("nan")), 2) for r in hf],
               "hf_target_forwards_protocol_replay_vs_measured": [[r.get("hf_protocol_replay_forwards"), r["target_forwards"]] for r in hf],
               "hf_prompts_equal_protocol_replay": [r.get("hf_prompts_equal_protocol_replay") for r in hf],
               "hf_acceptance_only_errors_pct_hf_protocol": [round(r.get("hf_protocol_A_acceptance_error_pct", float("nan")), 2) for r in hf],
               "loop_bookkeeping": loop_bookkeeping(fam, recs, loops, profile, gpu, dtype, derived,
                                                    target_alone(fam, recs, profile, gpu, dtype, derived, loops)),
               "hf_host_model": _host_summary(hf_host(fam, recs, prompts, z, profile, gpu, dtype, derived)),
               "second_finding": second_finding(fam, prompts, z)}
    with (out / "results.csv").open("w", newline="") as f:
        cols = sorted({k for r in loops + hf for k in r})
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in loops + hf:
            w.writerow(r)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "second_finding"}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
