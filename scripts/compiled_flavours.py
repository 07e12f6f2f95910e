"""Same-run comparison of compile flavours on one GPU: per layer point, CUDA graph (plain operators)
against torch.compile `default` with attention compiled (specperf's compiled mode), `default` with
SDPA kept opaque (SPECPERF_COMPILE_ATTENTION=opaque: vLLM's split at attention) and
`max-autotune-no-cudagraphs` (SPECPERF_COMPILE_MODE). CPU only: reads the tables the GPU wrote.

    PYTHONPATH=. python scripts/compiled_flavours.py evidence/compiled_flavours
The tables come from (one H200 machine, one after the other; commands also in each .meta.json):
    M=llama-7b:d_model=768,n_heads=12,n_kv_heads=12,d_ff=2048,llama-7b:d_model=1024,n_heads=8,n_kv_heads=8,d_ff=2816,\\
      llama-7b:d_model=2048,n_heads=32,n_kv_heads=4,d_ff=5632,llama-7b
    specperf profile --models $M --batch 1,8 --context 512,1920 --new-tokens 1,5 --no-overhead --mode graph,compiled --out flavours_default.csv
    SPECPERF_COMPILE_ATTENTION=opaque specperf profile --models $M ... --mode compiled --out flavours_opaque.csv
    SPECPERF_COMPILE_MODE=max-autotune-no-cudagraphs specperf profile --models $M --batch 1,8 --context 512 \\
      --new-tokens 1 --no-overhead --mode compiled --deadline-s 200 --out flavours_autotune.csv
Key assumption: the files share a machine and a run, so ratios between them are free of card-to-card
differences (levels are not compared across runs).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.latency.table import LatencyTable  # noqa: E402

KEY = ("shape", "batch", "new_tokens", "context")


def layer_times(path: Path, mode: str) -> dict:
    return {tuple(r[k] for k in KEY): r["median_s"] for r in LatencyTable.load(path).ok_rows()
            if r["component"] == "layer" and r["mode"] == mode}


def compare(folder: Path) -> dict:
    graph = layer_times(folder / "flavours_default.csv", "graph")
    flav = {"compiled": layer_times(folder / "flavours_default.csv", "compiled"),
            "opaque": layer_times(folder / "flavours_opaque.csv", "compiled"),
            "autotune": layer_times(folder / "flavours_autotune.csv", "compiled")}
    rows = [dict(zip(KEY, k), graph_ms=graph[k] * 1e3, **{f"{f}_ms": t[k] * 1e3 for f, t in flav.items() if k in t})
            for k in sorted(graph)]

    def ratios(a, b, where=lambda r: True):
        v = np.array([r[f"{a}_ms"] / r[f"{b}_ms"] for r in rows if f"{a}_ms" in r and f"{b}_ms" in r and where(r)])
        return {"n": int(v.size), "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}

    long_b8 = lambda r: r["batch"] == 8 and r["context"] == 1920  # noqa: E731
    short = lambda r: not long_b8(r)  # noqa: E731
    return {"rows": rows, "summary": {
        "compiled/graph, batch 8 x context 1920": ratios("compiled", "graph", long_b8),
        "compiled/graph, other points": ratios("compiled", "graph", short),
        "opaque/compiled (attention kept out of inductor)": ratios("opaque", "compiled"),
        "opaque/graph, batch 8 x context 1920": ratios("opaque", "graph", long_b8),
        "autotune/compiled, batch 1": ratios("autotune", "compiled", lambda r: r["batch"] == 1),
        "autotune/compiled, batch 8": ratios("autotune", "compiled", lambda r: r["batch"] == 8)}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[1] / "evidence" / "compiled_flavours"))
    out = compare(Path(ap.parse_args(argv).folder))
    print(f"{'shape':34s} {'b':>2s} {'n':>2s} {'ctx':>5s} {'graph':>7s} {'compiled':>9s} {'opaque':>7s} {'autotune':>9s}  (ms)")
    for r in out["rows"]:
        cells = [f"{r.get(f'{f}_ms', float('nan')):{w}.3f}" for f, w in (("graph", 7), ("compiled", 9), ("opaque", 7),
                                                                         ("autotune", 9))]
        print(f"{r['shape']:34s} {r['batch']:2d} {r['new_tokens']:2d} {r['context']:5d} " + " ".join(cells))
    for k, s in out["summary"].items():
        print(f"{k:50s} n={s['n']:2d} median {s['median']:.3f} (range {s['min']:.3f}-{s['max']:.3f})")


if __name__ == "__main__":
    main()
