"""The miniature family as α-model pairs: per draft, greedy α (i.i.d. MLE over its whole set-A trace,
specperf calibrate acceptance's fit) with its 95 % interval clustered by prompt (`sequence`), and the
features [1, ln(P_draft/P_target), ln(layers)] with non-embedding parameter counts; plus the α
model's leave-one-draft-out check on them (calibration.alpha_loo).

    PYTHONPATH=. python -m studies.miniature.alpha_pairs      # prints the LOO table as JSON

Key assumption: the seven drafts share corpus, token budget and target, so they differ only in shape.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from .acceptance import write_trace
from .family import DRAFTS, TARGET

TRACES = Path(__file__).resolve().parent / "data" / "traces.jsonl"


def pairs(traces: Path = TRACES, kind: str = "greedy"):
    """(x [n, 3], α [n], 95 % intervals, names) in family order."""
    from specperf.calibration.acceptance_fit import fit_acceptance
    from specperf.calibration.traces import read_trace
    from specperf.perfmodel.specdec import alpha_model as am

    by = {}
    for ln in traces.read_text().splitlines():
        r = json.loads(ln)
        if r["kind"] == kind:
            by[r["draft"]] = (np.asarray(r["accepted"]), int(r["gamma"]))
    xs, al, cis, names = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for d in DRAFTS:
            if d.name not in by:
                continue
            a, g = by[d.name]
            p = write_trace(Path(tmp) / f"{d.name}.csv", a, g, 256)
            m = fit_acceptance(read_trace(p), range(1, g + 1), model="iid").model
            xs.append(am.features(d.non_embedding_params, TARGET.non_embedding_params, d.n_layers))
            al.append(m.alpha)
            cis.append(tuple(m.alpha_ci))
            names.append(d.name)
    return np.array(xs), np.array(al), cis, names


def loo(depth: str = "auto", stated: bool = True) -> dict:
    from specperf.calibration.alpha_loo import leave_one_out

    x, a, ci, names = pairs()
    return leave_one_out(x, a, ci if stated else None, names, depth=depth)


if __name__ == "__main__":
    print(json.dumps({d: loo(d) for d in ("linear", "auto")}, indent=1))
