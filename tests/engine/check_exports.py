"""Run inside .venv-vllm: check specperf's exports against the installed engines themselves.

  python check_exports.py schemas            → JSON: vLLM SpeculativeConfig fields and methods,
                                               transformers GenerationConfig assistant fields
  python check_exports.py hf TARGET DRAFT CFG → JSON: runs transformers' assisted generation with the
                                               exported settings (CFG: the export's config JSON) and
                                               plain greedy generation; greedy assisted decoding must
                                               give the same tokens

Key assumption: greedy assisted decoding is lossless (the target verifies every draft token), so
identical outputs show the exported arguments reached generate() and worked.
"""
from __future__ import annotations

import json
import sys
import typing


def schemas() -> dict:
    import transformers
    import vllm
    from vllm.config import SpeculativeConfig
    from vllm.config import speculative as sp

    def literals(t):
        out = []
        for a in typing.get_args(t):
            out += literals(a) if typing.get_args(a) else [a]
        return out
    fields = sorted(getattr(SpeculativeConfig, "__dataclass_fields__", {}))
    gc = transformers.GenerationConfig()
    return {"vllm": vllm.__version__, "transformers": transformers.__version__,
            "speculative_config_fields": fields, "methods": sorted(map(str, literals(sp.SpeculativeMethod))),
            "generation_config_assistant": {k: getattr(gc, k) for k in
                                            ("num_assistant_tokens", "num_assistant_tokens_schedule",
                                             "assistant_confidence_threshold") if hasattr(gc, k)},
            "generation_config_prompt_lookup": [k for k in ("prompt_lookup_num_tokens", "max_matching_ngram_size")
                                                if hasattr(gc, k)]}


def hf(target: str, draft: str, cfg_path: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    cfg = json.loads(open(cfg_path).read())
    kwargs = {k: v for k, v in cfg.items() if k != "assistant_model"}
    GenerationConfig(**kwargs).validate(strict=True)
    tok = AutoTokenizer.from_pretrained(target)
    t = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()
    d = AutoModelForCausalLM.from_pretrained(cfg["assistant_model"] or draft, dtype=torch.float32).eval()
    ids = tok("speculative decoding predicts throughput", return_tensors="pt")
    with torch.no_grad():
        plain = t.generate(**ids, max_new_tokens=24, do_sample=False)
        assisted = t.generate(**ids, max_new_tokens=24, do_sample=False, assistant_model=d, **kwargs)
    return {"identical": plain.tolist() == assisted.tolist(), "new_tokens": int(assisted.shape[1] - ids.input_ids.shape[1]),
            "kwargs": kwargs}


if __name__ == "__main__":
    out = schemas() if sys.argv[1] == "schemas" else hf(*sys.argv[2:5])
    print(json.dumps(out))
