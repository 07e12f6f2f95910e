"""Coverage of the 90 % prediction interval on tokens per iteration for held-out prompts (issue 29),
on measured agreement records (a re-run's agreement.npz + prompts.jsonl), no GPU.

For every draft, kind (greedy; T = 1 sampling) and γ: the calibration and timed prompt sets are pooled
and split again at random **by source file** (a file's windows all fall on one side), calibration
taking as many prompts as set A had; the interval `calibration.replay.interval(..., new_prompts=m)`
from the calibration side is checked against the held-out side's replayed tokens per iteration
(the replay equals specperf's loop on 280/288 prompt runs in re-run 1). The protocol is the loop's:
2 warm-up iterations skipped, 16 counted. The fixed split of the run (A → B) is reported beside it.

    PYTHONPATH=. python -m studies.miniature.heldout_coverage --data studies/miniature/rerun/run1/data

Key assumptions: prompts are exchangeable within the pooled set (three domains, files split at
random), so a random file split is a draw of "new prompts like these"; splits of one record are
dependent, so coverage is reported per draft × kind × γ cell as well as pooled, and the fixed split's
cells (dependent across γ) are counted separately.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

GAMMAS = (1, 2, 3, 4, 6)
SKIP, ITERATIONS = 2, 16


def _file(pid: str) -> str:
    return pid.split(":", 1)[1].rsplit("@", 1)[0]


def _subset(rep, idx):
    return replace(rep, prompts=tuple(rep.prompts[i] for i in idx), domains=tuple(rep.domains[i] for i in idx),
                   iterations=rep.iterations[idx], tokens=rep.tokens[idx], histogram=rep.histogram[idx],
                   truncated=rep.truncated[idx])


def _by_file(rep, idx):
    """The replay's prompts at idx merged per source file: one cluster per file (windows of one file share
    its text, so they are not independent prompts)."""
    sub = _subset(rep, idx)
    keys = [_file(p) for p in sub.prompts]
    u = list(dict.fromkeys(keys))
    g = np.array([u.index(k) for k in keys])
    agg = lambda x: np.stack([x[g == j].sum(axis=0) for j in range(len(u))])  # noqa: E731
    return replace(sub, prompts=tuple(u), domains=tuple(sub.domains[int(np.flatnonzero(g == j)[0])] for j in range(len(u))),
                   iterations=agg(sub.iterations), tokens=agg(sub.tokens), histogram=agg(sub.histogram),
                   truncated=agg(sub.truncated))


def coverage(data: Path, splits: int = 200, seed: int = 0, gammas=GAMMAS, level: float = 0.90,
             cluster: str = "prompt", exclude: tuple = ()) -> dict:
    from specperf.calibration import replay as rp
    from specperf.calibration.agreement import make_record

    z = np.load(data / "agreement.npz")
    prompts = all_prompts = [json.loads(ln) for ln in (data / "prompts.jsonl").read_text().splitlines()]
    prompts = [p for p in prompts if not any(x in p["id"] for x in exclude)]  # a sensitivity check only
    order = [p for p in prompts if p["set"] == "A"] + [p for p in prompts if p["set"] == "B"]
    n_a = sum(p["set"] == "A" for p in prompts)
    files = sorted({_file(p["id"]) for p in order})
    fidx = {f: [i for i, p in enumerate(order) if _file(p["id"]) == f] for f in files}
    drafts = sorted({k.split("/")[0] for k in z.files if not k.startswith("continuation/")})
    rng = np.random.default_rng(seed)
    plans = []  # the same random file splits for every cell
    for _ in range(splits):
        cal = []
        for f in rng.permutation(files):
            if len(cal) >= n_a:
                break
            cal += fidx[f]
        held = sorted(set(range(len(order))) - set(cal))
        plans.append((np.array(sorted(cal)), np.array(held)))
    fixed = (np.arange(n_a), np.arange(n_a, len(order)))
    cells, fixed_rows = [], []
    for d in drafts:
        for kind in ("greedy", "sampling"):
            keep = {s: [i for i, p in enumerate(q for q in all_prompts if q["set"] == s) if p in prompts] for s in ("A", "B")}
            cols = {c: np.concatenate([z[f"{d}/{s}/{kind}/{c}"][keep[s]] for s in ("A", "B")])
                    for c in ("greedy_match", "draft_rank", "accept_prob")}
            rec = make_record([p["id"] for p in order], [p["domain"] for p in order], list(cols["greedy_match"]),
                              list(cols["draft_rank"].astype(np.int64)),
                              list(cols["accept_prob"].astype(float)) if kind == "sampling" else None,
                              {"continuation": "greedy" if kind == "greedy" else "sample"})
            for g in gammas:
                rep = rp.replay(rec, g, skip=SKIP, iterations=ITERATIONS)
                hits, lo_miss, hi_miss = 0, 0, 0
                for cal, held in plans:
                    if cluster == "file":
                        iv = rp.interval(_by_file(rep, cal), "iteration", level, new_prompts=len(_by_file(rep, held).prompts))
                    else:
                        iv = rp.interval(_subset(rep, cal), "iteration", level, new_prompts=len(held))
                    y = _subset(rep, held).tokens_per_iteration
                    lo, hi = iv["prediction_interval"]
                    hits += lo <= y <= hi
                    lo_miss += y < lo
                    hi_miss += y > hi
                cells.append({"draft": d, "kind": kind, "gamma": g, "coverage": hits / splits,
                              "below": lo_miss / splits, "above": hi_miss / splits})
                cal, held = fixed
                if cluster == "file":
                    iv = rp.interval(_by_file(rep, cal), "iteration", level, new_prompts=len(_by_file(rep, held).prompts))
                else:
                    iv = rp.interval(_subset(rep, cal), "iteration", level, new_prompts=len(held))
                y = _subset(rep, held).tokens_per_iteration
                fixed_rows.append({"draft": d, "kind": kind, "gamma": g, "pi90": iv["prediction_interval"], "heldout": y,
                                   "covered": bool(iv["prediction_interval"][0] <= y <= iv["prediction_interval"][1])})
    cov = np.array([c["coverage"] for c in cells])
    by = lambda key: {str(v): float(np.mean([c["coverage"] for c in cells if c[key] == v]))  # noqa: E731
                      for v in dict.fromkeys(c[key] for c in cells)}
    return {"data": str(data), "level": level, "cluster": cluster, "excluded": list(exclude), "splits": splits, "split": "random by source file, calibration "
            f"{n_a} prompts (as set A), held-out the rest", "protocol": {"skip": SKIP, "iterations": ITERATIONS},
            "prompts": len(order), "files": len(files), "drafts": len(drafts), "cells": len(cells),
            "coverage_pooled": float(cov.mean()), "coverage_cell_min": float(cov.min()),
            "coverage_cell_p10": float(np.percentile(cov, 10)), "miss_below": float(np.mean([c["below"] for c in cells])),
            "miss_above": float(np.mean([c["above"] for c in cells])),
            "coverage_by_gamma": by("gamma"), "coverage_by_kind": by("kind"),
            "fixed_split_A_to_B": {"covered": int(sum(r["covered"] for r in fixed_rows)), "of": len(fixed_rows)},
            "cells_detail": cells, "fixed_detail": fixed_rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--splits", type=int, default=200)
    ap.add_argument("--cluster", choices=("prompt", "file"), default="prompt",
                    help="the interval's cluster: each prompt (the shipped interval) or each source file")
    ap.add_argument("--exclude", action="append", default=[],
                    help="drop prompts whose id contains this (a sensitivity check; repeatable)")
    ap.add_argument("--out", default=None, help="write the JSON here (default: print the summary only)")
    a = ap.parse_args(argv)
    res = coverage(Path(a.data), a.splits, cluster=a.cluster, exclude=tuple(a.exclude))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(json.dumps({k: v for k, v in res.items() if not k.endswith("_detail")}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
