"""Unseen-shape check: whole LLaMA-style models of shapes that appear in no shipped profile, timed on
the GPU (profiler.blocks.DecoderModel, every layer + head), against the operator-composed
prediction (perfmodel.latency.operators) and the pre-operator prediction (shipped layer profile →
analytical roofline fitted to it).

    PYTHONPATH=. python scripts/shape_check.py --out $OUT/shape_check_h200.csv      # GPU: measure
    PYTHONPATH=. python scripts/shape_check.py --report evidence/shape_check_h200.csv  # CPU

Measuring also re-times the operators' eager launch costs on this host (a few seconds) into
`<out stem>_host.csv`: eager time is host time, so it is predicted from this host's launch costs.
Key assumption: the shapes below are in no shipped profile (checked at start) and nothing about them
was used to fit the operator glue (fitted on perfmodel/data/h200.csv's catalog layers only). The
report's logic is perfmodel.data_build.shape_errors (the rebuild recomputes the error evidence).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.data_build.shape_errors import MODES, SHAPES, report, spec_of  # noqa: E402,F401
from specperf.perfmodel.latency.operator_table import OperatorTable  # noqa: E402
from specperf.perfmodel.latency.table import LatencyTable, layer_shape_key  # noqa: E402
from specperf.perfmodel.shipped import load_manifest  # noqa: E402
from specperf.perfmodel.specs.models import ModelSpec  # noqa: E402

BATCHES, CONTEXTS, NEW_TOKENS = (1, 8, 32), (512, 2048), (1, 5)
FIELDS = ("gpu", "model", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab", "mode", "batch",
          "new_tokens", "context", "measured_s", "p10_s", "p90_s", "host_probe_s", "dtype")
PROBE = (1, 256, 2, 2, 704, 1000)  # a tiny host-bound model: its eager forward tracks host speed


def check_unseen() -> None:
    """Exit if a SHAPES model's layer is in a shipped profile (manifest roles profile / tp_profile)."""
    seen = set()
    for e in load_manifest():
        if e.role in ("profile", "tp_profile"):
            seen |= {r["shape"] for r in LatencyTable.load(e.path).rows}
    clash = [n for n in SHAPES if layer_shape_key(spec_of(n)) in seen]
    if clash:
        raise SystemExit(f"shapes {clash} appear in a shipped profile; pick unseen shapes")


def host_probe(device, dtype: str = "fp16") -> float:
    """Eager seconds of one forward of the tiny PROBE model (batch 1, one token): host speed now."""
    import torch

    from specperf.profiler.blocks import DecoderModel
    from specperf.profiler.timing import time_module

    L, d, h, kv, ff, v = PROBE
    spec = ModelSpec(name="probe", family="llama", n_layers=L, d_model=d, n_heads=h, n_kv_heads=kv, d_ff=ff, vocab=v)
    m = DecoderModel(spec, max_batch=1, max_context=64, dtype=dtype, device=device)
    toks, pos = torch.zeros((1, 1), dtype=torch.long, device=device), torch.full((1,), 8, device=device)
    with torch.inference_mode():
        return time_module(lambda: m(toks, pos, 16), device, "eager", min_repeats=20, max_repeats=60).median_s


