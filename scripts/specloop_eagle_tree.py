"""GPU validation of the method seam (issue 28): specperf's own loop with an EAGLE-style head fitted
in seconds to a miniature target, as chains (γ 2..5) and as token trees (sizes 6..24, the tree from
the head's measured per-depth, per-rank acceptance by Sequoia's DP), against the prediction
perfmodel.specdec.heads.FeatureHead / tree_method.TokenTree compose from the same GPU's component
timings (target forward over n tokens; head step over n tokens, the proposal's argmax and its mask
included, as the loop runs it; verification overhead; for trees, the tree iteration's own work
timed with its forwards stubbed — profiler.specloop_tree.time_tree_bookkeeping — fed through the
provider's `tree_overhead_s`).

  PYTHONPATH=. python3 scripts/specloop_eagle_tree.py --out DIR --budget-s 150   # CUDA, ≤ ~3 min, 2 rounds
  PYTHONPATH=. python3 scripts/specloop_eagle_tree.py --out DIR --smoke          # CPU, tiny shapes, seconds

The target (random weights) has its residual writes damped (DAMP, profiler.head_training) so that its
next token is learnable; the head (fc solved by least squares of EAGLE's feature regression, then
Adam on EAGLE's loss, kept if a held-out sequence agrees as often) is measured, never planted: its
rank acceptance comes from running the loop. Writes DIR/specloop_eagle_tree.json after every phase:
component timings, the head's fit (training accuracy, held-out agreement) and rank acceptance, and
per run measured vs predicted tokens/s — `error_pct` at the run's measured tokens per iteration (the
cost model alone), `error_pct_full` with tokens per iteration predicted from the measured rank
acceptance as well (the whole prediction) — and tokens per iteration. Eager mode, batch 1, fp16 on
CUDA. Key assumption: the timed components are the loop's own functions, so this checks the seam's
composition (catch-up over γ+1 positions, one step per chain token or tree level, one verification
over γ+1 tokens, overhead) — consistency with specperf's loop, not accuracy against an engine.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from specperf.perfmodel.latency.base import ComponentTimes
from specperf.perfmodel.latency.source import Provenance
from specperf.perfmodel.specdec.heads import FeatureHead
from specperf.perfmodel.specdec.tree_method import TokenTree
from specperf.perfmodel.specdec.trees import best_tree, expected_tokens
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.profiler.blocks import DecoderModel
from specperf.profiler.head_training import damp_residual, fit_head, training_data
from specperf.profiler.specloop_tree import EagleHead, HeadLoop, target_forward, time_tree_bookkeeping

FULL = "llama-7b:n_layers=16"  # miniature target: LLaMA-7B width (4096, 32 heads, d_ff 11008), 16 layers, vocab 32000
SMOKE = "llama-7b:n_layers=2,d_model=64,n_heads=4,n_kv_heads=2,d_ff=128,vocab=97"
# the target's residual writes are scaled by DAMP (profiler.head_training.damp_residual): its next token is
# then mostly a function of the current one, which a head can learn in seconds. Chosen on the CPU (fp32,
# random text) for this shape: the target's argmax equals the context-free argmax lm(norm(emb(x_t))) for
# 20 % of 96 random tokens at 0.05, 43 % at 0.03, 58 % at 0.02, 67 % at 0.015; the head's measured
# acceptance is whatever the loop then shows. The timings do not depend on it (same shapes and kernels).
DAMP = 0.02
DAMP_SMOKE = 0.2  # the smoke target (2 layers, vocab 97): a mix of accepted ranks 0-3 on the CPU
# tree shapes when the head's measured acceptance fills too few nodes (a random-weight target is hard to
# predict): a typical per-depth, per-rank profile, so the loop still drafts and verifies n-token trees
SHAPE_ACCEPTANCE = [[0.6, 0.15, 0.08, 0.04], [0.55, 0.14, 0.07, 0.03], [0.5, 0.12, 0.06, 0.03]]


def timer(device):
    def run(fn, reps):
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            out = []
            for _ in range(reps):
                s.record()
                fn()
                e.record()
                e.synchronize()
                out.append(s.elapsed_time(e) / 1e3)
            return float(np.median(out))
        out = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return float(np.median(out))
    return run


class Measured:
    """A LatencyProvider answering the head, its projection and the target from this run's timings
    (context interpolated linearly); the head step's time is carried whole by its layer component."""
    name = "own-loop component timings"

    def __init__(self, target_spec, t_target, t_head, t_over, contexts, t_tree=None):
        self.ts, self.tt, self.th, self.to, self.ctx = target_spec, t_target, t_head, t_over, np.asarray(contexts, float)
        self.t_tree = t_tree or {}  # Tree → seconds of its own per-iteration work

    def _at(self, table, n, context):
        n = int(np.max(n))
        return np.interp(np.asarray(context, float), self.ctx, table[n])

    def forward(self, spec, batch, new_tokens, context, tp=1, mode="eager"):
        src = {k: Provenance.of("measured", file="this run") for k in ("layer", "lm_head", "allreduce")}
        zero = 0.0 * np.asarray(context, float) * np.asarray(batch, float)
        if "projection" in spec.name:  # inside the measured head step
            return ComponentTimes(zero, zero, zero, 1, src)
        if "head" in spec.name:
            return ComponentTimes(self._at(self.th, new_tokens, context) + zero, zero, zero, 1, src)
        return ComponentTimes(self._at(self.tt, new_tokens, context) / spec.n_layers + zero, zero, zero,
                              spec.n_layers, src)

    def overhead_s(self, spec, batch, gamma, mode="eager"):
        g = int(np.max(gamma))
        return np.asarray(self.to.get(g + 1, self.to[min(self.to)])) + 0.0 * np.asarray(batch, float), \
            Provenance.of("measured", file="this run")

    def tree_overhead_s(self, spec, batch, tree, mode="eager"):
        """The tree iteration's own work, timed with its forwards stubbed (TokenTree's hook)."""
        s = np.asarray(self.t_tree[tree]) + 0.0 * np.asarray(batch, float)
        return s, Provenance.of("measured", file="this run")


