"""Latency tables for the explorer page: per (draft, GPU, mode) the draft step time and per (target,
GPU, mode, tp) the verification, target-step and overhead times, over a batch × context × γ grid,
computed in Python by the real latency providers (build_provider) and embedded in the page as JSON.
Each proposer's per-iteration parts (proposal, catch-up) come from its speculation method
(perfmodel.specdec.methods: a draft model, or for each target an EAGLE / EAGLE-3 / MTP / Medusa head
or n-gram lookup), so the page's JavaScript only does tokens per iteration and adds the exported
parts as maths.iteration_time_s does (proposal + catch-up + verification + overhead).

Key assumption: predict's components separate exactly — the draft forward depends only on the draft
(at draft_context(context, γ)), verification, target step and overhead only on the target and tp —
so tables are stored per side and the page combines any draft with any target without loss. Memory
fit uses the rule of perfmodel.optimize.report: target shard + co-located draft, weights + KV cache
for context + γ + 1 tokens, against one GPU's memory (activations are not counted).

Uncertainty (issues 14, 26): per (batch, context, γ) cell each side carries its role's (kind, band)
exactly as perfmodel.specdec.cell_bands reads it for predict (that cell's own sources; the baseline per
(batch, context)), and the page gets propagate's seeded standard normals (`mc`: one stream per source
kind, the acceptance's and the baseline's), so its Monte Carlo uses the same draws and its 90 % bands
equal `predict --json`'s lo/hi.
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.specdec.maths import draft_context
from specperf.perfmodel.specdec.registry import METHODS as REGISTRY, make_method
from specperf.perfmodel.latency.source import KINDS
from specperf.perfmodel.specdec.cell_bands import baseline_query, fill, prefixed, stream
from specperf.perfmodel.specdec.uncertainty import LEVEL, N_DRAWS, Z90, Z95, fallback_band
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.specs.models import SpecError

# the study's case (Yan et al.; README "Worked example"): LLaMA-65B at tp 4 on H100-SXM and its drafts
STUDY_TARGET = "llama-65b"
STUDY_DRAFTS = ("sheared-llama-1.3b", "tinyllama-1.1b", "llama-7b:n_layers=1", "llama-7b:n_layers=2",
                "llama-7b:n_layers=4", "llama-7b:n_layers=8")
STUDY_GPU = "h100-sxm"
STUDY_TP = 4
TARGETS = (STUDY_TARGET,)
GPUS = ("h100-sxm", "h200")
TPS = (1, 2, 4, 8)
from specperf.perfmodel.specs.modes import MODES  # noqa: E402  (the one definition)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
CONTEXTS = (128, 256, 512, 1024, 2048, 4096, 8192)
GAMMAS = tuple(range(1, 13))
METHODS = tuple(k for k in REGISTRY if k != "draft_model")  # proposers besides the drafts (the method control)


def _coarse(prov) -> str:
    """'measured' | 'operator' | 'analytical' | 'mixed' | 'none' from a Provenance (text: legacy)."""
    c = getattr(prov, "coarse", None)
    if c is not None:
        return c
    from .common import source_kind

    return source_kind(str(prov))


def _side(sources: dict) -> dict:
    """Badge and hover detail of one side: the coarse kind over its non-empty components."""
    items = {k: v for k, v in sources.items() if _coarse(v) != "none"}
    kinds = {_coarse(v) for v in items.values()}
    badge = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")
    return {"badge": badge, "detail": {k: str(v) for k, v in items.items()},
            "kinds": {k: _coarse(v) for k, v in items.items()}}


def _arr(x) -> list:
    return np.asarray(x, dtype=float).tolist()  # full precision: the page must match predict


def _model(spec, by_name: str) -> dict:
    return {"name": by_name, "n_layers": spec.n_layers, "d_model": spec.d_model,
            "weight_bytes": float(spec.weight_bytes), "kv_bytes_per_token": float(spec.kv_bytes_per_token),
            "max_positions": int(spec.max_positions), "learned_positions": bool(spec.learned_positions),
            "vocab": int(spec.vocab)}


def _proposer_model(method: str, target) -> dict:
    """Memory entry of a method's proposer: its head as a model, or nothing (n-gram; Medusa not counted)."""
    spec = make_method(method).proposer_spec(target)
    if spec is not None:
        return _model(spec, f"{method}@{target.name}")
    return {"name": method, "n_layers": 0, "d_model": target.d_model, "weight_bytes": 0.0, "kv_bytes_per_token": 0.0,
            "max_positions": int(target.max_positions), "learned_positions": False, "vocab": int(target.vocab)}