def measure(out: Path, device: str, deadline_s: float, host_grid: str = "default", modes=MODES,
            shapes=None, batches=BATCHES, contexts=CONTEXTS, new_tokens=NEW_TOKENS, dtype: str = "fp16") -> None:
    import time

    import torch

    from specperf.profiler import compiled, env, operator_sweep
    from specperf.profiler.blocks import KV_ALIGN, DecoderModel, kv_aligned
    from specperf.profiler.timing import time_module

    t0 = time.monotonic()
    meta = env.metadata(device, dtype, command="python scripts/shape_check.py " + " ".join(sys.argv[1:]))
    if "eager" in modes:
        host = OperatorTable(meta=dict(meta, host_probe_s=host_probe(device, dtype)))
        operator_sweep.run(operator_sweep.GRIDS[host_grid], host, out.with_name(out.stem + "_host.csv"), device,
                           dtype, modes=("eager",))
    rows = []
    for name in shapes or SHAPES:
        spec = spec_of(name)
        model = DecoderModel(spec, max_batch=1, max_context=KV_ALIGN, dtype=dtype, device=device)
        fwd = {m: (compiled.model_fn(model) if m == "compiled" else model) for m in modes}
        probe = host_probe(device, dtype) if "eager" in modes else float("nan")
        for b in batches:
            for c in contexts:
                if time.monotonic() - t0 > deadline_s:
                    break
                model.reset_cache(b, kv_aligned(c + max(new_tokens)))
                pos = torch.full((b,), c, dtype=torch.long, device=device)
                for n in new_tokens:
                    toks = torch.randint(0, spec.vocab, (b, n), device=device)
                    with torch.inference_mode():
                        for m in modes if device.startswith("cuda") else ("eager",):
                            f = fwd[m]
                            if m == "compiled":
                                compiled.warm(lambda: f(toks, pos, c + n), device, f"{name} b{b} n{n} ctx{c}")
                            t = time_module(lambda: f(toks, pos, c + n), device, m, min_repeats=20,
                                            max_repeats=60, rel_tol=0.01)
                            rows.append(_row(meta["gpu"], name, m, b, n, c, t, probe, dtype))
        del model
        torch.cuda.empty_cache() if device.startswith("cuda") else None
        _write(out, rows)
        print(f"{name}: {len(rows)} rows so far, {time.monotonic() - t0:.0f} s", flush=True)


def measure_rounds(out: Path, device: str, rounds: int, shapes=None, batches=BATCHES, contexts=CONTEXTS,
                   new_tokens=NEW_TOKENS, dtype: str = "fp16") -> None:
    """Eager mode, interleaved: every model is built once and each round times every point briefly,
    after re-timing the launch costs (`<stem>_r<k>.csv` + `_r<k>_host.csv`: one ordinary run each).
    `out` (+ `_host.csv`) keeps per point, and per launch-cost row, the least-contended round — the
    smallest median, as the shipped H200 eager rows (contention only adds host time)."""
    import torch

    from specperf.profiler import env, operator_sweep
    from specperf.profiler.blocks import DecoderModel, kv_aligned
    from specperf.profiler.timing import time_module

    meta = env.metadata(device, dtype, command="python scripts/shape_check.py " + " ".join(sys.argv[1:]))
    names = list(shapes or SHAPES)
    models = {n: DecoderModel(spec_of(n), max_batch=1, max_context=64, dtype=dtype, device=device) for n in names}
    best, best_host = {}, None
    for k in range(rounds):
        stem = out.with_name(f"{out.stem}_r{k}")
        host = OperatorTable(meta=dict(meta, host_probe_s=host_probe(device, dtype), round=k, rounds=rounds))
        operator_sweep.run(operator_sweep.GRIDS["default"], host, stem.with_name(stem.name + "_host.csv"), device,
                           dtype, modes=("eager",), log=lambda *_: None)
        best_host = host if best_host is None else _min_table(best_host, host)
        rows = []
        for b in batches:
            for c in contexts:
                for name in names:
                    model, spec = models[name], spec_of(name)
                    model.reset_cache(b, kv_aligned(c + max(new_tokens)))
                    pos = torch.full((b,), c, dtype=torch.long, device=device)
                    for n in new_tokens:
                        toks = torch.randint(0, spec.vocab, (b, n), device=device)
                        with torch.inference_mode():
                            t = time_module(lambda: model(toks, pos, c + n), device, "eager", min_repeats=10,
                                            max_repeats=30, rel_tol=0.02)
                        rows.append(_row(meta["gpu"], name, "eager", b, n, c, t, host.meta["host_probe_s"], dtype))
                    model.reset_cache(1, 64)
        _write(stem.with_suffix(".csv"), rows)
        for r in rows:
            key = (r["model"], r["batch"], r["new_tokens"], r["context"])
            best[key] = min(best.get(key, r), r, key=lambda x: x["measured_s"])
        print(f"round {k}: {len(rows)} points", flush=True)
    best_host.meta.update(round="least-contended", host_probe_s=min(
        OperatorTable.load(out.with_name(f"{out.stem}_r{k}_host.csv")).meta["host_probe_s"] for k in range(rounds)))
    best_host.save(out.with_name(out.stem + "_host.csv"))
    _write(out, [dict(r, host_probe_s=best_host.meta["host_probe_s"]) for r in best.values()])


