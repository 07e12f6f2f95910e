"""α for drafts that do not exist yet: a small, explicit logistic model of acceptance in the draft's
size relative to the target and in its depth, fitted by least squares from (draft, α) pairs.

    logit α = c0 + c1 · ln(P_draft / P_target) + c2 · ln(n_layers_draft) [+ c3 · ln(n_layers_draft)²]

P counts non-embedding parameters (n_layers × one layer's parameters) in models fitted to user pairs
— the conservative choice for shallow-wide drafts (most of whose parameters are embeddings) — and
total parameters in the default model (the paper names total sizes); a model records its `counting`
and is always evaluated with it. Prediction intervals carry the residual scatter, every coefficient's
variance (fitted, borrowed from the default, or assumed for c2) and the pairs' stated ±.
Without user pairs the default fits c0, c1 to the only published α-versus-draft-size series we
could find (Leviathan et al. 2023, Table 3, LaMDA 137B target) and assumes c2 = 0; rows using it
are labelled "assumed", never "measured". That series names no depths, so the default's depth term
pivots not at any one depth but at an unknown reference depth spread over the depths of published
drafts of that size (its variance is smallest there and grows toward 1 layer or very deep drafts).
The quadratic depth term (`fit(..., depth="quadratic"|"auto")`) lets acceptance peak at a middle
depth, as it does in the miniature family; `auto` fits it only from ≥ 5 pairs at ≥ 3 depths spanning
≥ 4×. Every answer outside the fitted pairs' depth and size range is an extrapolation
(`extrapolation()` says which and how far).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from specperf.perfmodel.specs.models import ModelSpec, SpecError

FEATURES = ("intercept", "log_param_ratio", "log_layers")
QUAD = "log_layers_sq"  # the optional fourth coefficient: (ln layers)², a non-monotone depth effect
ALPHA_CLIP = (0.01, 0.99)  # logit is finite only inside (0, 1); α outside this range is not credible
MIN_SPREAD = float(np.log(2.0))  # a slope is fitted only when the pairs span ≥ 2× in that feature

# Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative Decoding", ICML 2023
# (arXiv:2211.17192), Table 3 "Empirical α values": target LaMDA 137B; drafts LaMDA 100M, 2B, 8B;
# argmax (t=0) and standard sampling (t=1). Parameter counts are the sizes the paper names.
DEFAULT_SOURCE = ("Leviathan et al. 2023 (ICML, arXiv:2211.17192) Table 3: LaMDA 137B target with "
                  "LaMDA 100M/2B/8B drafts, t=0 and t=1")
DEFAULT_TARGET_PARAMS = 137e9
# The cited drafts' depths are not published there: their reference depth is taken as log-uniform over
# 12–36 layers, the depths of every 0.1–8 B-parameter model in perfmodel/specs/catalog.py (their
# config.json: OPT-125M 12 … Qwen3-4B 36).
DEFAULT_DEPTH_RANGE = (12, 36)
DEFAULT_ROWS = (  # (draft params, α) — t=0 then t=1
    (100e6, 0.61), (2e9, 0.71), (8e9, 0.75),
    (100e6, 0.57), (2e9, 0.71), (8e9, 0.74),
)

# Two-sided 95 % Student-t quantiles t_{0.975, dof} for dof = 1..30 (standard statistical tables);
# beyond 30 the normal quantile 1.96 is used.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(dof: int) -> float:
    return _T975[dof - 1] if 1 <= dof <= len(_T975) else 1.96


def logit(a):
    a = np.clip(np.asarray(a, dtype=float), *ALPHA_CLIP)
    return np.log(a / (1.0 - a))


def expit(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def nonembedding_params(spec: ModelSpec) -> int:
    return spec.n_layers * spec.layer_params


def param_count(spec: ModelSpec, counting: str) -> int:
    """P as a model counts it: 'nonembedding' (layers only) or 'total' (with embeddings and head)."""
    return nonembedding_params(spec) if counting == "nonembedding" else spec.params


def features(draft_params, target_params, n_layers) -> np.ndarray:
    """Design matrix rows [1, ln(P_draft/P_target), ln(n_layers)]; broadcasts over arrays."""
    p = np.asarray(draft_params, dtype=float)
    L = np.asarray(n_layers, dtype=float)
    p, L = np.broadcast_arrays(p, L)
    return np.stack([np.ones_like(p), np.log(p / float(target_params)), np.log(L)], axis=-1)


@dataclass(frozen=True)
class AlphaModel:
    coef: tuple[float, float, float]
    fitted: tuple[str, ...]  # which coefficients the least-squares fit estimated
    xtx_inv: tuple  # (k×k) inverse normal matrix of the fitted columns, for prediction intervals
    resid_sd: float  # residual standard deviation on the logit scale
    dof: int  # degrees of freedom of resid_sd
    kind: str  # "predicted" (fitted to user pairs) | "assumed" (default, not fitted to this setup)
    source: str
    n_pairs: int = 0
    pairs: tuple = field(default=(), compare=False)
    coef_var: tuple = (0.0, 0.0, 0.0)  # variance of each coefficient (fitted here or by the prior)
    x_mean: tuple = (1.0, 0.0, 0.0)  # feature means of the pairs (where held coefficients pivot)
    counting: str = "nonembedding"  # how P is counted, in the fit and in every prediction
    meas_cov: tuple = ()  # (k×k) covariance of the fitted coefficients from the pairs' stated ± (logit)
    meas_var: float = 0.0  # mean stated logit variance of a pair: a new draft is at least this uncertain
    depth_ref_var: float = 0.0  # variance of the (unknown) reference ln-depth a held depth slope pivots at
    ranges: tuple = ()  # ((lo, hi) of ln(P/P_target), (lo, hi) of layers) spanned by the fitted pairs

    @property
    def names(self) -> tuple:
        return FEATURES + ((QUAD,) if len(self.coef) == 4 else ())

    def _x(self, x) -> np.ndarray:
        """Feature rows (…, 3) as this model reads them (the (ln layers)² column appended if it has one)."""
        x = np.asarray(x, dtype=float)
        return np.concatenate([x, x[..., 2:3] ** 2], axis=-1) if len(self.coef) == 4 and x.shape[-1] == 3 else x

    def _held_var(self, x):
        """Variance of coefficients held at the prior (not fitted): slope × distance from its pivot."""
        v = 0.0
        for j, f in enumerate(FEATURES):
            if f not in self.fitted and self.coef_var[j] > 0:
                v = v + self.coef_var[j] * ((x[..., j] - self.x_mean[j]) ** 2 + (self.depth_ref_var if j == 2 else 0.0))
        return v

    def extrapolation(self, x) -> list[str]:
        """Where feature rows (…, 3) leave the fitted pairs' ranges: one phrase per reason."""
        if not self.ranges:  # the cited default: its rows are labelled "assumed" instead
            return []
        x = np.atleast_2d(np.asarray(x, dtype=float))
        (plo, phi), (llo, lhi) = self.ranges
        out = []
        L = np.exp(x[:, 2])
        if np.any(L < llo - 1e-9) or np.any(L > lhi + 1e-9):
            out.append(f"depth outside the fitted {llo:g}–{lhi:g} layers")
        tol = np.log(1.25)  # sizes within 25 % of the fitted range count as inside it
        if np.any(x[:, 1] < plo - tol) or np.any(x[:, 1] > phi + tol):
            out.append(f"size ratio outside the fitted {np.exp(plo):.3g}–{np.exp(phi):.3g}")
        return out

    def predict(self, x: np.ndarray):
        """α, α_lo, α_hi (95 % prediction interval) for feature rows x (…, 3)."""
        x = self._x(x)
        z = x @ np.asarray(self.coef)
        idx = [self.names.index(f) for f in self.fitted]
        xf = x[..., idx]
        V = np.asarray(self.xtx_inv, dtype=float).reshape(len(idx), len(idx))
        lev = np.einsum("...i,ij,...j->...", xf, V, xf)
        # estimated from the pairs' scatter (Student t on dof) ...
        var_t = self.resid_sd ** 2 * (1.0 + lev)
        # ... and known-variance terms (normal): the pairs' stated ±, coefficients held at the prior
        var_z = self.meas_var + np.zeros_like(var_t)
        if self.meas_cov:
            M = np.asarray(self.meas_cov, dtype=float).reshape(len(idx), len(idx))
            var_z = var_z + np.einsum("...i,ij,...j->...", xf, M, xf)
        var_z = var_z + self._held_var(x)
        half = np.sqrt(t975(self.dof) ** 2 * var_t + 1.96 ** 2 * var_z)
        clip = lambda v: np.clip(v, 0.0, ALPHA_CLIP[1])  # noqa: E731
        return clip(expit(z)), clip(expit(z - half)), clip(expit(z + half))

    def sample_logits(self, x: np.ndarray, n: int, rng) -> np.ndarray:
        """(n, P) joint draws of logit α for feature rows x (P, 3): one coefficient draw per row
        shared by every draft (their errors move together), plus each draft's own scatter. Matches
        predict()'s variance, with the t factor folded into the estimated part."""
        x = self._x(np.atleast_2d(np.asarray(x, dtype=float)))
        idx = [self.names.index(f) for f in self.fitted]
        k = (t975(self.dof) / 1.96) ** 2
        cov = k * self.resid_sd ** 2 * np.asarray(self.xtx_inv, dtype=float).reshape(len(idx), len(idx))
        if self.meas_cov:
            cov = cov + np.asarray(self.meas_cov, dtype=float).reshape(len(idx), len(idx))
        d_fit = rng.multivariate_normal(np.zeros(len(idx)), cov, size=n, method="eigh")  # (n, k)
        z = x @ np.asarray(self.coef) + d_fit @ x[:, idx].T
        for j, f in enumerate(FEATURES):
            if f not in self.fitted and self.coef_var[j] > 0:
                z = z + np.sqrt(self.coef_var[j]) * rng.standard_normal((n, 1)) * (x[:, j] - self.x_mean[j])
                if j == 2 and self.depth_ref_var > 0:  # the unknown pivot, shared by every draft
                    z = z + np.sqrt(self.coef_var[j] * self.depth_ref_var) * rng.standard_normal((n, 1))
        own = np.sqrt(k * self.resid_sd ** 2 + self.meas_var)
        return z + own * rng.standard_normal(z.shape)

    def describe(self) -> str:
        c = ", ".join(f"{n}={v:+.3f}" for n, v in zip(self.names, self.coef))
        fixed = [f for f in FEATURES if f not in self.fitted]
        sq = ", ln(layers)²" if len(self.coef) == 4 else ""
        return (f"logit α = c·[1, ln(P/P_target), ln(layers){sq}] with {c}; fitted {', '.join(self.fitted)}"
                + (f"; fixed at default {', '.join(fixed)}" if fixed else "")
                + f"; residual sd {self.resid_sd:.3f} (dof {self.dof}); {self.kind}: {self.source}")

    def to_dict(self) -> dict:
        return {"coefficients": dict(zip(self.names, self.coef)), "fitted": list(self.fitted),
                "coefficient_sd": dict(zip(self.names, (math.sqrt(v) for v in self.coef_var))),
                "resid_sd": self.resid_sd, "dof": self.dof, "kind": self.kind, "source": self.source,
                "n_pairs": self.n_pairs, "depth_term": "quadratic" if len(self.coef) == 4 else "log-linear",
                "fitted_ranges": {"log_param_ratio": list(self.ranges[0]), "layers": list(self.ranges[1])}
                if self.ranges else None, "formula": "logit(alpha) = c0 + c1*ln(P_draft/P_target) + "
                "c2*ln(n_layers) [+ c3*ln(n_layers)^2]; P = non-embedding parameters"}


