"""Physical-consistency check of latency tables (perfmodel.latency.integrity): time must not fall by
more than 10 % as batch, new tokens or context grow, nor a tp shard be slower than the smaller tp's;
planted violations are found (and noise below the tolerance is not), the answer that a flagged row
serves carries a note, a row more than 25 % slower than a point that dominates it is capped at that
point's time (and the answer says so), and the issue's shipped example (H100 eager tp 4, batch 4:
context 128 slower than 512) is capped and flagged."""
import numpy as np
import pytest

from specperf.perfmodel.latency.integrity import CAP_TOL, cap_contradicted, consistency_flags, consistency_report
from specperf.perfmodel.latency.measured import MeasuredLatency
from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, layer_shape_key
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS

SPEC = resolve_model("llama-7b")


def _law(b, n, c, tp=1):  # a physical layer time: weights + work ∝ batch·tokens·(context + tokens)
    return (1e-4 + 2e-7 * b * n + 1e-10 * b * n * (c + n)) / tp


def _table(plant=None) -> LatencyTable:
    t = LatencyTable(meta={"gpu": "h100-sxm"})
    for tp in (1, 2):
        for b in (1, 4, 16):
            for n in (1, 5):
                for c in (128, 512, 2048):
                    v = _law(b, n, c, tp) * (plant or {}).get((tp, b, n, c), 1.0)
                    t.add(dict(gpu="h100-sxm", model="llama-7b", shape=layer_shape_key(SPEC), head_shape="",
                               component="layer", mode="eager", dtype="fp16", tp=tp, batch=b, new_tokens=n,
                               context=c, median_s=v, p10_s=v, p90_s=v, repeats=5, status="ok", reason=""))
                t.add(dict(gpu="h100-sxm", model="llama-7b", shape="", head_shape=head_shape_key(SPEC),
                           component="lm_head", mode="eager", dtype="fp16", tp=tp, batch=b, new_tokens=n, context=0,
                           median_s=1e-4 * b * n, p10_s=1e-4, p90_s=1e-4, repeats=5, status="ok", reason=""))
    return t


def test_a_physical_table_has_no_flags_and_noise_below_tolerance_passes():
    assert all(e["flagged_groups"] == 0 for e in consistency_report(_table().rows).values())
    noisy = _table({(1, 4, 1, 512): 0.95})  # 5 % below its neighbours: within timing noise
    assert all(e["pairs"] == 0 for e in consistency_report(noisy.rows).values())


def test_planted_violations_are_found_on_the_right_axis():
    # context 128 timed 40 % above context 512 (the issue's H100 eager row), a tp 2 shard slower than tp 1
    t = _table({(1, 4, 1, 128): 1 / 0.6 * _law(4, 1, 512) / _law(4, 1, 128), (2, 16, 5, 2048): 3.0})
    groups = {}
    for r in t.ok_rows():
        if r["component"] == "layer":
            groups.setdefault(("layer", r["shape"], r["tp"], r["mode"], 2), []).append(
                (r["batch"], r["new_tokens"], r["context"], r["median_s"]))
    flags = consistency_flags(groups)
    tp1 = flags[("layer", layer_shape_key(SPEC), 1, "eager", 2)]
    assert ("context", (4, 1, 128), (4, 1, 512)) in [(f[0], f[1], f[2]) for f in tp1]
    assert all((4, 1, 128) in f[1:3] for f in tp1)  # every flagged pair holds the planted row
    assert next(f[3] for f in tp1 if f[0] == "context") == pytest.approx(0.4, abs=1e-9)
    tp2 = flags[("layer", layer_shape_key(SPEC), 2, "eager", 2)]
    assert ("tp", (16, 5, 2048), (16, 5, 2048)) in [(f[0], f[1], f[2]) for f in tp2]


def test_the_answer_served_by_a_flagged_row_says_so(tmp_path):
    t = _table({(1, 4, 1, 128): 2.0})
    t.save(tmp_path / "p.csv")
    prov = MeasuredLatency(tmp_path / "p.csv", GPUS["h100-sxm"])
    bad = prov.forward(SPEC, 4, 1, 256, 1, "eager")  # interpolated between context 128 and 512 at batch 4
    assert any("physical-consistency check" in n and "capped" in n and "b4 n1 ctx128" in n
               for n in bad.sources["layer"].notes)
    good = prov.forward(SPEC, 16, 5, 2048, 1, "eager")
    assert not any("physical-consistency" in n for n in good.sources["layer"].notes)
    assert np.isfinite(bad.total_s)


def test_shipped_h100_eager_tp4_rows_of_the_issue_are_capped_and_flagged():
    prov = build_provider(GPUS["h100-sxm"]).target
    ft = prov.forward(resolve_model("llama-65b"), 4, 1, 256, 4, "eager")  # between context 128 and 512
    notes = [n for n in ft.sources["layer"].notes if "physical-consistency" in n]
    assert notes and "capped" in notes[0] and "b4 n1 ctx128" in notes[0]


def test_a_row_its_table_contradicts_is_capped_at_the_larger_point_and_noise_is_not():
    pts = [(b, n, c, _law(b, n, c)) for b in (1, 4, 16) for n in (1, 5) for c in (128, 512, 2048)]
    assert cap_contradicted(pts) == (pts, [])  # a physical table is left alone
    spike = {(4, 1, 128): 2.0, (16, 5, 512): 1 / (1 - CAP_TOL) * 0.99}  # the second: just under the cap
    planted = [p[:3] + (p[3] * spike.get(p[:3], 1.0),) for p in pts]
    out, capped = cap_contradicted(planted)
    bound = min(_law(b, n, c) for b, n, c, _ in pts if (b, n, c) >= (4, 1, 128) and b >= 4 and c >= 128
                and (b, n, c) != (4, 1, 128))
    assert [c[0][:3] for c in capped] == [(4, 1, 128)] and capped[0][1] == pytest.approx(bound)
    assert dict((p[:3], p[3]) for p in out)[(4, 1, 128)] == pytest.approx(bound)
    assert [p for p in out if p[:3] != (4, 1, 128)] == [p for p in planted if p[:3] != (4, 1, 128)]


def test_the_capped_value_is_what_the_answer_uses(tmp_path):
    t = _table({(1, 4, 1, 128): 2.0})
    t.save(tmp_path / "p.csv")
    ft = MeasuredLatency(tmp_path / "p.csv", GPUS["h100-sxm"]).forward(SPEC, 4, 1, 128, 1, "eager")
    assert ft.layer_s == pytest.approx(_law(4, 1, 512))  # the fastest larger point: context 512 at batch 4
