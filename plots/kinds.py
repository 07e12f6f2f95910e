"""What each figure kind needs and accepts, declared by the kind itself (`INPUTS` in its module) so
the `plot` command checks flags generically instead of keeping per-kind lists.

Key assumption: every kind reads the shared setting (GPU, mode, tp, batch, context, latency) and at
most the extra inputs named here; a flag a kind does not declare is an error, not silently ignored.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

# extra CLI flags a kind may declare → the keyword its figure() takes
FLAG_KWARGS = {"cost-ratio": "cost_ratio", "style": "style_", "drafts": "drafts", "layers": "layers",
               "d-model": "d_models", "batch-list": "batches", "context-list": "contexts",
               "alpha": "alpha", "reference": "reference"}  # "alpha": the figure takes the scalar --alpha itself (design)


@dataclass(frozen=True)
class KindInputs:
    needs: tuple[str, ...] = ()  # of "target", "draft", "alpha" (filled from the study's case if absent)
    flags: tuple[str, ...] = ()  # of FLAG_KWARGS
    gamma_max: int = 8  # default largest γ drawn
    cost_ratio_replaces_models: bool = False  # speedup: --cost-ratio answers without target/draft

    def __post_init__(self):
        bad = [f for f in self.flags if f not in FLAG_KWARGS] + [n for n in self.needs
                                                                if n not in ("target", "draft", "alpha")]
        if bad:
            raise ValueError(f"undeclared plot input(s) {bad}")


def inputs(module: str) -> KindInputs:
    """The INPUTS a plots module declares."""
    return importlib.import_module(f"specperf.plots.{module}").INPUTS


def kinds_accepting(flag: str, modules: dict) -> list[str]:
    return [k for k, m in modules.items() if flag in inputs(m).flags]
