"""Plot kinds declare their own inputs (plots/<kind>.py INPUTS); the `plot` command reads them, so a
flag a kind does not declare is refused naming the kinds that take it, and a declaration change is
enough to change the CLI's checks."""
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.cli.plot_cmds import KINDS
from specperf.plots.kinds import FLAG_KWARGS, KindInputs, inputs, kinds_accepting

MODULES = {k: k.replace("-", "_") for k in KINDS}


def test_every_kind_declares_valid_inputs_its_figure_accepts():
    import inspect

    from specperf import plots
    for kind, mod in MODULES.items():
        inp = inputs(mod)
        assert isinstance(inp, KindInputs)
        params = inspect.signature(getattr(__import__(f"plots.{mod}", fromlist=["figure"]), "figure")).parameters
        for flag in inp.flags:
            assert FLAG_KWARGS[flag] in params, (kind, flag)
    assert kinds_accepting("layers", MODULES) == ["depth-width", "design"]
    with pytest.raises(ValueError, match="undeclared"):
        KindInputs(flags=("colour",))
    assert plots.KINDS.keys() == set(KINDS)


def test_an_undeclared_flag_is_refused_with_the_kinds_that_take_it(tmp_path):
    r = CliRunner().invoke(app, ["plot", "breakdown", "--style", "map", "--out", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "--style applies to the speedup figure only" in r.output
    assert not (tmp_path / "x.html").exists()


def test_changing_a_declaration_changes_the_check(tmp_path, monkeypatch):
    import specperf.plots.breakdown as bd

    monkeypatch.setattr(bd, "INPUTS", KindInputs(needs=("target", "draft", "alpha")))
    r = CliRunner().invoke(app, ["plot", "breakdown", "--target", "llama-7b", "--draft", "llama-7b:n_layers=2",
                                 "--gpu", "h100-sxm", "--out", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "needs --alpha" in r.output