def _min_table(a: OperatorTable, b: OperatorTable) -> OperatorTable:
    """Row by row, the faster of two launch-cost tables with the same points."""
    from specperf.perfmodel.latency.operator_table import op_key

    faster = {op_key(r): r for r in b.rows}
    out = OperatorTable(meta=dict(a.meta))
    for r in a.rows:
        o = faster.get(op_key(r), r)
        out.add(o if float(o.get("median_s") or "inf") < float(r.get("median_s") or "inf") else r)
    return out


def _row(gpu, name, mode, batch, new_tokens, context, t, probe, dtype) -> dict:
    """One measured point in FIELDS form: the model's shape, the point, its Timing `t`."""
    return dict(zip(FIELDS, (gpu, name, *SHAPES[name], mode, batch, new_tokens, context, t.median_s, t.p10_s,
                             t.p90_s, probe, dtype)))


def _write(path: Path, rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="measure on this machine's GPU into this CSV")
    ap.add_argument("--report", help="compare a measured CSV with the predictions (no GPU needed)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--deadline-s", type=float, default=240.0)
    ap.add_argument("--table", help="operator table (default: the shipped one of --gpu)")
    ap.add_argument("--gpu", default="h200")
    ap.add_argument("--modes", default="graph,eager", help="graph, eager, compiled (comma list)")
    ap.add_argument("--shapes", default=None, help="measure only these SHAPES names (comma list)")
    ap.add_argument("--batch", default=",".join(map(str, BATCHES)))
    ap.add_argument("--context", default=",".join(map(str, CONTEXTS)))
    ap.add_argument("--new-tokens", default=",".join(map(str, NEW_TOKENS)))
    ap.add_argument("--dtype", default="fp16", choices=("fp16", "bf16"))
    ap.add_argument("--rounds", type=int, default=0,
                    help="--out: eager only, N interleaved rounds; keeps each round and the least-contended one")
    ap.add_argument("--errors-out", help="append per-point operator errors to this CSV (error_bands.py evidence)")
    ap.add_argument("--errors-modes", default=None, help="--errors-out: only these modes' rows (comma list)")
    ap.add_argument("--shipped-launch-costs", action="store_true",
                    help="--report: predict eager mode from the shipped launch costs (an unprofiled host)")
    a = ap.parse_args(argv)
    check_unseen()
    ints = lambda v: tuple(int(x) for x in v.split(","))  # noqa: E731
    if a.rounds < 0 or (a.rounds and a.modes != "eager"):
        ap.error(f"rounds={a.rounds} with modes={a.modes!r} is not allowed; --rounds N (N >= 1) times eager mode only: "
                 "add --modes eager")
    if a.out and a.rounds:
        measure_rounds(Path(a.out), a.device, a.rounds, shapes=a.shapes.split(",") if a.shapes else None,
                       batches=ints(a.batch), contexts=ints(a.context), new_tokens=ints(a.new_tokens), dtype=a.dtype)
    elif a.out:
        measure(Path(a.out), a.device, a.deadline_s, modes=tuple(a.modes.split(",")),
                shapes=a.shapes.split(",") if a.shapes else None, batches=ints(a.batch),
                contexts=ints(a.context), new_tokens=ints(a.new_tokens), dtype=a.dtype)
    path = Path(a.report or a.out)
    for m, s in report(path, a.gpu, Path(a.table) if a.table else None,
                       Path(a.errors_out) if a.errors_out else None, a.shipped_launch_costs,
                       a.errors_modes.split(",") if a.errors_modes else None).items():
        if m == "_rows":
            continue
        print(f"{m:5s} {s['points']:3d} points, {s['shapes']} shapes: operator-composed median "
              f"{s['operator_median']:.1%} p90 {s['operator_p90']:.1%} max {s['operator_max']:.1%} "
              f"(mean signed {s['operator_mean_signed']:+.1%}); before median {s['before_median']:.1%} "
              f"p90 {s['before_p90']:.1%}" + (f"; one host factor from the other shapes: median "
                                               f"{s['host_calibrated_median']:.1%} p90 {s['host_calibrated_p90']:.1%}"
                                               if "host_calibrated_median" in s else "")
              + (f"; host-normalised median {s['host_normalised_median']:.1%} "
                                               f"p90 {s['host_normalised_p90']:.1%}" if "host_normalised_median" in s else ""))


if __name__ == "__main__":
    main()
