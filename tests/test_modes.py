"""One Mode type in one place (perfmodel.specs.modes) and one compiled → graph fall-back rule;
GPU architecture and vendor as data (perfmodel.specs.hardware.Arch), never parsed from a name."""
import re
from pathlib import Path

import numpy as np
import pytest

from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.latency.base import COMPILED_NOT_MEASURED
from specperf.perfmodel.latency.chain import same_arch, with_operators
from specperf.perfmodel.latency.measured import MeasuredLatency
from specperf.perfmodel.latency.providers import shipped_profile
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS, Arch
from specperf.perfmodel.specs.models import SpecError
from specperf.perfmodel.specs.modes import MODES, Mode, answered_as, check_mode

ROOT = Path(__file__).resolve().parents[1]


def test_mode_is_a_string_and_the_order_is_one():
    assert Mode.GRAPH == "graph" and str(Mode.COMPILED) == "compiled" and MODES == ("graph", "eager", "compiled")
    assert check_mode("eager") == "eager"
    with pytest.raises(SpecError, match="mode='cuda' is not allowed; use graph, eager, compiled"):
        check_mode("cuda")


def test_no_module_defines_its_own_mode_tuple():
    pat = re.compile(r"\(\s*\"(graph|eager)\",\s*\"(graph|eager)\",\s*\"compiled\"\s*\)")
    bad = [str(p.relative_to(ROOT)) for d in ("perfmodel", "cli", "plots") for p in (ROOT / d).rglob("*.py")
           if p.name != "modes.py" and pat.search(p.read_text())]
    assert bad == []


def test_fall_back_rule_is_decided_once_and_every_provider_follows_it():
    assert answered_as("compiled", False) == "graph" and answered_as("compiled", True) == "compiled"
    assert answered_as("eager", False) == "eager"
    spec, hw = resolve_model("llama-7b"), GPUS["h100-sxm"]
    measured = MeasuredLatency(shipped_profile("h100-sxm"), hw)  # no compiled rows in the H100 profile
    analytical = AnalyticalLatency(hw)  # no fitted compiled constants
    for prov in (measured, analytical):
        c = prov.forward(spec, 1, 1, 512, 1, "compiled")
        g = prov.forward(spec, 1, 1, 512, 1, "graph")
        assert np.allclose(c.total_s, g.total_s)
        assert COMPILED_NOT_MEASURED in c.sources["layer"].notes


def test_architecture_and_vendor_are_data_not_names():
    assert GPUS["mi300x"].vendor == "amd" and GPUS["h200"].vendor == "nvidia"
    assert same_arch(GPUS["h100-sxm"], GPUS["h200"]) and not same_arch(GPUS["a100-sxm-80gb"], GPUS["h200"])
    assert all(Arch(g.arch) is not Arch.UNKNOWN for g in GPUS.values())
    # a GPU named like AMD's but of an NVIDIA architecture still borrows the H200 operator tables
    fake = GPUS["a100-sxm-80gb"].replace(name="mi-lookalike")
    assert type(with_operators(AnalyticalLatency(fake), fake)).__name__ == "OperatorChain"
    amd = GPUS["mi300x"]
    assert type(with_operators(AnalyticalLatency(amd), amd)).__name__ == "AnalyticalLatency"
    assert not any('startswith("mi")' in p.read_text() for p in (ROOT / "perfmodel").rglob("*.py"))
