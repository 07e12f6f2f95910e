"""Heads without a measured acceptance take published figures (perfmodel.specdec.head_alpha), flagged as
such: the numbers carried (EAGLE's table, DeepSeek-V3's MTP range, EAGLE-3's figure), intervals that hold
them, `optimize --method draft,eagle,ngram` ranking a draft (α model / stated), a head (published prior)
and n-gram (trace) side by side with intervals and win probabilities, and a stated head α that wins over
the prior."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.specdec.head_alpha import PUBLISHED, TRANSFER_LOGIT, is_prior, published_acceptance

runner = CliRunner()


def test_published_numbers_and_their_intervals():
    e = PUBLISHED["eagle"]
    # EAGLE (ICML 2024), n-α on MT-bench, greedy: Vicuna-7B and LLaMA2-Chat-7B; EAGLE on LLaMA-3.1-8B read from
    # EAGLE-3's Figure 7 (0.71 at 0-α to 0.52 at 6-α, interpolated): their mean and range
    assert e.alpha_by_position == pytest.approx((0.7533, 0.7027, 0.679, 0.675, 0.6443), abs=1e-4)
    assert e.lo == pytest.approx((0.71, 0.678, 0.647, 0.615, 0.583)) and e.hi == (0.79, 0.74, 0.72, 0.73, 0.68)
    m = PUBLISHED["mtp"]
    assert (m.alpha_by_position, m.lo, m.hi) == ((0.875,), (0.85,), (0.90,))  # DeepSeek-V3 §5.4.3: 85–90 %
    e3 = PUBLISHED["eagle3"]  # EAGLE-3 Figure 7: flat about 0.79 (0.78–0.81) over 0-α..7-α
    assert e3.how == "read from a figure" and e3.alpha_by_position == (0.79,) * 8 and (e3.lo[0], e3.hi[0]) == (0.78, 0.81)
    # only DeepSeek-V3's sentence was confirmed against its source; the others say they are unverified
    assert m.verified and not e.verified and not e3.verified
    for key in ("eagle", "eagle3", "mtp"):
        acc = published_acceptance(key)
        assert is_prior(acc) and acc.source.startswith("published prior")
        assert ("unverified" in acc.source) == (not PUBLISHED[key].verified) == ("unverified" in acc.extra["flag"])
        for a, (lo, hi), plo, phi in zip(acc.alpha_by_position, acc.alpha_by_position_ci, PUBLISHED[key].lo,
                                         PUBLISHED[key].hi):
            assert lo < plo <= a <= phi < hi  # the published range, widened for carrying it to another target
            z = lambda x: np.log(x / (1 - x))  # noqa: E731
            assert z(hi) - z(phi) == pytest.approx(TRANSFER_LOGIT)
    assert published_acceptance("medusa") is None and published_acceptance("ngram") is None


def _opt(*args):
    return runner.invoke(app, ["optimize", "--target", "llama-7b", "--mode", "graph", "--context", "512", "--json",
                               *map(str, args)])


@pytest.fixture()
def trace(tmp_path):
    p = tmp_path / "ngram.json"
    p.write_text(json.dumps({"alpha": 0.5, "alpha_ci": [0.45, 0.55], "source": "trace"}))
    return p


def test_optimize_ranks_draft_head_and_ngram_with_intervals_and_win_probabilities(trace):
    r = _opt("--drafts", "llama-7b:n_layers=2", "--method", "draft,eagle,ngram", "--acceptance", f"ngram={trace}",
             "--alpha", "0.6", "--batch", "1,16")
    assert r.exit_code == 0, r.output
    for t in json.loads(r.stdout)["methods"]["tables"]:
        rows = {x["method"]: x for x in t["rows"]}
        assert rows["eagle"]["acceptance_is"] == "published prior"
        assert rows["draft_model"]["acceptance_is"] == "stated" and rows["ngram"]["acceptance_is"] == "measured"
        assert any("published figure carried over" in n for n in rows["eagle"]["notes"])
        assert sum(x["p_best"] for x in t["rows"]) == pytest.approx(1.0)
        e = rows["eagle"]
        assert e["speedup_lo"] < e["speedup"] < e["speedup_hi"]  # the prior's interval widens the band
        assert 0.0 <= e["p_beats_draft"] <= 1.0


def test_a_stated_head_alpha_replaces_the_prior_and_mtp_extrapolation_is_said(trace):
    r = _opt("--method", "eagle,mtp", "--acceptance", "eagle=0.5", "--batch", "1")
    assert r.exit_code == 0, r.output
    rows = {x["method"]: x for x in json.loads(r.stdout)["methods"]["tables"][0]["rows"]}
    assert rows["eagle"]["acceptance_is"] == "stated" and "0.500" in rows["eagle"]["acceptance"]
    assert rows["mtp"]["acceptance_is"] == "published prior"
    if rows["mtp"]["gamma"] > 1:  # DeepSeek-V3 published one drafted position
        assert any("extrapolated" in n for n in rows["mtp"]["notes"])


def test_predict_head_without_alpha_uses_the_prior():
    r = runner.invoke(app, ["predict", "--target", "llama-7b", "--method", "eagle3", "--gamma", "1..6", "--json"])
    assert r.exit_code == 0, r.output
    assert "published prior" in r.stdout
    r = runner.invoke(app, ["predict", "--target", "llama-7b", "--method", "medusa", "--gamma", "3"])
    assert r.exit_code == 2 and "--alpha is required" in r.output


def test_table_fits_80_columns(trace):
    r = runner.invoke(app, ["optimize", "--target", "llama-7b", "--mode", "graph", "--method", "eagle,ngram",
                            "--acceptance", f"ngram={trace}", "--batch", "1"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    assert "…" not in r.output and "published figures carried over" in r.output
