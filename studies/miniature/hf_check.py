"""Does Hugging Face assisted generation accept what specperf's loop accepts, with identical weights?
A diagnostic for the study's HF client: one random-weight target of the study's shape and a draft
that is the same model with small weight noise (so acceptance is partial), decoded greedily from
the same prompts by specperf's loop (profiler.specloop) and by `generate(assistant_model=…)`, in
the given dtype. Reports tokens per iteration of both and whether HF's output equals the target's
own greedy output (assisted greedy decoding must reproduce it exactly).

    PYTHONPATH=. python -m studies.miniature.hf_check --device cuda --dtype bf16

Key assumption: with identical weights and greedy verification both clients see the same drafts and
the same target argmaxes, so tokens per iteration over the same number of generated tokens should
agree up to rounding differences between their kernels.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from specperf.profiler.specloop_weights import load_decoder

from . import lm, throughput
from .family import Shape


def build(directory: Path, shape: Shape, vocab: int, noise: float, seed: int = 0) -> tuple[Path, Path]:
    torch.manual_seed(seed)
    m = lm.LM(shape, vocab)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 2.0 / shape.d_model ** 0.5)  # peaked logits: greedy choices are not ties
    t = lm.export(m, directory / "target", dict(shape.hf_config(), vocab_size=vocab), dtype=torch.float32)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(noise * p.std() * torch.randn_like(p))
    d = lm.export(m, directory / "draft", dict(shape.hf_config(), vocab_size=vocab), dtype=torch.float32)
    return t, d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--noise", type=float, default=0.005)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    shape, vocab, dev = Shape("check-8x512", 8, 512, "target"), 8192, a.device
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    prompts = torch.randint(3, vocab, (2, 257), generator=torch.Generator().manual_seed(1)).to(dev)
    res = {"device": torch.cuda.get_device_name(0) if dev.startswith("cuda") else "cpu", "dtype": a.dtype}
    import transformers
    res["transformers"] = transformers.__version__
    with tempfile.TemporaryDirectory() as tmp:
        tdir, ddir = build(Path(tmp), shape, vocab, a.noise)
        tgt = load_decoder(tdir, dtype=a.dtype, device=dev)[1]
        drf = load_decoder(ddir, dtype=a.dtype, device=dev)[1]
        ht, hd = throughput.load_hf(tdir, dev, dt), throughput.load_hf(ddir, dev, dt)
        for g in (2, 4):
            loop = throughput.specloop_run(drf, tgt, prompts, g, 24, "eager", device=dev, warmup=0)
            hf = throughput.hf_run(ht, hd, prompts, g, a.new_tokens, dev)
            alone = ht.generate(prompts[:1], max_new_tokens=a.new_tokens, do_sample=False, pad_token_id=2)
            assisted = ht.generate(prompts[:1], max_new_tokens=a.new_tokens, do_sample=False, pad_token_id=2,
                                   assistant_model=hd)
            same = int((alone[0] == assisted[0]).all())
            res[f"gamma_{g}"] = {"loop_tokens_per_iteration": loop["tokens_per_iteration"],
                                 "hf_tokens_per_iteration": hf["tokens_per_iteration"],
                                 "hf_draft_forwards_per_iteration": hf["draft_forwards"] / hf["iterations"],
                                 "hf_output_equals_target_greedy": same,
                                 "first_mismatch": int((alone[0] != assisted[0]).nonzero()[0, 0]) if not same else None}
            print(json.dumps({g: res[f"gamma_{g}"]}), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
