"""Issue 25: ≥ 10⁴ seeded fuzz examples of every parser and of the closed form, in the default run.

Mutated real inputs (tests/fuzzkit.py: one numpy Generator per parser, so a failure is reproduced by
its index) go to each parser: the vLLM Prometheus /metrics reader (alone and against a --baseline
scrape), the other trace formats (per-iteration CSV, gpt-fast histograms, mean length), the
per-request engine readers (vLLM, SGLang, llama.cpp), the agreement record and prompt-set readers,
the serving workload traces, token-tree acceptance files, operator tables and the CLI's list,
range and length flags. A parser may accept (then its answer is checked: counts ≥ 0 and nested,
probabilities in [0, 1], lengths within their bounds — a NaN or negative accepted is a failure) or
raise the one bad-input type (InputError, one line); anything else fails the test. Every parser
runs FUZZ_N examples (10⁴; SPECPERF_FUZZ_N overrides), all of them in about a minute on the 2-core CI box.
"""
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from specperf.calibration import engine_requests as er
from specperf.calibration import prometheus as pm
from specperf.calibration import traces as tr
from specperf.calibration.agreement import make_record, read_prompts, read_record, write_record
from specperf.cli import options as o
from specperf.cli.calibrate_cmds import _labels as calibrate_labels
from specperf.cli.common import MAX_LIST_VALUES, parse_floats, parse_ints, parse_names
from specperf.cli.serve_cmd import float_list
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.latency.operator_table import OperatorTable
from specperf.perfmodel.serving import workload as wl
from specperf.perfmodel.specdec.acceptance import AcceptanceModel, tokens_per_iteration_tree
from specperf.perfmodel.specdec.maths import (GAMMA_MAX, optimal_gamma_cost_ratio, speedup_cost_ratio, throughput_tok_s,
                                     iteration_s, speedup, tokens_per_iteration)
from specperf.perfmodel.specdec.trees import read_rank_acceptance, rank_matrix
from specperf.perfmodel.specs.errors import InputError

from fuzzkit import run, text

ROOT = Path(__file__).resolve().parents[1]
CAL, ENG = ROOT / "tests" / "data" / "calibration", ROOT / "tests" / "fixtures" / "engines"
FUZZ_N = int(os.environ.get("SPECPERF_FUZZ_N", "10000"))


def _seed(p: Path, lines: int = 60) -> bytes:
    return ("\n".join(p.read_text(encoding="utf-8").splitlines()[:lines]) + "\n").encode()


# ---- what a correct answer looks like --------------------------------------------------------------
def check_acceptance(d) -> str | None:
    """AcceptanceData that is a possible trace: counts ≥ 0, nested by position, means within [0, γ]."""
    if not d.gammas or any(int(g) != g or g < 1 for g in d.gammas):
        return f"gammas {d.gammas}"
    if d.n_drafts is not None and not (isinstance(d.n_drafts, int) and d.n_drafts >= 1):
        return f"n_drafts {d.n_drafts!r}"
    if d.reached is None:
        m = d.mean_accepted
        return None if m is not None and math.isfinite(m) and 0 <= m <= max(d.gammas) else f"mean_accepted {m!r}"
    n, k = np.asarray(d.reached), np.asarray(d.accepted)
    if n.size == 0 or np.any(k < 0) or np.any(k > n) or np.any(n[1:] > k[:-1]) or n[0] > d.n_drafts:
        return f"counts reached={n.tolist()[:8]} accepted={k.tolist()[:8]} of {d.n_drafts} drafts"
    for g, h in d.histogram.items():
        if np.any(np.asarray(h) < 0) or len(h) != g + 1:
            return f"histogram γ={g}: {list(h)[:8]}"
    if sum(int(np.sum(h)) for h in d.histogram.values()) != d.n_drafts:
        return f"histograms hold {sum(int(np.sum(h)) for h in d.histogram.values())} iterations, n_drafts {d.n_drafts}"
    return None


def check_record(rec) -> str | None:
    if np.any((rec.greedy_match != 0) & (rec.greedy_match != 1)) or np.any(rec.draft_rank < -1):
        return "greedy_match/draft_rank"
    q = rec.accept_prob[~np.isnan(rec.accept_prob)]
    if np.any((q < 0) | (q > 1)):
        return f"accept_prob {q.tolist()[:5]}"
    for _, _, s in rec.spans():
        if not np.array_equal(rec.position[s], np.arange(s.stop - s.start)):
            return "positions"
    return None


def check_prompts(ps) -> str | None:
    ok = all(len(t) >= 2 and all(type(x) is int and x >= 0 for x in t) for _, _, t in ps)
    return None if ok and len({p for p, _, _ in ps}) == len(ps) else "prompts"


