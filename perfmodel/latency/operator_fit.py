"""Fit the operator-composed provider's glue on measured whole-layer (and LM-head) rows.

Graph mode: t = factor · G + const_s, G the sum of the layer's operator times — linear least squares
on relative error. Eager mode: t = max(host_factor · H + const_s, graph law), H the sum of host launch
costs — least squares over the host-bound rows. Every fit reports
its median / p90 |relative error| in-sample and leave-one-shape-out (each layer shape predicted by
glue fitted on the others: the error to expect on a shape never measured). Key assumption: the glue
(views, copies, inter-kernel gaps the operators timed alone do not show) is one affine law per mode
across shapes. Compiled mode (torch.compile + CUDA graphs): t = Σ_k coef_k · term_k + const_s over
OperatorLatency.compiled_terms (GEMM time, attention time, KV-cache passes, elementwise time), fitted
on measured compiled rows (fit_compiled), non-negative coefficients.
numpy only; rows are dicts in LatencyTable form.
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.latency.table import spec_from_head_shape_key, spec_from_shape_key



def _by_shape(prov, rows, component):
    """Yield (shape key, its rows, the operators of those rows' points) per layer or head shape."""
    by_shape: dict = {}
    for r in rows:
        by_shape.setdefault(r["shape"] if component == "layer" else r["head_shape"], []).append(r)
    for key, rs in by_shape.items():
        b = np.array([r["batch"] for r in rs], dtype=float)
        n = np.array([r["new_tokens"] for r in rs], dtype=float)
        if component == "layer":
            ops = prov.layer_ops(spec_from_shape_key(key), b, n, np.array([r["context"] for r in rs], dtype=float),
                                 rs[0]["tp"])
        else:
            ops = prov.head_ops(spec_from_head_shape_key(key), b, n, rs[0]["tp"])
        yield key, rs, ops


def _sums(prov, rows, component):
    """(G, H, t, group) arrays over `rows` of one component."""
    G, H, t, grp = [], [], [], []
    for key, rs, ops in _by_shape(prov, rows, component):
        G.append(sum(prov.op_s(o, *s) for o, *s in ops) + np.zeros(len(rs)))
        H.append(np.full(len(rs), sum(prov.host_s(o) for o, *_ in ops)))
        t.append(np.array([r["median_s"] for r in rs]))
        grp += [key] * len(rs)
    cat = (lambda xs: np.concatenate(xs)) if G else (lambda xs: np.zeros(0))
    return cat(G), cat(H), cat(t), np.array(grp)


def _compiled_terms(prov, rows, component):
    """(X [rows × terms+1], t, group): OperatorLatency.compiled_terms of each row, plus a constant."""
    from specperf.perfmodel.latency.operators import COMPILED_TERMS

    X, t, grp = [], [], []
    for key, rs, ops in _by_shape(prov, rows, component):
        terms = prov.compiled_terms(ops)
        X.append(np.stack([terms[k] + np.zeros(len(rs)) for k in COMPILED_TERMS] + [np.ones(len(rs))], axis=1))
        t.append(np.array([r["median_s"] for r in rs]))
        grp += [key] * len(rs)
    if not X:
        return np.zeros((0, len(COMPILED_TERMS) + 1)), np.zeros(0), np.array(grp)
    return np.concatenate(X), np.concatenate(t), np.array(grp)


def _fit_compiled(X, t):
    """Least squares on relative error; a term whose coefficient comes out negative (or that is zero
    on every row, as attention is for a head) is dropped and the rest refitted."""
    from specperf.perfmodel.latency.operators import COMPILED_TERMS

    names = [f"{k}_factor" for k in COMPILED_TERMS] + ["const_s"]
    use = [i for i in range(X.shape[1]) if np.any(X[:, i] != 0)]
    while True:
        x, *_ = np.linalg.lstsq(X[:, use] / t[:, None], np.ones_like(t), rcond=None)
        if (x >= 0).all() or len(use) == 1:
            break
        use.pop(int(np.argmin(x)))
    p = dict.fromkeys(names, 0.0)
    p.update({names[i]: float(v) for i, v in zip(use, x)})
    return p


def _pred_compiled(p, X):
    from specperf.perfmodel.latency.operators import COMPILED_TERMS

    return X @ np.array([p[f"{k}_factor"] for k in COMPILED_TERMS] + [p["const_s"]])


def fit_compiled(prov, rows, component: str) -> tuple[dict, dict]:
    """(compiled glue, stats) for 'layer' or 'lm_head' from measured compiled rows (tp = 1), with
    leave-one-shape-out errors (each shape predicted by glue fitted on the others)."""
    rows = [r for r in rows if r["component"] == component and r["mode"] == "compiled"
            and r.get("status", "ok") == "ok" and r["tp"] == 1]
    X, t, grp = _compiled_terms(prov, rows, component)
    if t.size < 3:
        return {}, {"n": int(t.size)}
    params = _fit_compiled(X, t)
    stats = {"in_sample": _stats(_pred_compiled(params, X), t), "bare_sum": _stats(X[:, :-1].sum(axis=1), t)}
    shapes = np.unique(grp)
    if len(shapes) >= 3:
        cv = np.empty_like(t)
        for s in shapes:
            held = grp == s
            cv[held] = _pred_compiled(_fit_compiled(X[~held], t[~held]), X[held])
        stats["leave_one_shape_out"] = _stats(cv, t)
        stats["shapes"] = int(len(shapes))
    return params, stats


def _fit_graph(G, t):
    A = np.stack([G / t, 1.0 / t], axis=1)
    (a, c), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    return {"factor": float(a), "const_s": float(c)}


def _pred_graph(p, G, H):
    return p["factor"] * G + p["const_s"]


def _fit_eager(G, H, t, graph):
    """t = max(host_factor · H + const_s, graph glue(G)): least squares on relative error over the
    host-bound rows (those the graph law does not already explain), refitted until they settle."""
    gpu = _pred_graph(graph, G, H)
    host_bound = np.ones(t.size, bool)
    p = {"host_factor": 1.0, "const_s": 0.0}
    for _ in range(5):
        if host_bound.sum() < 2:
            break
        A = np.stack([H / t, 1.0 / t], axis=1)[host_bound]
        (h, c), *_ = np.linalg.lstsq(A, np.ones(host_bound.sum()), rcond=None)
        if h < 0 or c < 0:  # layers with near-equal launch counts leave factor and constant collinear:
            # a negative part is unphysical, so the host time is taken ∝ the launch cost alone
            (h,), *_ = np.linalg.lstsq(A[:, :1], np.ones(host_bound.sum()), rcond=None)
            c = 0.0
        p = {"host_factor": float(h), "const_s": float(c)}
        new = p["host_factor"] * H + p["const_s"] >= gpu * 0.9
        if (new == host_bound).all():
            break
        host_bound = new
    return dict(p, graph_factor=graph["factor"], graph_const_s=graph["const_s"])


def _pred_eager(p, G, H):
    gpu = p["graph_factor"] * G + p["graph_const_s"]
    return np.maximum(p["host_factor"] * H + p["const_s"], gpu)


def _stats(pred, t):
    e = np.abs(pred / t - 1)
    return {"n": int(t.size), "median_abs_rel_err": float(np.median(e)) if e.size else None,
            "p90_abs_rel_err": float(np.percentile(e, 90)) if e.size else None}


def fit(prov, rows, component: str, mode: str, graph=None) -> tuple[dict, dict]:
    """(glue parameters, stats) for one component ('layer' | 'lm_head') and mode from `rows`;
    eager fits take the component's fitted `graph` glue (the GPU-bound limit of an eager forward)."""
    rows = [r for r in rows if r["component"] == component and r["mode"] == mode
            and r.get("status", "ok") == "ok"]
    G, H, t, grp = _sums(prov, rows, component)
    if t.size < 3:
        return {}, {"n": int(t.size)}
    fitter, pred = ((lambda: _fit_graph(G, t)), _pred_graph) if mode == "graph" else \
        ((lambda: _fit_eager(G, H, t, graph)), _pred_eager)
    params = fitter()
    stats = {"in_sample": _stats(pred(params, G, H), t),
             "bare_sum": _stats(G if mode == "graph" else np.maximum(G, H), t)}
    shapes = np.unique(grp)
    if len(shapes) >= 3:
        cv = np.empty_like(t)
        for s in shapes:
            held = grp == s
            sub = (_fit_graph(G[~held], t[~held]) if mode == "graph"
                   else _fit_eager(G[~held], H[~held], t[~held], graph))
            cv[held] = pred(sub, G[held], H[held])
        stats["leave_one_shape_out"] = _stats(cv, t)
        stats["shapes"] = int(len(shapes))
    return params, stats


def fit_all(prov, layer_rows, eager_rows=None) -> dict:
    """Glue for graph and eager layers and heads: graph from `layer_rows`, eager from `eager_rows`
    (rows measured with the same host as the table's eager operator rows) when given."""
    eager_rows = layer_rows if eager_rows is None else eager_rows
    out, stats = {}, {}
    for key, comp, mode, rows in (("graph", "layer", "graph", layer_rows), ("eager", "layer", "eager", eager_rows),
                                  ("head_graph", "lm_head", "graph", layer_rows),
                                  ("head_eager", "lm_head", "eager", eager_rows)):
        graph = out.get("head_graph" if comp == "lm_head" else "graph", {"factor": 1.0, "const_s": 0.0})
        p, s = fit(prov, rows, comp, mode, graph)
        if p:
            out[key] = p
        stats[key] = s
    return {"params": out, "stats": stats}


__all__ = ["fit", "fit_all", "fit_compiled"]
