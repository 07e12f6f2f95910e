"""A token tree's own per-iteration work (top-k per level, tree masks, path compaction) enters its
cost through the latency provider's optional `tree_overhead_s` (perfmodel.specdec.tree_method): a
provider with the hook prices exactly it in place of the chain overhead; one without keeps the chain
overhead at γ and says so in a note. (The own loop's H100 run missed 1.0-1.45 ms of it per tree
iteration before, issue 28.)"""
import numpy as np
import pytest

from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.specdec.registry import make_method
from specperf.perfmodel.specdec.tree_method import TREE_OVERHEAD_NOTE, TokenTree
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS

P = [[0.6, 0.15, 0.08], [0.5, 0.12, 0.06]]


class WithTreeOverhead:
    """The analytical provider plus a tree overhead of 1 ms + 0.1 ms per level."""

    def __init__(self, base):
        self.base, self.seen = base, []

    def __getattr__(self, name):
        return getattr(self.base, name)

    def tree_overhead_s(self, spec, batch, tree, mode="graph"):
        self.seen.append(tree)
        return 1e-3 + 1e-4 * tree.levels + 0.0 * np.asarray(batch, float), self.base.overhead_s(spec, batch, 0, mode)[1]


def test_tree_overhead_hook_replaces_the_chain_overhead_and_its_absence_is_noted():
    lat = build_provider(GPUS["h100-sxm"]).target
    target = resolve_model("llama-7b")
    m = TokenTree(make_method("eagle"), tuple(map(tuple, P)), 6)
    plain = m.costs(lat, target, [1, 8], [512], [4, 12], 1, "eager")
    assert TREE_OVERHEAD_NOTE in plain.notes
    assert plain.overhead_s[0, 0, 1] == pytest.approx(float(lat.overhead_s(target, 1, 12, "eager")[0]))
    hooked = WithTreeOverhead(lat)
    c = m.costs(hooked, target, [1, 8], [512], [4, 12], 1, "eager")
    assert TREE_OVERHEAD_NOTE not in c.notes and hooked.seen == [m.tree(4), m.tree(12)]
    want = [1e-3 + 1e-4 * m.tree(n).levels for n in (4, 12)]
    assert c.overhead_s.shape == (2, 1, 2)
    assert np.allclose(c.overhead_s[0, 0], want) and np.allclose(c.overhead_s[1, 0], want)
    # everything else is the same price
    assert np.allclose(c.proposal_s, plain.proposal_s) and np.allclose(c.verify_s, plain.verify_s)
    assert np.allclose(c.iteration_s() - plain.iteration_s(), c.overhead_s - plain.overhead_s)
