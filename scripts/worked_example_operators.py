"""The worked example (docs/worked_example.md) re-run with the operator model: every draft's layers
and LM head from the H200 operator tables rescaled to the H100 by datasheet ratios
(perfmodel.latency.crossgpu), the target (measured tp=4 shards, all-reduce curve) and the overhead
as shipped. No H100 operator table exists (no H100 was lent), so on the H100 the default chain
(measured row > operator-composed) gives exactly the shipped answer; this script shows what the
operator model alone would say about the drafts.

    PYTHONPATH=. python scripts/worked_example_operators.py        # CPU, prints the two headline rows
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from typer.testing import CliRunner  # noqa: E402

import specperf.perfmodel.latency.providers as providers  # noqa: E402
from specperf.cli.main import app  # noqa: E402
from specperf.perfmodel.latency.crossgpu import rescaled  # noqa: E402
from specperf.perfmodel.latency.operators import shipped_operator_table  # noqa: E402
from specperf.perfmodel.specs.hardware import GPUS  # noqa: E402

ARGS = ["optimize", "--target", "llama-65b", "--gpu", "h100-sxm", "--tp", "4", "--drafts",
        "sheared-llama-1.3b,tinyllama-1.1b,opt-1.3b", "--layers", "1..8", "--d-model", "4096",
        "--alpha-model", "docs/worked_example_alpha.json", "--batch", "1", "--context", "512", "--mode", "both",
        "--top", "11", "--reference", "sheared-llama-1.3b", "--json"]


def headline(doc) -> list[str]:
    out = []
    for rk in doc["rankings"]:
        rows = rk["rows"]
        best = rows[0]
        ref = next(r for r in rows if r["draft"] == "sheared-llama-1.3b")
        order = ", ".join(f"{r['draft'].replace(' d4096 ff11008 h32', '')} γ{r['gamma']} {r['throughput_tok_s']:.1f}"
                          for r in rows)
        out.append(f"{rk['mode']}: best {best['draft']} (γ* = {best['gamma']}) {best['throughput_tok_s']:.1f} tok/s "
                   f"vs sheared-llama-1.3b {ref['throughput_tok_s']:.1f} (γ {ref['gamma']}) → "
                   f"{best['throughput_tok_s'] / ref['throughput_tok_s'] - 1:+.0%}; t_draft {best['t_draft_s'] * 1e3:.3f} ms "
                   f"vs {ref['t_draft_s'] * 1e3:.3f} ms\n    ranking: {order}")
    return out


def main() -> None:
    shipped = CliRunner().invoke(app, ARGS)
    real = providers.build_provider

    def with_operator_drafts(hw, **kw):
        p = real(hw, **kw)
        draft = rescaled(shipped_operator_table("h200"), GPUS["h200"], hw, fallback=p.draft)
        return providers.Providers(p.target, draft)

    providers.build_provider = with_operator_drafts
    try:
        ops = CliRunner().invoke(app, ARGS)
    finally:
        providers.build_provider = real
    for label, r in (("shipped (measured H100 drafts)", shipped), ("operator drafts (H200 tables → H100)", ops)):
        print(label)
        for line in headline(json.loads(r.output)):
            print("  " + line)


if __name__ == "__main__":
    main()
