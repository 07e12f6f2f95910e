"""The memory floor of measured attention rows: the K and V bytes one call must read at least once,
over the device's measured copy rate (`copy_bytes_per_s` in the operator table's metadata), and the
fraction of that floor each measured time achieves (floor / measured; 1 = at the floor).

Key assumption: decode and verification attention at real context lengths is bound by reading the KV
cache once (queries, outputs and FLOPs are small beside it), so the floor is a lower bound on time
that an engine-grade kernel should approach; the copy rate (bytes read + written per second of a
large device-to-device copy) stands for the reachable HBM rate.
"""
from __future__ import annotations

import numpy as np

ATTENTION_OPS = ("attention", "attention_gqa")


def kv_read_bytes(batch_heads: int, kv_len: int, head_dim: int, elem_bytes: int) -> int:
    """K and V bytes of one attention call (batch_heads = batch × KV heads)."""
    return 2 * int(batch_heads) * int(kv_len) * int(head_dim) * int(elem_bytes)


def floor_rows(table, mode: str = "graph", min_kv_len: int = 0) -> list[dict]:
    """Per measured attention row: sizes, median_s, floor_s and fraction (empty without a copy rate)."""
    rate = table.meta.get("copy_bytes_per_s")
    if not isinstance(rate, (int, float)) or not rate > 0:
        return []
    elem = {"fp16": 2, "bf16": 2, "fp32": 4}
    out = []
    for r in table.ok_rows():
        if r["op"] not in ATTENTION_OPS or r["mode"] != mode or r["kv_len"] < min_kv_len:
            continue
        f = kv_read_bytes(r["batch_heads"], r["kv_len"], r["head_dim"], elem.get(r["dtype"], 2)) / rate
        out.append({"op": r["op"], "dtype": r["dtype"], "batch_heads": r["batch_heads"], "queries": r["queries"],
                    "kv_len": r["kv_len"], "head_dim": r["head_dim"], "median_s": r["median_s"],
                    "floor_s": f, "fraction": f / r["median_s"]})
    return out


def summary(table, min_kv_len: int = 2048, mode: str = "graph") -> dict:
    """Median and worst fraction of the floor over attention rows at kv_len ≥ min_kv_len, and the rows
    whose time exceeds 1.5× the floor where the floor is above 10 µs (where launch cost cannot hide it)."""
    rows = floor_rows(table, mode, min_kv_len)
    if not rows:
        return {"n": 0}
    fr = np.array([r["fraction"] for r in rows])
    big = [r for r in rows if r["floor_s"] >= 10e-6]
    slow = [r for r in big if r["median_s"] > 1.5 * r["floor_s"]]
    return {"n": len(rows), "median_fraction": float(np.median(fr)), "min_fraction": float(fr.min()),
            "n_floor_over_10us": len(big), "n_over_1p5x_floor": len(slow),
            "copy_bytes_per_s": float(table.meta["copy_bytes_per_s"]), "min_kv_len": min_kv_len}


__all__ = ["kv_read_bytes", "floor_rows", "summary", "ATTENTION_OPS"]