def plan_runs(rank_acc, tree_sizes, gammas=(2, 3, 4, 5)):
    """([(kind, γ or tree tokens, Tree or None, acceptance shaping it)], notes): chains of `gammas` and,
    per size n, the best tree of n tokens (≤ 6 levels) for the measured rank acceptance — or, where it
    fills fewer than n tokens, the tree SHAPE_ACCEPTANCE gives (noted). Chains and trees alternate, so
    a run cut by the budget keeps both."""
    runs, notes = [("chain", g, None, None) for g in gammas], []
    for n in tree_sizes:
        shape = np.asarray(rank_acc)
        t = best_tree(shape, n, 6)
        if t.size < n:  # too little measured acceptance to fill n tokens: the tree's shape from a fixed profile
            shape = np.asarray(SHAPE_ACCEPTANCE)
            t = best_tree(shape, n, 6)
            notes.append(f"tree {n}: shaped by SHAPE_ACCEPTANCE (the measured acceptance fills fewer tokens); "
                         "its expected tokens still use the measured one")
        runs.append(("tree", n, t, shape))
    chains, trees = runs[:len(gammas)], runs[len(gammas):]
    order = [r for pair in zip(chains, trees) for r in pair] + chains[len(trees):] + trees[len(chains):]
    return order, notes


def save(out: Path, doc: dict) -> None:
    """Write what has been measured so far (atomically): a run killed midway keeps it."""
    tmp = out / ".specloop_eagle_tree.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, out / "specloop_eagle_tree.json")


