"""Engine-ready speculative-decoding settings for the optimiser's winner: vLLM `--speculative-config`
JSON, SGLang launch arguments, Hugging Face `generate()` assisted-decoding arguments.

Key assumption: field names are those the engines document (URLs below, checked 2025/26); a draft
that exists only as a shape (design space or NAME:field=value) has no checkpoint yet, so its path
is a clearly marked placeholder the user must replace after distilling/pruning one.

Every user-derived string (model names from config.json, checkpoint paths, repo ids) reaches the
emitted text only quoted for its language: shell words through `shlex.quote`, Python literals
through `repr`, JSON through `json.dumps`, and comment lines with every non-printable character
(newline, carriage return, U+2028, ...) escaped, so a hostile name cannot end a comment and start
a statement. Strings that no file can carry (NUL, lone surrogates) are refused.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from specperf.perfmodel.specs.models import ModelSpec, SpecError
from specperf.perfmodel.specs.safeio import atomic_write

ENGINES = ("vllm", "sglang", "hf")
# The mode each engine runs by default, whose γ an export takes (README, "Which mode is your engine"):
# vLLM from -O1 (its default) compiles with Dynamo + Inductor under CUDA graphs; SGLang's decode runs
# fused kernels under CUDA graphs (compiled-mode costs); transformers' generate() runs eager.
ENGINE_MODE = {"vllm": "compiled", "sglang": "compiled", "hf": "eager"}
# vLLM draft-model speculative decoding: speculative_config keys model, num_speculative_tokens, method
# ("draft_model"), draft_tensor_parallel_size:
#   https://docs.vllm.ai/en/latest/features/speculative_decoding/draft_model/
#   https://docs.vllm.ai/en/stable/features/speculative_decoding/mlp/ (draft_tensor_parallel_size)
# disable_by_batch_size ("Disable speculative decoding for new incoming requests when the number of
# enqueued requests is larger than this value") is gone from SpeculativeConfig in vLLM 0.32, whose
# pydantic config forbids unknown keys (the server refuses to start: "Unexpected keyword argument"),
# so the threshold is reported as a note, not emitted:
#   https://docs.vllm.ai/en/latest/api/vllm/config/speculative/
VLLM_DOC = "https://docs.vllm.ai/en/latest/features/speculative_decoding/draft_model/"
VLLM_API_DOC = "https://docs.vllm.ai/en/latest/api/vllm/config/speculative/"
# SGLang standalone (small draft model) speculative decoding: --speculative-algorithm STANDALONE,
# --speculative-draft-model-path, --speculative-num-steps (draft depth), --speculative-eagle-topk
# (branching; 1 = a single chain), --speculative-num-draft-tokens (with topk=1: num_steps + 1):
#   https://docs.sglang.io/docs/advanced_features/speculative_decoding.md
#   (source: github.com/sgl-project/sglang docs/advanced_features/speculative_decoding.md)
SGLANG_DOC = "https://docs.sglang.io/docs/advanced_features/speculative_decoding.md"
# Hugging Face assisted decoding: generate(assistant_model=...), GenerationConfig.num_assistant_tokens,
# num_assistant_tokens_schedule ("constant" keeps it fixed), assistant_confidence_threshold:
#   https://huggingface.co/docs/transformers/main/en/assisted_decoding
#   https://huggingface.co/docs/transformers/main_classes/text_generation (GenerationConfig)
HF_DOC = "https://huggingface.co/docs/transformers/main/en/assisted_decoding"
HF_CONFIG_DOC = "https://huggingface.co/docs/transformers/main_classes/text_generation"
PLACEHOLDER = "<FILL-IN: {what}>"
_HF_URL = re.compile(r"https://huggingface\.co/([^/]+/[^/]+)/blob/")


def _comment(text: str) -> str:
    """One comment line's text: every non-printable character (line breaks included) escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _safe_value(value: str, what: str) -> str:
    """A path/repo id fit to be quoted into a script: no NUL or lone surrogate (no file or argv can
    hold them), and never read as an option (a leading '-' gets './')."""
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise SpecError(f"{what} {value!r} contains a NUL or an unpaired surrogate; it cannot be exported")
    return "./" + value if value.startswith("-") else value


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise SpecError(f"emit target {engine!r} is unknown; use one of {', '.join(ENGINES)}")
    return engine