def _cells(query, sizes, roles, mode) -> list:
    """Nested lists [b][c]([g]) of {role: {kind, band}} (one role: its dict alone), as
    cell_bands.fill reads them for predict: each cell from its own sources."""
    got, _ = fill(query, sizes, roles, fallback_band(mode))

    def at(ix):
        d = {r: {"kind": str(got[r]["kind"][ix]), "band": float(got[r]["band"][ix])} for r in roles}
        return d[roles[0]] if len(roles) == 1 else d
    return np.frompyfunc(lambda *ix: at(ix), len(sizes), 1)(*np.indices(sizes)).tolist()


def mc_stream(n: int = N_DRAWS, seed: int = 0) -> dict:
    """propagate(seed)'s standard normals: z['kind:<kind>'] for every source kind (cell_bands.stream),
    z['acceptance'] (α's logit-normal draw) and z['baseline']."""
    names = [f"kind:{k}" for k in KINDS] + ["acceptance", "baseline"]
    return {"draws": n, "seed": seed, "level": LEVEL, "z90": Z90, "z95": Z95,
            "z": {k: stream(seed, k).standard_normal(n).tolist() for k in names}}


def draft_table(spec, latency, mode: str, batches, contexts, gammas) -> dict:
    """t_draft_s[b][c][g]: one draft forward at draft_context(context, γ), as predict times it;
    proposal_s[b][c][g] and catchup_s[b][c][g]: the draft-model method's parts (the catch-up is what
    predict --draft-catchup adds: 2-token minus 1-token step; the page charges it when ticked)."""
    ic = make_method("draft", draft=spec, catchup=True).costs(latency, spec, batches, contexts, gammas, 1, mode)
    G = np.asarray(gammas)[None, None, :]
    cells = [[_side(latency.forward(spec, b, 1, draft_context(c, G[0, 0]), 1, mode).sources)["badge"]
              for c in contexts] for b in batches]
    b_, c_, g_ = (np.asarray(v) for v in (batches, contexts, gammas))
    bands = _cells(lambda sel: prefixed(latency.forward(spec, b_[sel[0]][:, None, None], 1, draft_context(
        c_[sel[1]][None, :, None], g_[sel[2]][None, None, :]), 1, mode).sources, "draft"),
        (b_.size, c_.size, g_.size), ("draft",), mode)
    sources = {k[len("draft_"):]: v for k, v in ic.sources.items() if k.startswith("draft_")}
    return {"t_draft_s": _arr(ic.step_s), "proposal_s": _arr(ic.proposal_s), "catchup_s": _arr(ic.catchup_s),
            "catchup_optional": True, "cell_badge": cells, "cell_band": bands, **_side(sources)}


def method_table(name: str, target, latency, mode: str, batches, contexts, gammas) -> dict:
    """A head's or n-gram's parts for `target` (its catch-up always charged), badge and band from the
    method's sources over the whole grid (every cell carries them)."""
    meth = make_method(name)
    ic = meth.costs(latency, target, batches, contexts, gammas, 1, mode)
    src = {k: v for k, v in ic.sources.items() if k.startswith("draft_")}
    side = _side({k[len("draft_"):]: v for k, v in src.items()})
    b_, c_, g_ = (np.asarray(v) for v in (batches, contexts, gammas))
    band = _cells(lambda sel: meth.costs(latency, target, b_[sel[0]], c_[sel[1]], g_[sel[2]], 1, mode).sources,
                  (b_.size, c_.size, g_.size), ("draft",), mode)
    return {"t_draft_s": _arr(ic.step_s), "proposal_s": _arr(ic.proposal_s), "catchup_s": _arr(ic.catchup_s),
            "catchup_optional": False, "cell_badge": [[side["badge"]] * len(contexts) for _ in batches],
            "cell_band": band, **side}


def target_table(spec, latency, mode: str, tp: int, batches, contexts, gammas) -> dict:
    """t_verify_s[b][c][g], overhead_s[b][c][g], t_target_s[b][c], baseline_overhead_s[b][c]."""
    B, C = np.asarray(batches)[:, None, None], np.asarray(contexts)[None, :, None]
    G = np.asarray(gammas)[None, None, :]
    zero = np.zeros((len(batches), len(contexts), len(gammas)))
    ver = latency.forward(spec, B, G + 1, C, tp, mode)
    tgt = latency.forward(spec, B, 1, C, tp, mode)
    ov, ov_src = latency.overhead_s(spec, B, G, mode)
    ov0, _ = latency.overhead_s(spec, B, 0, mode)
    side = _side({**ver.sources, "overhead": ov_src})
    g = G[0, 0]
    side["cell_badge"] = [[_side({**latency.forward(spec, b, g + 1, c, tp, mode).sources,
                                  "overhead": latency.overhead_s(spec, b, g, mode)[1]})["badge"]
                           for c in contexts] for b in batches]
    b_, c_, g_ = (np.asarray(v) for v in (batches, contexts, gammas))

    def q(sel):
        B_, C_, G_ = b_[sel[0]][:, None, None], c_[sel[1]][None, :, None], g_[sel[2]][None, None, :]
        return {**prefixed(latency.forward(spec, B_, G_ + 1, C_, tp, mode).sources, "target"),
                "overhead": latency.overhead_s(spec, B_, G_, mode)[1]}
    side["cell_band"] = _cells(q, (b_.size, c_.size, g_.size), ("target", "overhead"), mode)
    side["base_band"] = _cells(baseline_query(latency, spec, b_, c_, tp, mode), (b_.size, c_.size), ("baseline",), mode)
    return {"t_verify_s": _arr(ver.total_s + zero), "overhead_s": _arr(ov + zero),
            "t_target_s": _arr((tgt.total_s + zero)[:, :, 0]), "baseline_overhead_s": _arr((ov0 + zero)[:, :, 0]),
            **side}


