"""One call from user-level inputs to the optimiser's full answer document: candidates (catalog,
config.json, NAME:field=value shapes, design space), acceptance (files, stated pairs, α model),
rankings per mode × batch × context, mode comparison, lookahead policy, break-even map, export.

Key assumption: this module only wires the pieces together; every number comes from
perfmodel.optimize.search / optimize_report / optimize_policy and the latency provider given.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from specperf.perfmodel.specdec import alpha_model as am
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.optimize.export import check_engine, export_config
from specperf.perfmodel.optimize.search import make_candidates
from specperf.perfmodel.optimize.policy import mode_comparison, policy, policy_draft
from specperf.perfmodel.optimize.report import find_candidate, optimize, ranking
from specperf.perfmodel.optimize.space import LLAMA_FFN_RATIO, assign_acceptance, design_space
from specperf.perfmodel.specs.models import SpecError


@dataclass
class OptimizeRequest:
    target: str
    drafts: list = field(default_factory=list)
    layers: list | None = None
    d_models: list | None = None
    ffn_ratios: list | None = None
    head_dims: list | None = None
    kv_heads: list | None = None
    acceptance: list = field(default_factory=list)  # [(draft string or None, path)]
    alpha_doc: dict | None = None  # from alpha_model.read_alpha_document
    alpha: float | None = None
    batch: list = field(default_factory=lambda: [1])
    context: list = field(default_factory=lambda: [512])
    gamma_max: int = 12
    tp: int = 1
    modes: tuple = ("graph", "eager")
    top: int = 5
    reference: str | None = None
    policy_draft: str | None = None
    emit: str | None = None
    dtype_bytes: int = 2
    memory_bytes: float | None = None  # one GPU's memory: cells that do not fit are flagged
    allow_tokenizer_mismatch: bool = False  # --emit for a draft whose vocabulary differs from the target's
    draft_catchup: bool = False  # each draft's first step feeds 2 tokens (predict --draft-catchup)
    methods: tuple = ("draft",)  # --method: speculation methods ranked side by side (registry names)
    tree: tuple | None = None  # --tree: rank acceptance rows; each tree-capable method also ranks as a token tree
    tree_depth: int | None = None
    tree_n: tuple | None = None  # effective paths per depth behind --tree's rows (their interval)


def _origin(text: str) -> str:
    if ":" in text:
        return "shape"
    return "catalog" if resolve_model(text).source.startswith("https://huggingface.co/") else "config"


def _acceptance_inputs(req: OptimizeRequest):
    out = []
    from specperf.perfmodel.optimize.run_methods import split_acceptance

    for name, path in split_acceptance(req.acceptance)[0]:
        acc = AcceptanceModel.load(path)
        draft = name or acc.extra.get("draft")
        if not draft:
            raise SpecError(f"acceptance file {path!r} does not say which draft it is for; "
                            "write --acceptance DRAFT=FILE or put a 'draft' field in the file")
        out.append((resolve_model(str(draft), req.dtype_bytes), acc, path))
    return out


def _alpha_model(req: OptimizeRequest, target):
    doc = req.alpha_doc
    if doc is None:
        return am.default_model(), []
    if "coefficients" in doc and not doc.get("pairs"):
        return am.model_from_coefficients(doc), []
    stated, xs, ys = [], [], []
    for r in doc["pairs"]:
        spec = resolve_model(str(r["draft"]), req.dtype_bytes)
        try:
            a = float(r["alpha"])
            ci = tuple(float(v) for v in r["alpha_ci"]) if r.get("alpha_ci") else None
        except (TypeError, ValueError):
            raise SpecError(f"alpha-model pair for {r['draft']!r}: alpha/alpha_ci must be numbers") from None
        if not 0.0 < a < 1.0 or (ci and not (0.0 <= ci[0] <= a <= ci[1] <= 1.0)):
            raise SpecError(f"alpha-model pair for {r['draft']!r}: alpha={a} must be in (0, 1) "
                            "and inside alpha_ci")
        stated.append((spec, a, ci, str(doc.get("source"))))
        xs.append(am.features(am.nonembedding_params(spec), am.nonembedding_params(target), spec.n_layers))
        ys.append(a)
    model = am.fit(np.array(xs), np.array(ys), source=f"fit to {len(ys)} stated pairs in {doc.get('source')}",
                   alpha_ci=[ci for _, _, ci, _ in stated], depth="auto",
                   pairs=tuple((s.name, a) for s, a, _, _ in stated))
    return model, stated


def run(req: OptimizeRequest, provider, draft_provider=None) -> dict:
    """The optimiser's answer as one JSON-ready document (finite-or-None values)."""
    if req.emit is not None:
        check_engine(req.emit)
    target = resolve_model(req.target, req.dtype_bytes)
    if "draft" not in req.methods:
        return _methods_only(req, target, provider, draft_provider)
    drafts = [resolve_model(d, req.dtype_bytes) for d in req.drafts]
    design, skipped = None, []
    if req.layers is not None or req.d_models is not None:
        if not req.layers or not req.d_models:
            raise SpecError("a design space needs both --layers and --d-model")
        design, skipped = design_space(target, req.layers, req.d_models,
                                       req.ffn_ratios or (LLAMA_FFN_RATIO,), req.head_dims,
                                       req.kv_heads, req.dtype_bytes)
    cands = make_candidates(drafts, [d.name for d in drafts], [_origin(t) for t in req.drafts], design)
    model, stated = _alpha_model(req, target)
    acc = assign_acceptance(cands, target, model, _acceptance_inputs(req), stated, req.alpha)
    gammas = list(range(1, req.gamma_max + 1))
    res = optimize(target, cands, acc, provider, req.batch, req.context, gammas, req.tp, req.modes, draft_provider,
                   req.memory_bytes, req.draft_catchup)
    ref = find_candidate(res, req.reference, lambda s: resolve_model(s, req.dtype_bytes))
    doc = {"target": target.name, "tp": req.tp, "modes": list(req.modes), "batch": res.batch.tolist(),
           "context": res.context.tolist(), "gammas": res.gammas.tolist(),
           "n_candidates": len(cands), "n_design_points": len(design) if design else 0,
           "design_skipped": sorted(set(skipped)), "alpha_model": model.to_dict(),
           "reference": cands.name(ref) if ref is not None else None,
           "sources": {m: r.costs.sources for m, r in res.modes.items()}, "draft_catchup": req.draft_catchup,
           "notes": list(acc.notes)}
    doc["rankings"] = [ranking(res, m, bi, ci, req.top, ref) for m in req.modes
                       for bi in range(res.batch.size) for ci in range(res.context.size)]
    doc["mode_comparison"] = mode_comparison(res, ref) if len(req.modes) > 1 else None
    pol_idx = {}
    for m in req.modes:
        pol_idx[m] = (find_candidate(res, req.policy_draft, lambda s: resolve_model(s, req.dtype_bytes))
                      if req.policy_draft else policy_draft(res, m))
    doc["policy"] = [policy(res, m, pol_idx[m]) for m in req.modes]
    doc["methods"], winner = None, None
    if len(req.methods) > 1 or req.tree:
        doc["methods"] = _methods(req, target, res, pol_idx, provider, draft_provider)
        winner = doc["methods"].pop("_method")
    if req.emit and (winner is None or winner.name == "draft_model"):
        doc["export"] = _export(req, res, target, doc["policy"], pol_idx)
    elif req.emit:
        doc["export"] = _export_method(req, target, doc["methods"], winner)
    return doc