def _lstsq(X: np.ndarray, y: np.ndarray, cols: list[int], base: np.ndarray):
    """Least squares for the columns `cols`; the others stay at `base`. Returns coef, XtX^-1, rss."""
    fixed = [j for j in range(X.shape[1]) if j not in cols]
    y_adj = y - X[:, fixed] @ base[fixed]
    Xf = X[:, cols]
    c, *_ = np.linalg.lstsq(Xf, y_adj, rcond=None)
    coef = base.copy()
    coef[cols] = c
    rss = float(np.sum((y_adj - Xf @ c) ** 2))
    return coef, np.linalg.inv(Xf.T @ Xf), rss


def fit(x: np.ndarray, alpha, prior: "AlphaModel | None" = None, source: str = "user pairs",
        kind: str = "predicted", pairs: tuple = (), alpha_ci=None, counting: str = "nonembedding",
        depth: str = "linear") -> AlphaModel:
    """Fit logit α on rows x (n×3). Columns enter while dof ≥ 1: intercept always; ln(P/P_target)
    from 3 pairs if they span ≥ 2× in size; ln(layers) from 4 pairs if they span ≥ 2× in depth
    independently of size; with depth="quadratic" (or "auto": when ≥ 5 pairs sit at ≥ 3 depths
    spanning ≥ 4×) also (ln layers)², so acceptance may peak at a middle depth. Coefficients not
    fitted keep the prior's values (the default model's unless given) — a slope is never
    extrapolated from pairs that barely differ. `alpha_ci`: each pair's stated 95 % interval (or
    None): its logit spread enters the coefficients' covariance and, as a floor, every prediction's
    variance. `counting` must be how x's P were counted."""
    if depth not in ("linear", "quadratic", "auto"):
        raise SpecError(f"alpha model: depth={depth!r} is not allowed; use linear, quadratic or auto")
    x = np.atleast_2d(np.asarray(x, dtype=float))
    a = np.asarray(alpha, dtype=float).ravel()
    if x.shape[0] != a.size or a.size == 0:
        raise SpecError("alpha model: need at least one (draft, alpha) pair")
    for v in a:
        if not 0.0 < v < 1.0:
            raise SpecError(f"alpha model: alpha={v!r} is not allowed; pairs need α in (0, 1)")
    prior = prior or (default_model() if kind != "assumed" else None)
    n = a.size
    depths = np.unique(np.round(np.exp(x[:, 2]), 6))
    quad = depth == "quadratic" or (depth == "auto" and n >= 5 and depths.size >= 3
                                    and np.ptp(x[:, 2]) >= np.log(4.0))
    X = np.concatenate([x, x[:, 2:3] ** 2], axis=1) if quad else x
    base = np.zeros(X.shape[1])
    if prior:
        base[:3] = prior.coef[:3]
    y = logit(a)
    cols = [0]
    if n >= 3 and np.ptp(x[:, 1]) >= MIN_SPREAD:
        cols.append(1)
    if n >= len(cols) + 2 and np.ptp(x[:, 2]) >= MIN_SPREAD and \
            np.linalg.matrix_rank(X[:, cols + [2]]) == len(cols) + 1:
        cols.append(2)
        if quad and n >= len(cols) + 2 and np.linalg.matrix_rank(X[:, cols + [3]]) == len(cols) + 1:
            cols.append(3)
    if quad and 3 not in cols:  # too few pairs for the curvature: stay log-linear
        X, base = X[:, :3], base[:3]
    coef, inv, rss = _lstsq(X, y, cols, base)
    dof = n - len(cols)
    if dof > 0:
        sd = math.sqrt(rss / dof)
    else:  # one pair: no residual to learn from; borrow the prior's spread
        sd, dof = (prior.resid_sd, prior.dof) if prior else (0.0, 1)
    var = np.zeros(X.shape[1])
    if prior:
        var[:3] = prior.coef_var[:3]
    var[cols] = sd ** 2 * np.diag(inv)
    if prior is not None and 1 not in cols and prior.counting != counting:
        # the borrowed size slope was fitted on P counted another way (the default: total parameters):
        # as an elasticity in these pairs' counting it is known only up to its own size
        var[1] += prior.coef[1] ** 2
        source += f"; size slope borrowed from a fit counting {prior.counting} parameters (variance widened)"
    s2 = _stated_logit_var(a, alpha_ci)
    Xf = X[:, cols]
    mcov = inv @ (Xf.T * s2) @ Xf @ inv  # sandwich: the stated ± of each pair through least squares
    var[cols] += np.diag(mcov)
    names = FEATURES + ((QUAD,) if X.shape[1] == 4 else ())
    x_mean = X.mean(axis=0)  # a held slope pivots where these pairs are: their α is known there
    return AlphaModel(coef=tuple(float(c) for c in coef), fitted=tuple(names[j] for j in cols),
                      xtx_inv=tuple(inv.ravel().tolist()), resid_sd=sd, dof=dof, kind=kind,
                      source=source, n_pairs=n, pairs=tuple(pairs), coef_var=tuple(var.tolist()),
                      x_mean=tuple(x_mean.tolist()), counting=counting,
                      meas_cov=tuple(mcov.ravel().tolist()) if s2.any() else (), meas_var=float(s2.mean()),
                      ranges=((float(x[:, 1].min()), float(x[:, 1].max())),
                              (float(np.exp(x[:, 2]).min()), float(np.exp(x[:, 2]).max()))))


