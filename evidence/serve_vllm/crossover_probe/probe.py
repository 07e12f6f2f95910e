"""Probe for the crossover design (issue 30): closed bursts of N requests on three live vLLM CPU
servers held up at once (no speculation, draft_model γ=3, γ=5; --max-num-seqs 64), N interleaved
across servers, to find where speculation's step stops paying. Writes probe.json beside itself.
Usage: .venv/bin/python evidence/serve_vllm/crossover_probe/probe.py [--later-scale 0.045]"""
import json, os, sys, time
from pathlib import Path
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine"), str(HERE.parent)]
import loadgen as lg, serve_live as sl, vllm_server as vs  # noqa: E401,E402
from heldout import server_argv  # noqa: E402

ls = sys.argv[sys.argv.index("--later-scale") + 1] if "--later-scale" in sys.argv else "0.045"
py = ROOT / ".venv-vllm" / "bin" / "python"
env = vs.engine_env(ROOT / ".venv-vllm")
work = Path("/tmp/xprobe"); work.mkdir(exist_ok=True)
models = sl.build_models(py, env, work / "models", ("--later-scale", ls))
prompts = json.loads((work / "models" / "prompts.json").read_text())
def argv(g):
    a = server_argv(models, g); a[a.index("--max-num-seqs") + 1] = "64"; return a
srvs = {k: vs.Server(py, argv(g), work / f"server_{k}.log", env) for k, g in (("off", None), ("g3", 3), ("g5", 5))}
out = {"later_scale": ls, "loadavg": [os.getloadavg()], "bursts": []}
try:
    for s in srvs.values(): s.start()
    time.sleep(5); out["loadavg_idle"] = os.getloadavg()
    for s in srvs.values(): lg.run_load(s.url, models["target"], prompts[:4], 32, None)
    for n in (1, 8, 16, 32, 64):
        for k, s in srvs.items():
            before = lg.histograms(s.get("/metrics"))
            ps = (prompts * 2)[:n]
            ld = lg.run_load(s.url, models["target"], ps, 64, None, arrivals=[0.0] * n, stream=False)
            time.sleep(0.3)
            after = lg.histograms(s.get("/metrics"))
            itl = lg.hist_quantile(before["inter_token_latency_seconds"], after["inter_token_latency_seconds"], 0.5)
            toks = sum(r.get("completion_tokens", 0) for r in ld["requests"])
            wall = max(r["done_s"] for r in ld["requests"])
            out["bursts"].append({"server": k, "n": n, "itl_p50_s": itl, "wall_s": wall, "tok_s": toks / wall,
                                  "loadavg": os.getloadavg()})
            print(k, n, f"itl {itl*1e3:.2f} ms  tok/s {toks / wall:.0f}  wall {wall:.2f}", os.getloadavg()[0], flush=True)
    for k, s in srvs.items(): out[f"metrics_{k}"] = vs.raw_counters(s.get("/metrics")) if k != "off" else None
finally:
    for s in srvs.values(): s.stop()
out["loadavg"].append(os.getloadavg())
(HERE / f"probe_ls{ls}.json").write_text(json.dumps(out, indent=1))