def _methods(req: OptimizeRequest, target, res, pol_idx: dict, provider, draft_provider) -> dict:
    from specperf.perfmodel.optimize.run_methods import methods_section, split_acceptance

    sec = methods_section(req, target, res, split_acceptance(req.acceptance)[1], pol_idx, provider, draft_provider)
    ents = sec.pop("_entries")
    win = next(e for e in ents if e["label"] == sec["winner"])
    sec["winner_method"] = win["method"].name
    sec["_method"] = win["method"]
    return sec


def _methods_only(req: OptimizeRequest, target, provider, draft_provider) -> dict:
    """--method without draft: the methods' ranking alone (no draft candidates)."""
    sec = _methods(req, target, None, {}, provider, draft_provider)
    winner = sec.pop("_method")
    doc = {"target": target.name, "tp": req.tp, "modes": list(req.modes), "batch": list(req.batch),
           "context": list(req.context), "gammas": list(range(1, req.gamma_max + 1)), "n_candidates": 0,
           "n_design_points": 0, "design_skipped": [], "alpha_model": None, "reference": None, "sources": {},
           "draft_catchup": req.draft_catchup, "notes": [], "rankings": [], "mode_comparison": None,
           "policy": [], "methods": sec}
    if req.emit:
        doc["export"] = _export_method(req, target, sec, winner)
    return doc