def _stated_logit_var(a, alpha_ci) -> np.ndarray:
    """Per pair, the logit-scale variance of a stated 95 % interval ((hi − lo)/(2·1.96))², 0 if none."""
    out = np.zeros(a.size)
    for i, ci in enumerate(alpha_ci or ()):
        if ci is not None:
            out[i] = ((logit(ci[1]) - logit(ci[0])) / (2 * 1.959963984540054)) ** 2
    return out


_DEFAULT: list = []


def default_model() -> AlphaModel:
    """Conservative default from the cited LaMDA series (c2 = ln(layers) coefficient assumed 0 ± the
    size slope, pivoting at an unknown reference depth in DEFAULT_DEPTH_RANGE: no depth is exact)."""
    if not _DEFAULT:
        p = np.array([r[0] for r in DEFAULT_ROWS])
        a = np.array([r[1] for r in DEFAULT_ROWS])
        x = features(p, DEFAULT_TARGET_PARAMS, np.ones_like(p))  # depth unknown: ln(1) = 0
        m = fit(x, a, prior=None, source=DEFAULT_SOURCE + "; ln(layers) coefficient assumed 0 ± the "
                "size slope (depth assumed to matter no more per e-fold than size)", kind="assumed",
                counting="total")  # the paper names total sizes: P counts embeddings, fit and prediction
        var = list(m.coef_var)
        var[2] = m.coef[1] ** 2  # c2 = 0 is an assumption, not a measurement: give it the size slope's scale
        lo, hi = np.log(DEFAULT_DEPTH_RANGE)  # unknown reference depth, log-uniform: its mean and variance
        xm = list(m.x_mean)
        xm[2] = float((lo + hi) / 2)
        _DEFAULT.append(dataclasses.replace(m, coef_var=tuple(var), x_mean=tuple(xm),
                                            depth_ref_var=float((hi - lo) ** 2 / 12), ranges=()))
    return _DEFAULT[0]


# ---- files -------------------------------------------------------------------------------------
from .alpha_files import read_alpha_document  # noqa: E402,F401  (the reader lives there; callers import it here)


def model_from_coefficients(doc: dict) -> AlphaModel:
    """A model the user already fitted: coefficients by name; interval from resid_sd if given."""
    c = doc["coefficients"]
    try:
        coef = tuple(float(c.get(f, 0.0)) for f in FEATURES + ((QUAD,) if QUAD in c else ()))
        sd = float(doc.get("resid_sd", 0.0))
        dof = int(doc.get("dof", 30))
    except (TypeError, ValueError, AttributeError) as e:
        raise SpecError(f"alpha-model coefficients are malformed ({e})") from None
    return AlphaModel(coef=coef, fitted=("intercept",), xtx_inv=(0.0,), resid_sd=sd, dof=dof,
                      kind="predicted", source=str(doc.get("source", "coefficients file")),
                      coef_var=(0.0,) * len(coef), x_mean=(1.0,) + (0.0,) * (len(coef) - 1))
