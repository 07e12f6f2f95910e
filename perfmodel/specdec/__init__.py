"""Speculative-decoding maths: tokens per iteration (i.i.d. and by position), the one
iteration-time / throughput / speedup formula and the draft-context rule (`maths`), acceptance
models and the α model for drafts that do not exist yet, and `predict`, which takes any latency
provider (it imports no latency module). Depends only on `perfmodel.specs`."""