def per_run_errors(rows):
    """(|error_pct|, |error_pct_full|) per run (kind, size): measured tok/s is the median over its rounds."""
    by: dict = {}
    for r in rows:
        by.setdefault((r["kind"], r["gamma_or_tree_tokens"]), []).append(r)
    errs, full = [], []
    for rs in by.values():
        m = float(np.median([r["measured_tok_s"] for r in rs]))
        errs.append(abs(100 * (rs[0]["predicted_tok_s_at_measured_tpi"] / m - 1)))
        if rs[0]["predicted_tokens_per_iteration"] is not None:
            full.append(abs(100 * (rs[0]["predicted_tokens_per_iteration"] / rs[0]["predicted_iteration_s"] / m - 1)))
    return errs, full


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny shapes (a check that the script runs)")
    ap.add_argument("--budget-s", type=float, default=100.0,
                    help="stop starting new runs after this many seconds (what ran is kept; default 100)")
    ap.add_argument("--rounds", type=int, default=2, help="passes over the runs, alternating order (default 2)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    log = lambda what: print(f"[{time.monotonic() - t0:6.1f} s] {what}", flush=True)  # noqa: E731
    dev = torch.device("cpu" if a.smoke or not torch.cuda.is_available() else "cuda")
    if dev.type == "cpu":
        torch.set_num_threads(1)  # a shared CPU: one thread keeps timings comparable
    dtype = "fp32" if dev.type == "cpu" else "fp16"
    spec = resolve_model(SMOKE if a.smoke else FULL)
    P, NEW, CTX = (12, 32, 256) if a.smoke else (256, 192, 1024)
    doc = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "torch": torch.__version__,
           "target": spec.name, "dtype": dtype, "mode": "eager", "batch": 1, "prompt_tokens": P, "new_tokens": NEW,
           "budget_s": a.budget_s, "phase": "start", "rows": []}
    torch.manual_seed(0)
    target = DecoderModel(spec, max_context=CTX, dtype=dtype, device=dev, seed=3)
    doc["damp_residual"] = DAMP_SMOKE if a.smoke else DAMP
    damp_residual(target, doc["damp_residual"])
    head = EagleHead(target, CTX, dtype=dtype, device=dev)
    log("models built; training the head")
    # greedy texts and random sequences of the target's own forwards; one more random sequence held out
    shape = (2, 32, 24, 32) if a.smoke else (2, 64, 128, 256)  # greedy texts × tokens, random sequences × tokens
    data = training_data(target, *shape, seed=0)
    heldout = training_data(target, 0, 0, 1, shape[3], seed=1)[0]
    fit = fit_head(target, head, data, heldout, steps=60 if a.smoke else 300, lr=1e-3 if a.smoke else 1e-4,
                   max_s=None if a.smoke else 15.0)
    doc["head_fit"] = fit
    doc["head_train_accuracy"] = fit["accuracy"]
    doc["head_heldout_agreement"] = max(fit["heldout_agreement_lsq"], fit["heldout_agreement_adam"])
    doc["train_s"] = time.monotonic() - t0
    doc["phase"] = "trained"
    save(out, doc)
    log(f"head trained (training accuracy {fit['accuracy']:.3f}, held-out agreement "
        f"{doc['head_heldout_agreement']:.3f}, kept {fit['kept']}); measuring rank acceptance")
    prompts = [torch.randint(0, spec.vocab, (1, P), generator=torch.Generator().manual_seed(100 + i)).to(dev)
               for i in range(2 if a.smoke else 3)]

    cal = HeadLoop(target, head, gamma=6)  # per-depth, per-rank acceptance of the trained head
    for pr in prompts:
        cal.generate(pr, NEW)
    rank_acc = np.minimum(cal.rank_acceptance()[:, :4], 1.0)
    doc["rank_acceptance"] = rank_acc.tolist()
    doc["phase"] = "rank acceptance"
    save(out, doc)
    runs, notes = plan_runs(rank_acc, (6, 10) if a.smoke else (6, 10, 16, 24))
    if notes:
        doc.setdefault("notes", []).extend(notes)
    log(f"rank acceptance {np.round(rank_acc[:, 0], 3).tolist()}; timing components")

    # component timings at contexts spanning the runs
    ctxs = [P, P + NEW // 2, P + NEW]
    ns = sorted({1} | {g + 1 for k, g, _, _ in runs if k == "chain"} | {t.size + 1 for _, _, t, _ in runs if t is not None}
                | {w for _, _, t, _ in runs if t is not None for w in t.widths()} | set(range(1, 8)))
    time_fn = timer(dev)
    reps = 3 if a.smoke else 20
    tt, th, to, pick, mk = {}, {}, {}, {}, {}
    d = spec.d_model
    slots = torch.arange(CTX, device=dev)
    mask = lambda s: (slots[None, :] <= s[:, None])[None, None]  # noqa: E731 — built per forward, as the loop does
    with torch.no_grad():
        for n in ns:
            tt[n], th[n] = [], []
            for c in ctxs:
                s = torch.arange(c, c + n, device=dev)
                x = torch.randint(0, spec.vocab, (1, n), device=dev)
                f = torch.randn(1, n, d, device=dev, dtype=head.fc.dtype)
                lgn = torch.randn(n, spec.vocab, device=dev, dtype=head.fc.dtype)
                tt[n].append(time_fn(lambda: target_forward(target, x, s, s, mask(s)), reps))
                # a head step as the loop runs it: pick the proposal from the last logits, then the forward
                th[n].append(time_fn(lambda: head(lgn.argmax(-1)[None], f, s, s, mask(s)), reps))
            lg = torch.randn(n, spec.vocab, device=dev, dtype=head.fc.dtype)
            to[n] = time_fn(lambda: lg.argmax(-1).tolist(), reps)
            # the parts of th (the pick and its mask) and tt (its mask) that are not forwards
            pick[n] = time_fn(lambda: (lgn.argmax(-1)[None], mask(s)), reps)
            mk[n] = time_fn(lambda: mask(s), reps)
        # a tree iteration's own work (top-k per level, masks, gathers, accept/reject, compaction, the sync),
        # its forwards stubbed; less what th (per expanded level) and tt already charge for picks and masks
        book, tree_ov = {}, {}
        for _, g, tree, _ in runs:
            if tree is not None:
                book[g] = time_tree_bookkeeping(target, head, tree, P + NEW // 2, time_fn, reps)
                tree_ov[tree] = book[g] - sum(pick[w] for w in tree.widths()[:-1]) - mk[tree.size + 1]
    prov = Measured(spec, tt, th, to, ctxs, tree_ov)
    doc.update({"component_contexts": ctxs, "t_target_s": tt, "t_head_step_s": th, "t_overhead_s": to,
                "t_pick_s": pick, "t_mask_s": mk, "t_tree_bookkeeping_s": book,
                "t_tree_overhead_s": {t.size: v for t, v in tree_ov.items()}, "phase": "components"})
    save(out, doc)
    log(f"components timed ({len(ns)} token counts × {len(ctxs)} contexts); runs")

    rows = doc["rows"]
    # rounds: the plan forwards, then reversed (a host that slows during the runs shows as a round-to-round
    # difference, not as an error of the long runs); the summary takes each run's median over rounds
    order = [(r, x) for r in range(a.rounds) for x in (runs if r % 2 == 0 else runs[::-1])]
    for rnd, (kind, g, tree, shape) in order:
        if time.monotonic() - t0 > a.budget_s:
            doc.setdefault("notes", []).append(f"budget {a.budget_s:.0f} s reached: {kind} {g} and later runs not run")
            log(f"budget reached before {kind} {g}")
            break
        loop = HeadLoop(target, head, gamma=g if tree is None else 1, tree=tree, record_ranks=False)
        emitted, secs, iters = 0, 0.0, 0
        for pr in prompts:
            r = loop.generate(pr, NEW, time_it=True)
            emitted += r["emitted"]
            secs += float(np.sum(r["iteration_s"]))
            iters += r["iterations"]
        tpi = emitted / iters
        method = FeatureHead("eagle") if tree is None else TokenTree(FeatureHead("eagle"), tuple(map(tuple, shape)), 6)
        assert tree is None or method.tree(g) == tree  # the prediction prices the tree that ran
        c = method.costs(prov, spec, [1], [P + NEW // 2], [g], 1, "eager").at(0, 0)
        pred_it = float(c.iteration_s()[0])
        row = {"round": rnd, "kind": kind, "gamma_or_tree_tokens": g, "measured_tok_s": emitted / secs,
               "measured_iteration_s": secs / iters, "measured_tokens_per_iteration": tpi,
               "predicted_iteration_s": pred_it, "predicted_tok_s_at_measured_tpi": tpi / pred_it,
               "expected_tokens_per_iteration": float(expected_tokens(tree, rank_acc)) if tree is not None else None,
               "tree_widths": list(tree.widths()) if tree is not None else None}
        row["error_pct"] = 100 * (row["predicted_tok_s_at_measured_tpi"] / row["measured_tok_s"] - 1)
        # the whole prediction: tokens per iteration from the measured rank acceptance too (chain: rank 0 only)
        e_tpi = row["expected_tokens_per_iteration"] if tree is not None else \
            float(1 + np.sum(np.cumprod(rank_acc[:g, 0]))) if g <= rank_acc.shape[0] else None
        row["predicted_tokens_per_iteration"] = e_tpi
        row["error_pct_full"] = None if e_tpi is None else 100 * ((e_tpi / pred_it) / row["measured_tok_s"] - 1)
        rows.append(row)
        errs, full = per_run_errors(rows)
        doc.update({"phase": f"{len(rows)} of {len(order)} runs", "median_abs_error_pct": float(np.median(errs)),
                    "median_abs_error_pct_full": float(np.median(full)) if full else None,
                    "wall_s": time.monotonic() - t0})
        save(out, doc)
        log(f"{kind} {g}: {row['measured_tok_s']:.1f} tok/s measured, error {row['error_pct']:+.1f} %")
    with torch.no_grad():  # drift: the target's 1-token forward again, after every run
        s = torch.arange(ctxs[1], ctxs[1] + 1, device=dev)
        x = torch.randint(0, spec.vocab, (1, 1), device=dev)
        doc["t_target_1_after_runs_s"] = time_fn(lambda: target_forward(target, x, s, s, mask(s)), reps)
    doc["t_target_1_before_runs_s"] = tt[1][1]
    doc["wall_s"] = time.monotonic() - t0
    doc["phase"] = "done" if len(rows) == len(order) else doc["phase"]
    save(out, doc)
    print(json.dumps({k: doc.get(k) for k in ("median_abs_error_pct", "median_abs_error_pct_full", "wall_s", "phase")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