def _shape_text(spec: ModelSpec) -> str:
    return (f"{spec.family} n_layers={spec.n_layers} d_model={spec.d_model} n_heads={spec.n_heads} "
            f"n_kv_heads={spec.n_kv_heads} d_ff={spec.d_ff} vocab={spec.vocab}")


def checkpoint(spec: ModelSpec, origin: str, role: str = "draft") -> tuple[str, str | None]:
    """(path or repo id, note). Shapes without weights get a marked placeholder and a note."""
    m = _HF_URL.match(spec.source or "")
    exact = origin in ("catalog", "config") and ":" not in spec.name
    if exact and m:
        return m.group(1), None
    if exact and spec.source and Path(spec.source).name == "config.json":
        return str(Path(spec.source).parent), None
    what = f"path to a {role} checkpoint of shape {_shape_text(spec)}"
    note = (f"the {role} {spec.name!r} exists only as a shape: no checkpoint of it exists yet; create one "
            "(prune a wider model to this depth/width and distil it from the target, as Yan et al. 2025 "
            "did with Sheared-LLaMA) and replace the FILL-IN placeholder with its path")
    return PLACEHOLDER.format(what=what), note


def export_config(engine: str, target: ModelSpec, target_origin: str, draft: ModelSpec, draft_origin: str,
                  gamma: int, tp: int = 1, mode: str = "graph", disable_by_batch_size: int | None = None,
                  gamma_table: list | None = None, schedule: list | None = None) -> dict:
    """A dict with the engine's settings ('config'), a ready command or snippet ('text'), notes.
    `schedule`: [(start, end, γ)] per batch range for vLLM 0.32's num_speculative_tokens_per_batch_size
    (num_speculative_tokens becomes its largest γ, the cap vLLM clamps the schedule to)."""
    check_engine(engine)
    if not isinstance(gamma, int) or gamma < 1:
        raise SpecError(f"gamma={gamma!r} is not allowed for export; need an integer ≥ 1")
    tpath, tnote = checkpoint(target, target_origin, "target")
    dpath, dnote = checkpoint(draft, draft_origin, "draft")
    tpath, dpath = _safe_value(tpath, "target checkpoint"), _safe_value(dpath, "draft checkpoint")
    notes = [n for n in (tnote, dnote) if n]
    if draft.vocab != target.vocab:
        notes.append(f"draft vocab {draft.vocab} differs from target vocab {target.vocab}: the engines "
                     "need draft and target to share a tokenizer; this pair will not run as is")
    header = (f"specperf optimize: draft {draft.name} for target {target.name}, γ = {gamma}, tp = {tp}, "
              f"{mode} mode")
    if engine == "vllm":
        cfg = {"model": dpath, "num_speculative_tokens": gamma, "method": "draft_model",
               "draft_tensor_parallel_size": 1}
        if tp > 1:  # vLLM 0.32 SpeculativeConfig._verify_and_get_draft_tp: 1 or the target's tp, default the target's
            notes.append(f"draft_tensor_parallel_size 1: the draft is priced unsharded beside target shard 0, "
                         f"so it is pinned (vLLM 0.32's default would shard it at tp {tp}, which is not priced)")
        if schedule:
            cfg["num_speculative_tokens"] = max(max(int(g) for _, _, g in schedule), 1)
            cfg["num_speculative_tokens_per_batch_size"] = [[int(v) for v in e] for e in schedule]
            notes.append("γ per batch size (num_speculative_tokens_per_batch_size, 0 = off) from the policy's "
                         "grid; vLLM 0.32 then uses piecewise instead of full CUDA graphs")
        if disable_by_batch_size is not None and schedule:
            notes.append(f"speculation loses above batch {disable_by_batch_size}: the schedule sets γ = 0 there")
        elif disable_by_batch_size is not None:
            notes.append(f"speculation loses above batch {disable_by_batch_size}: vLLM 0.32 has no "
                         "disable_by_batch_size (the server rejects the key), so keep batches ≤ "
                         f"{disable_by_batch_size} (--max-num-seqs) or serve larger batches without speculation")
        cmd = ["vllm", "serve", tpath, "--tensor-parallel-size", str(tp), "--speculative-config",
               json.dumps(cfg)] + (["--enforce-eager"] if mode == "eager" else [])
        text = json.dumps(cfg, indent=2) + "\n"
        doc = [VLLM_DOC, VLLM_API_DOC]
    elif engine == "sglang":
        args = ["--model-path", tpath, "--tp-size", str(tp), "--speculative-algorithm", "STANDALONE",
                "--speculative-draft-model-path", dpath, "--speculative-num-steps", str(gamma),
                "--speculative-eagle-topk", "1", "--speculative-num-draft-tokens", str(gamma + 1)]
        args += ["--disable-cuda-graph"] if mode == "eager" else []
        cfg = {"speculative_algorithm": "STANDALONE", "speculative_draft_model_path": dpath,
               "speculative_num_steps": gamma, "speculative_eagle_topk": 1,
               "speculative_num_draft_tokens": gamma + 1, "tp_size": tp}
        cmd = ["python", "-m", "sglang.launch_server"] + args
        lines = [f"# {_comment(header)}", f"# SGLang standalone draft-model speculative decoding: {SGLANG_DOC}",
                 "# topk=1 drafts one chain of num_steps tokens; num_draft_tokens = num_steps + 1"]
        lines += [f"# NOTE: {_comment(n)}" for n in notes]
        text = "\n".join(lines) + "\n" + " \\\n    ".join(_quote_pairs(cmd)) + "\n"
        doc = [SGLANG_DOC]
    else:
        cfg = {"assistant_model": dpath, "num_assistant_tokens": gamma,
               "num_assistant_tokens_schedule": "constant", "assistant_confidence_threshold": 0.0}
        notes.append("Hugging Face assisted decoding supports batch size 1 only (see the doc); "
                     "assistant_confidence_threshold=0 keeps γ fixed as modelled — drop it on versions "
                     "whose GenerationConfig lacks it")
        text = _hf_snippet(header, tpath, dpath, gamma, notes)
        cmd = []
        doc = [HF_DOC, HF_CONFIG_DOC]
    return {"engine": engine, "config": cfg, "command": shlex.join(cmd) if cmd else None, "text": text,
            "notes": notes, "docs": doc, "placeholder": any(PLACEHOLDER.split("{")[0] in p for p in (tpath, dpath)),
            "gamma": gamma, "gamma_table": gamma_table, "mode": mode,
            "speculation_off_above_batch": disable_by_batch_size if engine == "vllm" else None}


