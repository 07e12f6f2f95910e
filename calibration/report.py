"""FitReport: the fitted parameters of one calibration, their uncertainty, residuals and error
metrics, rendered as an lmfit-style text report or as a JSON-ready dict.

Key assumption: every fit in this package reports 95 % intervals (two-sided) and states how they
were computed in `ci_method`; nothing here recomputes a fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def _fmt(v, digits: int = 6) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}g}"


@dataclass(frozen=True)
class FitReport:
    """One fit. `parameters`, `stderr` and `ci` share keys; `residuals` pairs with `residual_labels`."""
    title: str
    method: str
    n: int  # data points the fit used (iterations, positions or runs — `n_label` says which)
    parameters: dict
    stderr: dict = field(default_factory=dict)
    ci: dict = field(default_factory=dict)
    ci_method: str = ""
    residuals: tuple = ()
    residual_labels: tuple = ()
    residual_kind: str = ""
    metrics: dict = field(default_factory=dict)
    tests: dict = field(default_factory=dict)
    notes: tuple = ()
    n_label: str = "data points"

    @property
    def n_variables(self) -> int:
        return len(self.parameters)

    def to_dict(self) -> dict:
        return {"title": self.title, "method": self.method, "n": int(self.n), "n_label": self.n_label,
                "parameters": {k: float(v) for k, v in self.parameters.items()},
                "stderr": {k: (None if v is None else float(v)) for k, v in self.stderr.items()},
                "ci": {k: (None if v is None else [float(v[0]), float(v[1])]) for k, v in self.ci.items()},
                "ci_method": self.ci_method,
                "residuals": [{"label": lab, "value": float(r)}
                              for lab, r in zip(self.residual_labels, self.residuals)],
                "residual_kind": self.residual_kind,
                "metrics": dict(self.metrics), "tests": dict(self.tests), "notes": list(self.notes)}

    def report(self) -> str:
        """Readable report in the layout of lmfit's fit_report()."""
        out = [f"[[{self.title}]]",
               "[[Fit Statistics]]",
               f"    # fitting method   = {self.method}",
               f"    # {self.n_label:<17}= {self.n}",
               f"    # variables        = {self.n_variables}"]
        if max([0] + [len(k) + 1 for k in self.metrics]) > 19:
            out = [ln.replace("= ", " " * (max(len(k) + 1 for k in self.metrics) - 19) + "= ", 1)
                   if ln.startswith("    #") else ln for ln in out]
        mw = max([19] + [len(k) + 1 for k in self.metrics])
        for k, v in self.metrics.items():
            out.append(f"    {k:<{mw}}= {_fmt(v)}")
        out.append("[[Variables]]")
        width = max((len(k) for k in self.parameters), default=5) + 1
        for k, v in self.parameters.items():
            se = self.stderr.get(k)
            line = f"    {k + ':':<{width + 1}} {_fmt(v, 6):>12}"
            if se is not None and math.isfinite(float(se)):
                rel = f" ({abs(se / v) * 100:.2f}%)" if v else ""
                line += f" +/- {_fmt(se, 4)}{rel}"
            ci = self.ci.get(k)
            if ci is not None:
                line += f"   95% CI [{_fmt(ci[0], 5)}, {_fmt(ci[1], 5)}]"
            out.append(line)
        if self.ci_method:
            out.append(f"    (intervals: {self.ci_method})")
        if self.tests:
            out.append("[[Tests]]")
            for name, t in self.tests.items():
                body = ", ".join(f"{k}={_fmt(v, 4) if not isinstance(v, str) else v}"
                                 for k, v in t.items())
                out.append(f"    {name}: {body}")
        if len(self.residuals):
            out.append(f"[[Residuals]] {self.residual_kind}")
            for lab, r in zip(self.residual_labels, self.residuals):
                out.append(f"    {lab:<24} {_fmt(r, 4):>10}")
        if self.notes:
            out.append("[[Notes]]")
            out.extend(f"    - {n}" for n in self.notes)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.report()
