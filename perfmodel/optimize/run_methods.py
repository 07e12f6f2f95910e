"""`optimize --method draft,eagle3,ngram …`: the methods' acceptance (files named by method, or the
one stated α), the side-by-side ranking (perfmodel.optimize.methods_rank), the winning method and
its per-batch γ schedule, and its engine export (perfmodel.optimize.export_methods).

Key assumption: the draft-model entry is the draft the lookahead policy uses (best geometric-mean
speedup, or --policy-draft), with its acceptance as the draft ranking assigned it; n-gram acceptance
comes from a trace only (a file), never from a stated α. A head's acceptance: --acceptance KEY=FILE
or KEY=α, else the published figures of perfmodel.specdec.head_alpha (flagged "published prior"),
else (Medusa: none published here) --alpha — which otherwise states the draft models' α.
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.optimize.confidence import _acceptance
from specperf.perfmodel.optimize.methods_rank import rank_methods
from specperf.perfmodel.specdec.acceptance import AcceptanceModel, check_alpha
from specperf.perfmodel.specdec.head_alpha import published_acceptance
from specperf.perfmodel.specdec.registry import ALIASES, METHODS, make_method
from specperf.perfmodel.specs.models import SpecError


def split_acceptance(items: list) -> tuple[list, dict]:
    """(draft items, {method key: path}) from --acceptance NAME=FILE items (NAME a method name)."""
    drafts, methods = [], {}
    for name, path in items:
        key = ALIASES.get(str(name).lower(), str(name).lower()) if name else None
        if key in METHODS and key != "draft_model":
            methods[key] = path
        else:
            drafts.append((name, path))
    return drafts, methods


def method_acceptance(key: str, files: dict, alpha: float | None) -> AcceptanceModel:
    """--acceptance KEY=FILE (or KEY=α, stated), else (heads) the published prior, else --alpha."""
    method = make_method(key)
    if key in files:
        stated = _number(files[key])
        if stated is not None:
            if getattr(method, "acceptance_from_traces_only", False):
                raise SpecError(f"method={key!r} takes acceptance from traces only: give --acceptance {key}=FILE, "
                                f"not a stated α ({files[key]})", value=files[key], allowed=f"--acceptance {key}=FILE")
            return AcceptanceModel(alpha=check_alpha(stated, f"--acceptance {key}"), source=f"--acceptance {key}=α")
        return AcceptanceModel.load(files[key])
    if getattr(method, "acceptance_from_traces_only", False):
        raise SpecError(f"method={key!r} takes acceptance from traces only: give --acceptance {key}=FILE "
                        "(from specperf calibrate acceptance)", value=key, allowed=f"--acceptance {key}=FILE")
    prior = published_acceptance(key)  # a head's published figures, flagged as such in every answer
    if prior is not None:  # --alpha states a draft's α; a head's own is --acceptance KEY=α
        return prior
    if alpha is None:
        raise SpecError(f"method={key!r} needs an acceptance: --acceptance {key}=FILE|α or --alpha "
                        "(no published figure is carried for it)", value=key, allowed=f"--acceptance {key}=FILE or --alpha")
    return AcceptanceModel(alpha=float(alpha), source="--alpha")


def _number(text) -> float | None:
    try:
        return float(str(text))
    except ValueError:
        return None


def entries(req, res, files: dict, pol_idx: dict, draft_catchup: bool) -> list[dict]:
    """[{label, method, acceptance}] in the order of --method; the draft model from the policy draft."""
    out = []
    for name in req.methods:
        key = ALIASES.get(name, name)
        if key == "draft_model":
            if res is None:
                continue
            i = pol_idx[req.modes[0]]
            out.append({"label": res.cands.name(i), "method": make_method(key, draft=res.cands.spec(i),
                                                                         catchup=draft_catchup),
                        "acceptance": _acceptance(res, i), "index": i})
        else:
            out.append({"label": key, "method": make_method(key), "acceptance": method_acceptance(key, files, req.alpha)})
    if not out:
        raise SpecError("--method lists no method to rank")
    if getattr(req, "tree", None):  # the same proposers drafting Sequoia trees (γ = tree tokens)
        from specperf.perfmodel.specdec.tree_method import TokenTree

        out += [{"label": f"{e['label']} (tree)", "method": TokenTree(e["method"], req.tree, req.tree_depth, req.tree_n),
                 "acceptance": e["acceptance"]} for e in list(out) if hasattr(e["method"], "step_s")]
    return out


def methods_section(req, target, res, files: dict, pol_idx: dict, provider, draft_provider) -> dict:
    """The ranked tables and the winner (best geometric-mean speedup over the export mode's cells)."""
    ents = entries(req, res, files, pol_idx, req.draft_catchup)
    gammas = list(range(1, req.gamma_max + 1))
    tables = rank_methods(ents, target, provider, req.batch, req.context, gammas, req.tp, req.modes, draft_provider)
    prefer = "eager" if req.emit == "hf" else "graph"
    mode = prefer if prefer in req.modes else req.modes[0]
    cells = [t for t in tables if t["mode"] == mode]
    labels = [e["label"] for e in ents]
    score = {lab: float(np.exp(np.mean([np.log(max(next(r["speedup"] for r in t["rows"] if r["label"] == lab), 1e-12))
                                        for t in cells]))) for lab in labels}
    win = max(labels, key=lambda lab: (score[lab], -labels.index(lab)))
    schedule = [{"batch": t["batch"], "context": t["context"],
                 **{k: r[k] for r in t["rows"] if r["label"] == win for k in ("gamma", "speedup", "verdict")}}
                for t in cells]
    return {"tables": tables, "mode": mode, "winner": win, "geomean_speedup": score, "schedule": schedule,
            "_entries": ents}


def batch_schedule(schedule: list[dict]) -> list[tuple[int, int, int]]:
    """vLLM 0.32's num_speculative_tokens_per_batch_size: inclusive batch ranges from 1, each grid batch's
    γ (0 where speculation loses) over (previous grid batch, this batch]; the smallest context's γ."""
    by_batch = {}
    for c in sorted(schedule, key=lambda c: (c["batch"], c["context"])):
        by_batch.setdefault(c["batch"], 0 if c["verdict"] != "speculate" else int(c["gamma"]))
    out, lo = [], 1
    for b in sorted(by_batch):
        out.append((lo, int(b), by_batch[b]))
        lo = int(b) + 1
    return out