_SGLANG_SWITCHES = ("--disable-cuda-graph",)  # flags that take no value (export_schema.SGLANG_ARGS)


def _quote_pairs(cmd: list[str]) -> list[str]:
    """The command as shell lines '--flag VALUE', every word shlex-quoted; a flag is paired with the
    next word unless it is a switch, so a value that looks like a flag is still a quoted value."""
    out, i = [" ".join(shlex.quote(c) for c in cmd[:3])], 3
    while i < len(cmd):
        if cmd[i] not in _SGLANG_SWITCHES and i + 1 < len(cmd):
            out.append(f"{shlex.quote(cmd[i])} {shlex.quote(cmd[i + 1])}")
            i += 2
        else:
            out.append(shlex.quote(cmd[i]))
            i += 1
    return out


def _hf_snippet(header: str, tpath: str, dpath: str, gamma: int, notes: list[str]) -> str:
    # line 1 fixes the source encoding (PEP 263 reads a "coding:" cookie from line 1 or 2, and the
    # header on line 2 carries user text; without it "decoding: https" on line 2 read as one)
    lines = ["# -*- coding: utf-8 -*-", f"# {_comment(header)}", f"# Hugging Face assisted decoding: {HF_DOC}",
             f"# GenerationConfig fields: {HF_CONFIG_DOC}"]
    lines += [f"# NOTE: {_comment(n)}" for n in notes]
    lines += ["import torch",
              "from transformers import AutoModelForCausalLM, AutoTokenizer",
              "",
              f"model = AutoModelForCausalLM.from_pretrained({tpath!r}, torch_dtype=torch.float16, device_map='auto')",
              f"assistant_model = AutoModelForCausalLM.from_pretrained({dpath!r}, torch_dtype=torch.float16).to(model.device)",
              f"tokenizer = AutoTokenizer.from_pretrained({tpath!r})",
              "generation_kwargs = dict(",
              "    assistant_model=assistant_model,",
              f"    num_assistant_tokens={gamma},",
              "    num_assistant_tokens_schedule='constant',",
              "    assistant_confidence_threshold=0.0,",
              ")",
              "# outputs = model.generate(**tokenizer(prompt, return_tensors='pt').to(model.device), **generation_kwargs)",
              ""]
    return "\n".join(lines)


def write_export(doc: dict, path: str | Path) -> Path:
    """The export's text at `path`, atomically and symlink-safe (perfmodel.specs.safeio)."""
    return atomic_write(path, doc["text"], "--emit-out")