def check_lengths(pair) -> str | None:
    for dist in pair:
        if not dist.values or any(type(v) is not int or not 1 <= v <= wl.MAX_LENGTH for v in dist.values):
            return f"lengths {dist.values[:5]}"
    return None


def check_rank_rows(rows) -> str | None:
    a = np.asarray(rows, dtype=float)
    if a.ndim != 2 or not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a.sum(axis=1) > 1 + 1e-9):
        return f"rank acceptance {a.tolist()[:2]}"
    return None


def check_operator_table(t) -> str | None:
    for r in t.rows:
        if any(r[c] < 0 for c in ("tokens", "n", "k", "batch_heads", "queries", "kv_len", "head_dim", "copies")):
            return f"negative size {r}"
        if r["status"] == "ok" and not (math.isfinite(r["median_s"]) and 0 < r["median_s"] < 3600):
            return f"median_s {r['median_s']}"
    return None


def check_ints(lo: int, hi: int):
    def check(vals):
        ok = vals and all(type(v) is int and lo <= v <= hi for v in vals) and len(vals) <= o.MAX_VALUES
        return None if ok else f"values {vals[:5]}"
    return check


# ---- parsers: bytes → answer ---------------------------------------------------------------------
def trace_text(data: bytes):
    """calibration.traces.read_trace after the file is read: format detection, then the reader."""
    t = text(data)
    if not t.strip():
        raise InputError("empty")
    fmt = tr.detect_format(t, "fuzz")
    if fmt == "vllm-metrics":
        return pm.read_vllm_metrics(t, "fuzz")
    if fmt in er.REQUEST_FORMATS:
        return er.read_requests(t, "fuzz", fmt)
    return {"histogram": tr.read_histogram, "mean-length": tr.read_mean_length}.get(fmt, tr.read_iterations)(t, "fuzz")


