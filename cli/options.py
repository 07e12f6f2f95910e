"""Shared CLI options and their parsers: every command declares `--batch`, `--context`, `--gamma`,
`--mode`, `--gpu`, `--json` … from here, so a flag means the same thing everywhere.

Lists: `1,4,16`, ranges `1..8`, stepped ranges `1..64:8`, or a mix. Every list is bounded (at most
MAX_VALUES values, each within the flag's physical range), checked before any range is expanded.
`--mode` is graph, eager, compiled, a comma list of them, both (= graph,eager, kept for old scripts)
or all (graph,eager,compiled). Imports stdlib + typer only.
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import UsageError

MAX_VALUES = 256  # values one list flag may expand to
BOUNDS = {"batch": 65536, "context": 16777216, "gamma": 64, "tp": 1024, "new-tokens": 65,
          "layers": 1024, "d-model": 131072, "head-dim": 1024, "kv-heads": 2048}
MAX_TOKENS = 2 ** 32  # batch × context: KV-cache tokens in one cell
# Work budget of one sweep: array elements (cells × γ × Monte Carlo draws × modes) allocated at once.
# Measured on the 2-core CI machine (issue 25): 2^25 elements took 8 s and 1.6 GB peak in `predict`
# (about 48 bytes per element), 2^27 took 35 s and 6.2 GB; 2^25 keeps every run under 60 s and 4 GiB.
MAX_WORK = 2 ** 25
from specperf.perfmodel.specs.modes import MODE_SETS, MODES  # noqa: E402  (the one definition)

# ---- option declarations (defaults stay in each command's signature) ----------------------------
Target = Annotated[Optional[str], typer.Option(help="Target model: catalog name, config.json, NAME:field=value.")]
Draft = Annotated[Optional[str], typer.Option(help="Draft model (same forms as --target).")]
Gpu = Annotated[str, typer.Option(help="GPU from `specperf gpus`.")]
Batch = Annotated[str, typer.Option(help="Batch sizes: N, a list 1,4,16, a range 1..8 or 1..64:8.")]
Context = Annotated[str, typer.Option(help="Context lengths (tokens in the KV cache): N, a list or a range.")]
Gamma = Annotated[str, typer.Option(help="Lookahead γ: N, a list 1,2,4, a range 1..8, or auto.")]
GammaMax = Annotated[int, typer.Option(help="Largest lookahead γ (with --gamma auto: where the search starts).")]
Mode = Annotated[str, typer.Option(help="graph (CUDA graphs), eager, compiled (torch.compile + CUDA graphs), "
                                         "a list, both (graph,eager) or all.")]
Tp = Annotated[int, typer.Option(help="Tensor-parallel degree of the target.")]
Dtype = Annotated[str, typer.Option(help="fp16 or bf16 (fp32 on CPU).")]
Profile = Annotated[Optional[str], typer.Option(help="Measured LatencyTable (default: the shipped one for --gpu).")]
Analytical = Annotated[bool, typer.Option("--analytical", help="Ignore measured profiles (not with --profile).")]
Calibration = Annotated[Optional[str], typer.Option(help="Latency correction JSON (from `specperf calibrate latency`).")]
Alpha = Annotated[Optional[float], typer.Option(help="i.i.d. acceptance probability α in [0, 1).")]
Acceptance = Annotated[Optional[str], typer.Option(help="Acceptance JSON (from `specperf calibrate acceptance`).")]
AllowGpuMismatch = Annotated[bool, typer.Option("--allow-gpu-mismatch",
                                                help="Use a profile measured on another GPU than --gpu.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document (errors too).")]
Format = Annotated[str, typer.Option("--format", help="table (default: fits the terminal), csv (one line per answer "
                                                       "row, for spreadsheets) or json (the same as --json).")]
Wide = Annotated[bool, typer.Option("--wide", help="Every column in one table, however wide (default: the answer's "
                                                   "columns first, the others stacked below to fit the terminal).")]
Method = Annotated[str, typer.Option(help="Speculation method: draft (a separate draft model) or a registered proposer "
                                           "(e.g. eagle, eagle3, mtp, ngram; a wrong name lists them all); optimize "
                                           "takes a comma list and ranks them side by side.")]
Tree = Annotated[Optional[str], typer.Option(help="Token tree: JSON with 'rank_acceptance' (rows per depth of P(rank-k child "
                                                  "accepted)); γ becomes the tree's token count.")]
TreeDepth = Annotated[Optional[int], typer.Option(help="Token tree: at most this many levels (default: as many as tokens).")]
DraftCatchup = Annotated[bool, typer.Option("--draft-catchup", help="The draft's first step per iteration feeds 2 tokens "
                                            "(greedy loops that keep the draft cache exact, e.g. specperf's real-weights loop).")]


# ---- parsers -------------------------------------------------------------------------------------
def _bad(what: str, text, allowed: str):
    shown = text if isinstance(text, (int, float)) else repr(text)
    return UsageError(f"{what}={shown} is not allowed; {allowed}", value=text, allowed=allowed)


def int_list(text, what: str, *, lo: int = 1, hi: int | None = None) -> list[int]:
    """'1,4,16' | '1..8' | '1..64:8' → sorted unique ints in lo..hi (hi: BOUNDS[what]); bounded count."""
    hi = BOUNDS.get(what, 2 ** 31) if hi is None else hi
    allowed = f"integers in {lo}..{hi}, e.g. 1,4,16 or 1..8 (at most {MAX_VALUES} values)"
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if ".." in part:
                a, _, rest = part.partition("..")
                b, _, step = rest.partition(":")
                a, b, s = int(a), int(b), int(step) if step else 1
                if s <= 0 or b < a:
                    raise _bad(what, text, f"a range lo..hi with lo ≤ hi and a positive step; {allowed}")
                if a < lo or b > hi:
                    v = a if a < lo else b
                    raise UsageError(f"{what}={v} is not allowed (in {part}); {allowed}", value=v, allowed=allowed)
                if (b - a) // s + 1 + len(out) > MAX_VALUES:
                    raise UsageError(f"{what}={text!r} expands to {(b - a) // s + 1} values; at most "
                                     f"{MAX_VALUES} are allowed (use a step, e.g. 1..1024:64)",
                                     value=text, allowed=allowed)
                out.update(range(a, b + 1, s))
            else:
                out.add(int(part))
        except ValueError as e:
            if isinstance(e, UsageError):
                raise
            raise _bad(what, text, allowed) from None
    if not out:
        raise UsageError(f"{what}={text!r} is empty; give at least one integer", value=text, allowed=allowed)
    for v in (min(out), max(out)):
        if not lo <= v <= hi:
            raise UsageError(f"{what}={v} is not allowed; {allowed}", value=v, allowed=allowed)
    if len(out) > MAX_VALUES:
        raise _bad(what, text, allowed)
    return sorted(out)


def batch_context(batch, context) -> tuple[list[int], list[int]]:
    """--batch and --context lists, with batch × context (KV-cache tokens of one cell) bounded."""
    b, c = int_list(batch, "batch"), int_list(context, "context")
    if max(b) * max(c) > MAX_TOKENS:
        raise UsageError(f"batch×context={max(b)}×{max(c)} is not allowed; at most {MAX_TOKENS} tokens "
                         "in the KV cache of one cell", value=max(b) * max(c), allowed=f"≤ {MAX_TOKENS}")
    return b, c


def check_work(lists: dict[str, list], per_cell: int, budget: int = MAX_WORK, what: str = "array elements",
               per: str = "per cell") -> None:
    """Refuse, before anything is allocated, a sweep whose cells (the product of the list flags'
    lengths, e.g. {"batch": [...], "context": [...]}) × `per_cell` exceed `budget`: one line naming
    the longest list flag and the largest number of values it may have with the others as given."""
    cells = 1
    for v in lists.values():
        cells *= max(len(v), 1)
    if cells * per_cell <= budget:
        return
    flag = max(lists, key=lambda k: len(lists[k]))
    others = cells // max(len(lists[flag]), 1)
    most = budget // (per_cell * others)
    allowed = (f"at most {most} values of --{flag} with the other lists as given" if most >= 1 else
               f"fewer values in {', '.join('--' + k for k in lists)}")
    raise UsageError(f"--{flag} has {len(lists[flag])} values: {cells} cells × {per_cell} ({per}) = "
                     f"{cells * per_cell:.3g} {what}, over the budget of {budget}; {allowed}",
                     value=len(lists[flag]), allowed=allowed)


def gamma_list(text, gamma_max: int) -> list[int] | None:
    """--gamma: None for 'auto' (the caller searches), else the list (1..64)."""
    if not 1 <= gamma_max <= BOUNDS["gamma"]:
        raise _bad("gamma-max", gamma_max, f"an integer in 1..{BOUNDS['gamma']}")
    if str(text).strip().lower() == "auto":
        return None
    return int_list(text, "gamma")


def modes(text, *, both: bool = True, allowed_modes=MODES) -> tuple[str, ...]:
    """--mode: 'graph' | 'eager' | 'compiled' | a comma list | 'both' (graph,eager) | 'all' → the modes in
    MODES order; `both=False` allows one mode only; `allowed_modes` narrows what a command supports."""
    names = ", ".join(allowed_modes)
    allowed = (f"{names}, a comma list of them, both (graph,eager) or all" if both else f"one of {names}")
    parts = [p.strip().lower() for p in str(text).split(",") if p.strip()]
    if parts == ["all"]:  # all that this command supports
        parts = list(allowed_modes)
    elif parts == ["both"]:
        parts = list(MODE_SETS["both"])
    if not parts or any(p not in allowed_modes for p in parts) or (len(set(parts)) > 1 and not both):
        raise _bad("mode", text, allowed)
    return tuple(m for m in MODES if m in parts)


def methods(text, *, several: bool = True) -> tuple[str, ...]:
    """--method: one of perfmodel.specdec.registry.NAMES or (several=True) a comma list of them, in the
    order given, without repeats (the registry loads here only: the list is the registry's)."""
    from specperf.perfmodel.specdec.registry import NAMES as METHOD_NAMES

    allowed = f"one of {', '.join(METHOD_NAMES)}" + (" or a comma list of them" if several else "")
    parts = [p.strip().lower() for p in str(text).split(",") if p.strip()]
    parts = ["draft" if p == "draft_model" else p for p in parts]
    if not parts or any(p not in METHOD_NAMES for p in parts) or (len(parts) > 1 and not several):
        raise _bad("method", text, allowed)
    return tuple(dict.fromkeys(parts))


def positive(value, what: str, hi: int | None = None):
    """One positive integer option (tp, top, repeats …) within its bound."""
    hi = BOUNDS.get(what) if hi is None else hi
    if value is None or value < 1 or (hi is not None and value > hi):
        raise _bad(what, value, f"an integer in 1..{hi}" if hi else "a positive integer")
    return value


FORMATS = ("table", "csv", "json")


def out_format(fmt: str, json_out: bool) -> str:
    """--format checked and reconciled with --json (one line, exit 2 when they disagree)."""
    if fmt not in FORMATS:
        raise _bad("format", fmt, "use table, csv or json")
    if json_out and fmt not in ("table", "json"):
        raise UsageError(f"--json and --format {fmt} disagree; give one", value=fmt, allowed="json")
    return "json" if json_out else fmt
