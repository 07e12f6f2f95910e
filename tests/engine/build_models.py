"""Build the engine tests' tiny models from nothing (run with .venv-vllm's python, which has torch,
transformers and tokenizers): a byte-level BPE tokenizer trained on the Python standard library's
sources (local text, fixed for a Python release), a random LLaMA target and a draft made of the
target's first layers (same embeddings, final norm and LM head), both written with save_pretrained.
Nothing is downloaded.

Key assumption: a draft that shares the target's first layers agrees with it often but not always
(its logits miss the later layers' updates). With plain random initialisation every layer rewrites
the residual stream and the draft agrees with the target on ~1 % of greedy tokens, so the layers the
draft lacks have their output projections (o_proj, down_proj) scaled by --later-scale (default 0.1:
~60 % greedy agreement, varying by prompt), as in trained models where later layers refine rather
than replace the residual stream. Acceptance is measured by the tests, not assumed.

Usage: python build_models.py OUT_DIR [--layers 6] [--draft-layers 2] [--d-model 256] [--later-scale 0.1]
Writes OUT_DIR/target, OUT_DIR/draft, OUT_DIR/prompts.json and prints a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Local text that does not change with this repository: the Python standard library's own sources
# (fixed for a Python release), so the tokenizer, models and prompts are the same at every commit.
STDLIB_MODULES = ("argparse", "textwrap", "string", "json.decoder", "json.encoder", "fractions", "statistics")


def corpus() -> list[str]:
    import importlib

    files = [Path(importlib.import_module(m).__file__) for m in STDLIB_MODULES]
    lines = [ln.strip() for p in files for ln in p.read_text(errors="ignore").splitlines()]
    return [ln for ln in lines if len(ln) > 20]


def train_tokenizer(lines: list[str], vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--draft-layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--later-scale", type=float, default=0.1,
                    help="scale of the output projections of the layers the draft lacks")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not 1 <= a.draft_layers < a.layers:
        print(f"draft-layers={a.draft_layers} is not allowed; need 1 ≤ draft-layers < layers={a.layers}",
              file=sys.stderr)
        return 2
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(a.seed)
    lines = corpus()
    tok = train_tokenizer(lines, a.vocab)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=a.d_model, intermediate_size=a.d_model * 8 // 3 // 64 * 64,
                      num_hidden_layers=a.layers, num_attention_heads=a.d_model // 64,
                      num_key_value_heads=a.d_model // 64, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      tie_word_embeddings=False, torch_dtype="float32")
    target = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # later layers nudge the residual stream instead of overwriting it
        for layer in target.model.layers[a.draft_layers:]:
            layer.self_attn.o_proj.weight.mul_(a.later_scale)
            layer.mlp.down_proj.weight.mul_(a.later_scale)
    dcfg = LlamaConfig(**{**cfg.to_dict(), "num_hidden_layers": a.draft_layers})
    draft = LlamaForCausalLM(dcfg).eval()
    missing, unexpected = draft.load_state_dict(target.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"draft weights not covered by the target: {missing}")
    out = Path(a.out)
    for name, model in (("target", target), ("draft", draft)):
        model.save_pretrained(out / name, safe_serialization=True)
        tok.save_pretrained(out / name)
    rng = torch.Generator().manual_seed(a.seed + 1)
    picks = torch.randperm(len(lines), generator=rng)[:64].tolist()
    prompts = [lines[i][:80] for i in picks]
    (out / "prompts.json").write_text(json.dumps(prompts, indent=1))
    print(json.dumps({"target": str(out / "target"), "draft": str(out / "draft"), "vocab": len(tok),
                      "layers": a.layers, "draft_layers": a.draft_layers, "d_model": a.d_model,
                      "later_scale": a.later_scale,
                      "dropped_from_target": len(unexpected), "prompts": len(prompts)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