def metrics_with_baseline(data: bytes):
    """The first half of the lines as the --baseline scrape, the rest as the trace."""
    lines = text(data).splitlines()
    b, t = "\n".join(lines[: len(lines) // 2]) + "\n", "\n".join(lines[len(lines) // 2:]) + "\n"
    ordered, _ = pm.order_baseline(b, t, "fuzz")
    return pm.read_vllm_metrics(ordered, "fuzz")


def requests(fmt: str):
    return lambda data: er.read_requests(text(data), "fuzz", fmt)


class Files:
    """One temporary folder: each example overwrites the same file(s) and reads them back."""

    def __init__(self, d: Path):
        self.d = d

    def reader(self, name: str, read, sidecar: bytes | None = None):
        p = self.d / name
        if sidecar is not None:
            Path(str(p) + ".meta.json").write_bytes(sidecar)

        def parse(data: bytes):
            p.write_bytes(data)
            return read(p)
        return parse


def _agreement_seeds(d: Path) -> tuple[bytes, bytes, bytes]:
    rng = np.random.default_rng(1)
    g = [(rng.random(n) < 0.7).astype(int) for n in (6, 4, 5)]
    r = [np.where(x == 1, 0, rng.integers(1, 4, x.size)) for x in g]
    q = [np.round(rng.random(x.size), 3) for x in g]
    write_record(make_record(["p0", "p1", "p2"], ["a", "b", "a"], g, r, q,
                             meta={"continuation": "greedy", "temperature": 0}), d / "seed.csv")
    prompts = "\n".join(json.dumps({"id": f"q{i}", "domain": "code", "tokens": [1, 5, 9, i]}) for i in range(4)) + "\n"
    return (d / "seed.csv").read_bytes(), (d / "seed.csv.meta.json").read_bytes(), prompts.encode()


METRICS = [_seed(CAL / n) for n in ("vllm_metrics.txt", "vllm_two_scrapes.txt", "vllm_no_spec.txt")]
METRICS.append(b'process_start_time_seconds 1.7e9\nvllm:spec_decode_num_drafts_total 100\n'
               b'vllm:spec_decode_num_drafts_created 1.7e9\n'
               b'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 80\n'
               b'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="1"} 50\n'
               b'process_start_time_seconds 1.7e9\nvllm:spec_decode_num_drafts_total 300\n'
               b'vllm:spec_decode_num_drafts_created 1.7e9\n'
               b'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 200\n'
               b'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="1"} 120\n')
OTHER_TRACES = [_seed(CAL / n) for n in ("iterations.csv", "gptfast_stdout.txt", "mean_length.json")]
OTHER_TRACES += [b'{"accept_counts": [[3, 2, 1], [1, 1, 4]], "gamma": 2}\n', b"gamma: 4\nmean_accepted_tokens: 2.5\nn_drafts: 100\n"]
REQUEST_SEEDS = {"vllm-requests": [_seed(ENG / n, 8) for n in ("vllm_requests.jsonl", "vllm_requests_detailed.jsonl",
                                                               "vllm_requests_short.jsonl")],
                 "sglang-requests": [_seed(ENG / "sglang_requests.jsonl", 8)],
                 "llamacpp-requests": [_seed(ENG / n, 8) for n in ("llamacpp_requests.jsonl", "llamacpp_varied.jsonl")]}
OP_LINES = (ROOT / "perfmodel" / "data" / "operators_h200_fp16.csv").read_text().splitlines()
OP_SEED = ("\n".join(OP_LINES[:1] + OP_LINES[1::900][:6]) + "\n").encode()


def _cases(tmp: Path):
    f = Files(tmp)
    rec, side, prompts = _agreement_seeds(tmp)
    (tmp / "side.csv").write_bytes(rec)  # the table whose sidecar is fuzzed
    op_meta = (ROOT / "perfmodel" / "data" / "operators_h200_fp16.csv.meta.json").read_bytes()
    rank = json.dumps({"rank_acceptance": [[0.6, 0.2, 0.1], [0.5, 0.25, 0.05]], "source": "fuzz"}).encode()
    return {  # name: (parse, seeds, check)
        "prometheus": (lambda d: pm.read_vllm_metrics(text(d), "fuzz"), METRICS, check_acceptance),
        "prometheus+baseline": (metrics_with_baseline, METRICS, check_acceptance),
        "traces (iterations, histogram, mean length)": (trace_text, OTHER_TRACES, check_acceptance),
        **{f"engine {k}": (requests(k), v, check_acceptance) for k, v in REQUEST_SEEDS.items()},
        "engine requests, detected": (trace_text, sum(REQUEST_SEEDS.values(), []), check_acceptance),
        "agreement record": (f.reader("rec.csv", read_record, side), [rec], check_record),
        "agreement sidecar": (f.reader("side.csv.meta.json", lambda p: read_record(tmp / "side.csv")), [side],
                              check_record),
        "agreement prompts": (f.reader("prompts.jsonl", read_prompts), [prompts], check_prompts),
        "workload trace csv": (f.reader("w.csv", wl.read_trace), [b"prompt_tokens,output_tokens\n10,20\n300,41\n7,1\n"],
                               check_lengths),
        "workload trace jsonl": (f.reader("w.jsonl", wl.read_trace),
                                 [b'{"prompt_tokens": 12, "output_tokens": 50}\n{"prompt_tokens": 3, "output_tokens": 9}\n'],
                                 check_lengths),
        "tree rank acceptance": (f.reader("tree.json", read_rank_acceptance), [rank], check_rank_rows),
        "operator table": (f.reader("ops.csv", OperatorTable.load, op_meta), [OP_SEED], check_operator_table),
        "--gamma/--batch lists": (lambda d: o.int_list(text(d), "batch", hi=o.BOUNDS["batch"]),
                                  [b"1,2,4", b"1..8", b"1..256:8", b"64"], check_ints(1, o.BOUNDS["batch"])),
        "--batch x --context": (lambda d: o.batch_context(*(text(d).split(";", 1) + ["512"])[:2]),
                                [b"1..8;512", b"1,4;128..4096:128"],
                                lambda bc: check_ints(1, o.BOUNDS["batch"])(bc[0]) or check_ints(1, o.BOUNDS["context"])(bc[1])),
        "parse_ints lists": (lambda d: parse_ints(text(d), "batch"), [b"1,2,4", b"1..8", b"1..32:4"],
                             lambda v: None if v and len(v) <= MAX_LIST_VALUES and min(v) > 0 else f"ints {v[:4]}"),
        "--alpha lists": (lambda d: parse_floats(text(d), "alpha"), [b"0.6,0.8", b"0.5"],
                          lambda v: None if v and all(math.isfinite(x) for x in v) else f"floats {v[:4]}"),
        "--rate lists": (lambda d: float_list(text(d), "rate", 1e5), [b"0.5,1,2", b"8"],
                         lambda v: None if v and all(math.isfinite(x) and 0 < x <= 1e5 for x in v) else f"rates {v[:4]}"),
        "--gamma/--mode/--method": (lambda d: (lambda a, b, c: (o.gamma_list(a, 8), o.modes(b), o.methods(c)))(
                                        *(text(d).split(";") + ["", "", ""])[:3]),
                                    [b"1..8;graph,eager;draft", b"auto;all;eagle,mtp", b"4;both;draft"],
                                    lambda r: None if (r[0] is None or check_ints(1, 64)(r[0]) is None) and r[1] and r[2]
                                    else f"{r}"),
        "model names": (lambda d: [resolve_model(n) for n in parse_names(text(d), "draft")],
                        [b"llama-7b", b"sheared-llama-1.3b,llama-7b:n_layers=2,d_model=2048", b"opt-350m:embed_dim=512"],
                        lambda specs: None if all(s.params > 0 and s.weight_bytes > 0 for s in specs) else "spec"),
        "--label": (lambda d: calibrate_labels([text(d)] if b";" not in d else text(d).split(";")),
                    [b'model_name=llama', b'engine=0;model_name="x"'], lambda lab: None if all(k for k in lab) else f"{lab}"),
        "--prompt-len": (lambda d: wl.parse_length(text(d), "prompt-len"), [b"128", b"64..256"],
                         lambda ld: None if 1 <= ld.lo <= ld.hi <= wl.MAX_LENGTH else f"{ld}"),
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    shm = Path("/dev/shm")  # memory-backed where there is one: 10⁴ rewrites of a file cost no disk
    d = Path(tempfile.mkdtemp(prefix="specperf-fuzz-", dir=shm)) if os.access(shm, os.W_OK) else tmp_path_factory.mktemp("fuzz")
    yield _cases(d)
    shutil.rmtree(d, ignore_errors=True)


def _names():
    with tempfile.TemporaryDirectory() as d:
        return list(_cases(Path(d)))


@pytest.mark.parametrize("name", _names())
def test_parser_survives_10k_fuzz_examples(cases, name):
    parse, seeds, check = cases[name]
    rep = run(name, parse, seeds, FUZZ_N, seed=sum(map(ord, name)), check=check)
    print(rep.summary())
    assert not rep.failures, rep.summary()
    assert rep.accepted > 0, f"{name}: the fuzz never reached the success path"


_OP_ROW = OP_LINES[1].split(",")
FOUND = [  # inputs the fuzz found crashing or silently accepted (issue 25), each now one InputError line
    ("traces (iterations, histogram, mean length)", b'{"accept_counts": [3, 2, 1], "accept_counts": 2}'),
    ("traces (iterations, histogram, mean length)", b'{"accept_counts": [[3, 2, 1], [1, 1, 9007199254740993]], "gamma": 2}'),
    ("traces (iterations, histogram, mean length)", b"gamma,accepted\n4," + b"7" * 140_000 + b"\n"),
    ("engine vllm-requests", json.dumps({"metrics": {"speculative_decoding": {
        "acceptance_histogram": [0, 1], "num_spec_steps": 1, "num_accepted_draft_tokens": 1, "num_draft_tokens": 1,
        "num_spec_tokens": 1, "per_step_accepted": [1], "per_step_drafted": [2 ** 53]}}}).encode()),
    ("engine sglang-requests", b'{"meta_info": {"spec_verify_ct": 0, "spec_accept_length": NaN}, "gamma": 4}\n'
                               b'{"meta_info": {"spec_verify_ct": 10, "spec_accept_length": 2.5}, "gamma": 4}\n'),
    ("engine sglang-requests", b'{"meta_info": {"spec_verify_ct": 1' + b"0" * 5000 + b'}}'),
    ("operator table", (OP_LINES[0] + "\n" + ",".join(_OP_ROW[:4] + ["inf"] + _OP_ROW[5:]) + "\n").encode()),
    ("operator table", (OP_LINES[0] + "\n" + ",".join(_OP_ROW[:12] + ["1e20"] + _OP_ROW[13:]) + "\n").encode()),
    ("agreement record", b"prompt,domain,position,greedy_match,draft_rank,accept_prob\np0,a,99999999999999999999,1,0,0.5\n"),
    ("agreement record", b"prompt,domain,position,greedy_match,draft_rank,accept_prob\np0,a,0,1,0,0.5\r,\n"),
    ("workload trace jsonl", b'{"prompt_tokens": 1' + b"0" * 5000 + b', "output_tokens": 3}\n'),
    ("tree rank acceptance", b"7" * 5000),
    ("--alpha lists", b"0.6,nan"), ("--alpha lists", b"1e400"),
    ("parse_ints lists", b"1..99999999999999999999:4"),
    ("model names", b"/" + b"x" * 300 + b"/y.json"), ("model names", b"a\x00b/config.json"), ("model names", b"x" * 300),
]


@pytest.mark.parametrize("name,data", FOUND, ids=[f"{n[:20]}-{i}" for i, (n, _) in enumerate(FOUND)])
def test_what_the_fuzz_found_is_one_input_error(cases, name, data):
    with pytest.raises(InputError) as e:
        cases[name][0](data)
    assert "\n" not in str(e.value)
