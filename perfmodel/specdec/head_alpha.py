"""Acceptance of feature heads where none is measured: published figures carried over as priors.

A trained EAGLE / EAGLE-3 / MTP head's acceptance is a property of the head, its training data, the
target and the workload; specperf cannot predict it from shapes (the α model of
perfmodel.specdec.alpha_model is for separate draft models). When no trace of the head exists, the
figures its authors published are the best available answer — carried over as data, each with its
source, and flagged wherever they are used ("published prior", never "measured"):

- EAGLE (Li et al., "EAGLE: Speculative Sampling Requires Rethinking Feature Uncertainty", ICML
  2024, arXiv:2401.15077), the table of acceptance rates n-α on MT-bench, greedy decoding, chain
  drafting (n-α: the rate when the head's input holds n of its own estimated features, i.e. chain
  position n+1): Vicuna-7B 0.79 0.74 0.72 0.73 0.67; LLaMA2-Chat-7B 0.76 0.69 0.67 0.68 0.68.
- MTP (DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv:2412.19437, §5.4.3): "the acceptance rate of
  the second token prediction ranges between 85% and 90% across various generation topics" — one
  MTP module, one drafted token; positions beyond it are extrapolated (flagged by AcceptanceModel).
- EAGLE-3 (Li et al., "EAGLE-3: Scaling up Inference Acceleration of Large Language Models via
  Training-Time Test", arXiv:2503.01840), Figure 7: chain acceptance n-α on MT-bench with
  LLaMA-Instruct-3.1-8B, 0-α..7-α: EAGLE-3 flat at about 0.79 (0.78–0.81); EAGLE on the same target
  falls from about 0.71 to about 0.52 at 6-α. Read from the figure (approximate, ±0.01–0.02); the
  EAGLE curve widens EAGLE's range below (intermediate positions interpolated linearly).
Medusa and n-gram get no prior: Medusa's head accuracies are not carried here, and n-gram acceptance
is a property of how often the workload repeats itself (traces only).

Key assumption (a judgement, not a fit): carried to another target and workload, a published figure
is uncertain beyond the spread its paper shows, so each position's 95 % interval is the published
range widened by TRANSFER_LOGIT on the logit scale (α 0.76 → about 0.66–0.84).

Verification (issue 28, a later session with a search over stored public pages): the DeepSeek-V3
sentence is confirmed word for word (quoted from the report, §5.4.3). The EAGLE table rates and the
EAGLE-3 Figure 7 readings could NOT be confirmed: the stored copies of both papers (ICML 2024 text,
arxiv-vanity, EAGLE-3) hold only their opening pages, and the EAGLE repository (SafeAILab/EAGLE) prints
no n-α table. They stay, marked `verified=False`, and every AcceptanceModel built from them says
"unverified" in its source and flag; check them against the papers before relying on them
(tests/test_head_alpha.py pins the numbers, so a correction is one edit here).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.specdec.acceptance import AcceptanceModel

TRANSFER_LOGIT = 0.5  # 95 % half-width added on the logit scale for carrying a figure to another target


@dataclass(frozen=True)
class PublishedAcceptance:
    """α by chain position with the published range (lo, hi) per position, and where it comes from."""
    method: str
    alpha_by_position: tuple
    lo: tuple
    hi: tuple
    source: str
    how: str  # "transcribed" (a paper's number) or "read from a figure" (approximate)
    verified: bool = False  # checked against the source text in a session (False: as first recorded, unchecked)

    def model(self, transfer_logit: float = TRANSFER_LOGIT) -> AcceptanceModel:
        """The AcceptanceModel predict/optimize use: per-position α with widened 95 % intervals."""
        ci = tuple((_widen(lo, -transfer_logit), _widen(hi, transfer_logit)) for lo, hi in zip(self.lo, self.hi))
        ab = tuple(float(a) for a in self.alpha_by_position)
        overall = float(np.mean(ab))
        how = self.how if self.verified else f"{self.how}; unverified: not checked against the paper"
        flag = "published figure carried over, not measured for this target"
        return AcceptanceModel(alpha=overall, alpha_ci=(min(c[0] for c in ci), max(c[1] for c in ci)),
                               alpha_by_position=ab, alpha_by_position_ci=ci,
                               source=f"published prior ({how}): {self.source}",
                               extra={"prior": "published", "method": self.method, "how": self.how,
                                      "verified": self.verified, "transfer_logit": transfer_logit,
                                      "flag": flag if self.verified else flag + " (and unverified against its paper)"})


def _widen(a: float, dz: float) -> float:
    z = np.log(a / (1 - a)) + dz
    return float(1 / (1 + np.exp(-z)))


# EAGLE, ICML 2024 (arXiv:2401.15077), acceptance-rate table, MT-bench, temperature 0, chain:
#   Vicuna-7B 0-α..4-α = 0.79 0.74 0.72 0.73 0.67; LLaMA2-Chat-7B = 0.76 0.69 0.67 0.68 0.68
#   UNVERIFIED: transcribed without the paper at hand; not found in the stored copies (opening pages only)
_EAGLE_ROWS = np.array([[0.79, 0.74, 0.72, 0.73, 0.67], [0.76, 0.69, 0.67, 0.68, 0.68]])
# EAGLE-3 paper, Figure 7 (read from the plot): EAGLE on LLaMA-Instruct-3.1-8B, ~0.71 at 0-α to ~0.52 at 6-α
#   UNVERIFIED: the figure could not be re-read in the stored copies
_EAGLE_L31 = np.interp(np.arange(5), [0, 6], [0.71, 0.52]).round(3)
_EAGLE_SRC = ("EAGLE (Li et al. 2024, ICML, arXiv:2401.15077), acceptance rates 0-α..4-α on MT-bench, greedy, "
              "Vicuna-7B and LLaMA2-Chat-7B; range extended below by EAGLE on LLaMA-Instruct-3.1-8B read from "
              "EAGLE-3's Figure 7 (arXiv:2503.01840)")
_ALL = np.vstack([_EAGLE_ROWS, _EAGLE_L31])

PUBLISHED = {
    "eagle": PublishedAcceptance(
        "eagle", tuple(float(x) for x in np.round(_ALL.mean(axis=0), 4)), tuple(float(x) for x in _ALL.min(axis=0)),
        tuple(float(x) for x in _ALL.max(axis=0)), _EAGLE_SRC, "transcribed (two models) and read from a figure (one)",
        verified=False),
    # DeepSeek-V3 Technical Report (arXiv:2412.19437) §5.4.3: "the acceptance rate of the second token prediction
    # ranges between 85% and 90% across various generation topics" — VERIFIED: the sentence, quoted from the
    # report, found in stored pages (issue 28); §5.4.3 per the report's own section anchor (subsubsection.5.4.3)
    "mtp": PublishedAcceptance(
        "mtp", (0.875,), (0.85,), (0.90,),
        "DeepSeek-V3 Technical Report (arXiv:2412.19437) §5.4.3: second-token acceptance 85-90 % across topics, "
        "one MTP module", "transcribed", verified=True),
    # EAGLE-3 (arXiv:2503.01840) Figure 7: flat ~0.79 (0.78–0.81) over 0-α..7-α, LLaMA-Instruct-3.1-8B, MT-bench
    #   UNVERIFIED: read from the figure once; not re-checked against the paper
    "eagle3": PublishedAcceptance(
        "eagle3", (0.79,) * 8, (0.78,) * 8, (0.81,) * 8,
        "EAGLE-3 (Li et al. 2025, arXiv:2503.01840) Figure 7: chain acceptance 0-α..7-α on MT-bench, "
        "LLaMA-Instruct-3.1-8B target, about 0.79 (0.78-0.81) at every position", "read from a figure",
        verified=False),
}


def published_acceptance(method: str) -> AcceptanceModel | None:
    """The prior AcceptanceModel for a registry method key, or None where nothing is published here."""
    p = PUBLISHED.get(str(method))
    return None if p is None else p.model()


def is_prior(acc) -> bool:
    """True for an AcceptanceModel built from published figures (answers flag it)."""
    return getattr(acc, "extra", {}).get("prior") == "published"