def _export_method(req: OptimizeRequest, target, sec: dict, method) -> dict:
    from specperf.perfmodel.optimize.export_methods import export_method
    from specperf.perfmodel.optimize.run_methods import batch_schedule

    sched = batch_schedule(sec["schedule"])
    best = [g for _, _, g in sched if g > 0]
    if not best:
        raise SpecError(f"emit={req.emit!r}: the best method ({sec['winner']}) loses to autoregressive decoding at "
                        "every batch searched; do not enable speculation", value=req.emit, allowed="no export")
    gamma = best[0]  # the smallest batch's γ (HF runs batch 1)
    doc = export_method(req.emit, target, _origin(req.target), method, int(gamma), req.tp, sec["mode"],
                        sched if req.emit == "vllm" and len({g for _, _, g in sched}) > 1 else None)
    doc["draft"] = sec["winner"]
    doc["gamma_table"] = sched
    return doc


def _export(req: OptimizeRequest, res, target, policies: list[dict], pol_idx: dict) -> dict:
    from specperf.perfmodel.optimize.export import ENGINE_MODE

    prefer = ENGINE_MODE[req.emit]
    mode = prefer if prefer in req.modes else req.modes[0]
    pol = next(p for p in policies if p["mode"] == mode)
    i = pol_idx[mode]
    draft = res.cands.spec(i)
    origin = str(res.cands.origin[i])
    notes = [] if mode == prefer else [f"γ from {mode} mode: {req.emit} runs {prefer} mode by default; add --mode {prefer}"]
    if req.emit == "hf":
        small = [c for c in pol["cells"] if c["batch"] == int(res.batch.min())]
        gamma = small[0]["gamma"]
        if int(res.batch.min()) != 1:
            notes.append("HF assisted decoding runs batch 1; the grid's smallest batch was used for γ")
    else:
        gamma = pol["export_gamma"]
    disable, more = _disable_threshold(pol["cells"])
    notes += more
    if draft.vocab != target.vocab and not req.allow_tokenizer_mismatch:
        raise SpecError(f"emit={req.emit!r} for draft {res.cands.name(i)!r}: its vocab {draft.vocab} differs from the "
                        f"target's {target.vocab}, so no engine can run the pair; pick a same-tokenizer draft "
                        "(--policy-draft) or pass --allow-tokenizer-mismatch", value=draft.vocab,
                        allowed=f"vocab {target.vocab}")
    target_origin = _origin(req.target)
    from specperf.perfmodel.optimize.run_methods import batch_schedule

    sched = batch_schedule([{"batch": c["batch"], "context": c["context"], "gamma": c["gamma"],
                             "verdict": c["advice"]} for c in pol["cells"]])
    doc = export_config(req.emit, target, target_origin, draft, origin, int(gamma), req.tp, mode,
                        disable if req.emit == "vllm" else None, pol["gamma_table"],
                        sched if req.emit == "vllm" and len({g for _, _, g in sched}) > 1 else None)
    doc["notes"] = doc["notes"] + notes
    doc["draft"] = res.cands.name(i)
    return doc


def _disable_threshold(cells: list[dict]) -> tuple[int | None, list[str]]:
    """vLLM's disable_by_batch_size from the break-even map (cells that fit in memory): set only when
    speculation loses at every batch above some size and wins below it — the one shape it can express."""
    use = [c for c in cells if c["fits_memory"]] or cells
    batches = sorted({c["batch"] for c in use})
    off = {b: all(c["verdict"] == "off" for c in use if c["batch"] == b) for b in batches}
    lost = [b for b in batches if off[b]]
    if not lost:
        return None, []
    if len(lost) == len(batches):
        return None, ["speculation loses at every batch and context searched: do not enable it"]
    first = min(lost)
    if all(off[b] for b in batches if b >= first):
        last_win = max(b for b in batches if b < first)
        return last_win, [f"speculation loses at batch ≥ {first} at every context searched; break-even lies "
                          f"between batch {last_win} and {first} (grid points only)"]
    return None, [f"speculation loses at batch {', '.join(map(str, lost))} but wins at others: vLLM's "
                  "disable_by_batch_size can only switch it off above one size, so it is not set"]