def explorer_data(targets=TARGETS, drafts=STUDY_DRAFTS, gpus=GPUS, modes=MODES, tps=TPS,
                  batches=BATCHES, contexts=CONTEXTS, gammas=GAMMAS, dtype_bytes: int = 2,
                  analytical: bool = False, methods=METHODS, load: bool = False, load_alphas=None) -> dict:
    """Everything the page needs, JSON-ready. Keys 'draft|gpu|mode', 'method@target|gpu|mode' (the
    proposer tables) and 'target|gpu|mode|tp'; `load`: the under-load view (plots.explore_serve)
    for the first target at the default GPU, tp and mode, every draft × α in `load_alphas`."""
    if not targets or not drafts or not gpus or not modes or not tps:
        raise SpecError("the explorer needs at least one target, draft, GPU, mode and tp")
    tspecs = {t: resolve_model(t, dtype_bytes) for t in targets}
    dspecs = {d: resolve_model(d, dtype_bytes) for d in drafts}
    for t, s in tspecs.items():
        bad = [tp for tp in tps if s.n_heads % tp or s.n_kv_heads % tp]
        if bad:
            raise SpecError(f"tp={bad[0]} does not divide {t}'s {s.n_heads} heads; choose tp from "
                            f"{', '.join(str(k) for k in (1, 2, 4, 8, 16) if s.n_heads % k == 0 and s.n_kv_heads % k == 0)}")
    longest = max(contexts) + max(gammas) + 1
    for name, s in {**tspecs, **dspecs}.items():
        if s.learned_positions and longest > s.max_positions:
            raise SpecError(f"{name} holds {s.max_positions} positions (learned) but the explorer's largest "
                            f"context + γ + 1 is {longest}; choose contexts ≤ {s.max_positions - max(gammas) - 1}")
    draft_tabs, target_tabs, hw = {}, {}, {}
    for g in gpus:
        h = resolve_gpu(g)
        hw[g] = {"memory_bytes": float(h.memory_bytes), "name": h.name}
        lat = build_provider(h, analytical=analytical, modes=tuple(modes)).target
        for m in modes:
            for d, s in dspecs.items():
                draft_tabs[f"{d}|{g}|{m}"] = draft_table(s, lat, m, batches, contexts, gammas)
            for t, s in tspecs.items():
                for meth in methods:
                    draft_tabs[f"{meth}@{t}|{g}|{m}"] = method_table(meth, s, lat, m, batches, contexts, gammas)
                for tp in tps:
                    target_tabs[f"{t}|{g}|{m}|{tp}"] = target_table(s, lat, m, tp, batches, contexts, gammas)
    default_draft = drafts[0]
    gpu0, tp0 = (STUDY_GPU if STUDY_GPU in gpus else gpus[0]), (STUDY_TP if STUDY_TP in tps else tps[0])
    extra = {}
    if load:
        from .explore_serve import LOAD_ALPHAS, load_data

        lat0 = build_provider(resolve_gpu(gpu0), analytical=analytical, modes=tuple(modes)).target
        extra["load"] = load_data((targets[0], tspecs[targets[0]]), dspecs, gpu0, tp0, modes[:1], lat0,
                                  tuple(load_alphas or LOAD_ALPHAS))
    return {**extra,"targets": list(targets), "drafts": list(drafts), "gpus": list(gpus), "modes": list(modes),
            "tps": [int(t) for t in tps], "batches": [int(b) for b in batches],
            "contexts": [int(c) for c in contexts], "gammas": [int(g) for g in gammas],
            "methods": list(methods),
            "models": {**{t: _model(s, t) for t, s in tspecs.items()}, **{d: _model(s, d) for d, s in dspecs.items()},
                       **{f"{m}@{t}": _proposer_model(m, s) for m in methods for t, s in tspecs.items()}},
            "hardware": hw, "draft": draft_tabs, "target": target_tabs, "mc": mc_stream(),
            "defaults": {"target": targets[0], "draft": default_draft,
                         "gpu": gpu0, "mode": modes[0], "tp": tp0, "alpha": 0.8,
                         "batch": 1 if 1 in batches else batches[0], "context": 512 if 512 in contexts else contexts[0]}}
