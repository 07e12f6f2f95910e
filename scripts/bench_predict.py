#!/usr/bin/env python
"""Benchmark (not a test): cold-start wall time of `specperf predict ... --json` and the rate of a
vectorised α × γ × c sweep of the closed-form speedup and optimal γ.

Targets (issue 2): cold start < 1.0 s; sweep ≥ 1e6 points/s. Prints one line per measurement with
its target beside it, then one machine-readable JSON line. Usage: python scripts/bench_predict.py
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREDICT_ARGS = ["predict", "--target", "llama-65b", "--draft", "sheared-llama-1.3b", "--gpu", "h100-sxm",
                "--tp", "4", "--alpha", "0.8", "--gamma", "auto", "--json"]
COLD_TARGET_S = 1.0
SWEEP_TARGET_PER_S = 1e6


def _command() -> list[str]:
    """The installed console script next to this interpreter, else the module entry point."""
    exe = Path(sys.executable).parent / "specperf"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("specperf")
    if found:
        return [found]
    return [sys.executable, "-c", "from specperf.cli.main import main; main()"]


def cold_start(repeats: int = 5) -> dict:
    cmd = _command() + PREDICT_ARGS
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)  # warm-up (disk cache)
    import resource

    times, cpu = [], []  # wall time is what users see; child CPU time is less sensitive to a busy box
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
        if p.returncode != 0:
            raise SystemExit(f"specperf predict failed: {p.stderr.decode()[-500:]}")
        json.loads(p.stdout)  # it must be one JSON document
    floor = []  # context: a bare interpreter start, and numpy + typer imports, on the same box now
    for code in ("pass", "import numpy, typer"):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
            ts.append(time.perf_counter() - t0)
        floor.append(statistics.median(ts))
    return {"command": " ".join(["specperf"] + PREDICT_ARGS), "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times), "repeats": repeats,
            "cpu_median_s": statistics.median(cpu),
            "python_start_median_s": floor[0], "numpy_typer_import_median_s": floor[1]}


def sweep(n_alpha: int = 200, gamma_max: int = 64, n_c: int = 200, repeats: int = 5) -> dict:
    """Two layouts of the same 2.56 M (α, γ, c) points: a broadcast grid (α[:,None,None] etc.,
    how a caller sweeps; E(α, γ) is then computed once per (α, γ)) and flat arrays of independent
    random points (no work shared between points: the conservative rate)."""
    import numpy as np

    from specperf.perfmodel.specdec.maths import optimal_gamma_cost_ratio, speedup_cost_ratio

    points = n_alpha * gamma_max * n_c
    a = np.linspace(0.0, 0.99, n_alpha)[:, None, None]
    g = np.arange(1, gamma_max + 1, dtype=float)[None, :, None]
    c = np.linspace(0.0, 1.0, n_c)[None, None, :]
    rng = np.random.default_rng(0)
    fa, fg, fc = rng.uniform(0, 0.99, points), rng.integers(1, gamma_max + 1, points), rng.uniform(0, 1, points)
    pa, pc = rng.uniform(0, 0.99, n_alpha * n_c), rng.uniform(0, 1, n_alpha * n_c)
    timings: dict[str, list[float]] = {k: [] for k in ("grid_speedup", "grid_optimal", "flat_speedup",
                                                       "flat_optimal")}
    for _ in range(repeats):
        for key, fn in (("grid_speedup", lambda: speedup_cost_ratio(a, g, c)),
                        ("grid_optimal", lambda: optimal_gamma_cost_ratio(a[:, 0, :], c[:, 0, :], gamma_max)),
                        ("flat_speedup", lambda: speedup_cost_ratio(fa, fg, fc)),
                        ("flat_optimal", lambda: optimal_gamma_cost_ratio(pa, pc, gamma_max))):
            t0 = time.perf_counter()
            out = fn()
            timings[key].append(time.perf_counter() - t0)
    s = speedup_cost_ratio(a, g, c)
    g_opt, s_opt = optimal_gamma_cost_ratio(a[:, 0, :], c[:, 0, :], gamma_max)
    assert s.shape == (n_alpha, gamma_max, n_c) and g_opt.shape == (n_alpha, n_c) and out[0].shape == pa.shape
    assert np.allclose(s.max(axis=1), s_opt)  # the two paths agree
    res = {"points": points, "grid": [n_alpha, gamma_max, n_c], "repeats": repeats}
    for key, ts in timings.items():
        res[f"{key}_median_s"] = statistics.median(ts)
        res[f"{key}_points_per_s"] = points / statistics.median(ts)
    return res


def main() -> None:
    cs = cold_start()
    sw = sweep()
    ok_cold = cs["median_s"] < COLD_TARGET_S
    rates = {k[:-len("_points_per_s")]: v for k, v in sw.items() if k.endswith("_points_per_s")}
    ok_sweep = min(rates.values()) >= SWEEP_TARGET_PER_S
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {load:.2f} at start of report")
    print(f"cold start `{cs['command']}`: median {cs['median_s']:.3f} s of {cs['repeats']} "
          f"(min {cs['min_s']:.3f}, max {cs['max_s']:.3f})   target < {COLD_TARGET_S:.1f} s   "
          f"{'OK' if ok_cold else 'MISSED'}")
    print(f"  child CPU time (user+sys) median {cs['cpu_median_s']:.3f} s")
    print(f"  for context: bare `python -c pass` {cs['python_start_median_s']:.3f} s, "
          f"`import numpy, typer` {cs['numpy_typer_import_median_s']:.3f} s (medians, same box, same time)")
    labels = {"grid_speedup": "speedup_cost_ratio, broadcast α×γ×c grid",
              "grid_optimal": "optimal_gamma_cost_ratio, broadcast α×c grid, γ=1..64",
              "flat_speedup": "speedup_cost_ratio, flat independent (α, γ, c) points",
              "flat_optimal": "optimal_gamma_cost_ratio, flat independent (α, c) pairs, γ=1..64"}
    for key, label in labels.items():
        r = rates[key]
        print(f"sweep {label} ({sw['points']:,} points): {r:.3g} points/s   "
              f"target ≥ {SWEEP_TARGET_PER_S:.0e}   {'OK' if r >= SWEEP_TARGET_PER_S else 'MISSED'}")
    print(json.dumps({"bench": "predict", "cold_start": cs, "cold_start_target_s": COLD_TARGET_S,
                      "sweep": sw, "sweep_target_points_per_s": SWEEP_TARGET_PER_S,
                      "targets_met": {"cold_start": ok_cold, "sweep": ok_sweep},
                      "cpus": os.cpu_count(), "load_average_1min": load, "python": platform.python_version()}))


if __name__ == "__main__":
    main()
