"""Shared plumbing for specperf's figures: the setting a figure is drawn for, latency-source labels
for hover text, and writing standalone HTML (plotly.js embedded, works offline) and PNG (kaleido).

Key assumption: a latency source string says where a number came from; one that mentions a
profile/measurement is "measured", one that mentions the roofline is "analytical".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from specperf.perfmodel.specs.models import ModelSpec, SpecError
from specperf.perfmodel.specs.safeio import atomic_write, target_path

MS = 1e3  # seconds → milliseconds, for display only
TEMPLATE = "plotly_white"
FONT = dict(family="Helvetica, Arial, sans-serif", size=13)
COLORS = {"draft": "#1f77b4", "verify": "#ff7f0e", "overhead": "#7f7f7f", "target": "#d62728",
          "ridge": "#d62728", "winner": "#d62728", "graph": "#1f77b4", "eager": "#ff7f0e"}
PNG_SIZE = (1100, 620)  # px; --png keeps it readable in a README at scale 2


@dataclass(frozen=True)
class Setting:
    """What one figure is drawn for. `latency` has .forward(spec, b, n, ctx, tp, mode) and .overhead_s."""
    target: ModelSpec | None = None
    draft: ModelSpec | None = None
    latency: object | None = None
    gpu: str = ""
    tp: int = 1
    mode: str = "graph"
    batch: int = 1
    context: int = 512
    acceptance: object | None = None  # perfmodel.specdec.acceptance.AcceptanceModel
    gammas: tuple = tuple(range(1, 9))
    profile: str | None = None  # LatencyTable path for figures that read measured rows directly
    extra: dict = field(default_factory=dict)

    def need(self, *names: str, kind: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            flags = ", ".join("--" + n for n in missing)
            raise SpecError(f"the {kind} figure needs {flags}")

    @property
    def modes(self) -> tuple[str, ...]:
        """`mode` is one mode, a comma list (graph,compiled …) or both (= graph,eager)."""
        from specperf.perfmodel.specs.modes import MODE_SETS

        return MODE_SETS["both"] if self.mode == "both" else tuple(self.mode.split(","))

    def single_mode(self, kind: str) -> str:
        from specperf.perfmodel.specs.modes import MODES

        if self.mode not in MODES:
            raise SpecError(f"mode={self.mode!r} is not allowed for the {kind} figure; use graph, eager or "
                            "compiled (several modes: gamma and depth-width only)")
        return self.mode

    def where(self) -> str:
        parts = [self.gpu] if self.gpu else []
        parts += [f"tp={self.tp}", self.mode, f"batch {self.batch}", f"context {self.context}"]
        return ", ".join(parts)


# ---- one diverging scale for speedup, 1× at its centre (breakeven, speedup map and surface) --------
SPEEDUP_TICKS = (0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 4)
SPEEDUP_SCALE = "RdBu"  # red: speculation loses, white: break-even, blue: it wins


def speedup_colour(z) -> dict:
    """Plotly colour arguments for speedup values z, drawn on log2 so 0.5× and 2× are equally far from
    1×: use with z=np.log2(speedup). The range is symmetric about 1× and at least ±2^0.25."""
    import numpy as np

    lz = np.log2(np.asarray(z, dtype=float))
    lim = max(float(np.nanmax(np.abs(lz))) if np.isfinite(lz).any() else 0.0, 0.25)
    ticks = [1.0]  # outward from 1×, each tick at least a tenth of the bar from the last one kept
    for side in (sorted((t for t in SPEEDUP_TICKS if t > 1)), sorted((t for t in SPEEDUP_TICKS if t < 1), reverse=True)):
        last = 0.0
        for t in side:
            if abs(np.log2(t)) <= lim + 1e-9 and abs(np.log2(t) - last) >= lim / 5:
                ticks.append(t)
                last = np.log2(t)
    ticks.sort()
    return dict(colorscale=SPEEDUP_SCALE, cmid=0.0, cmin=-lim, cmax=lim,
                colorbar=dict(title="speedup ×", tickvals=list(np.log2(ticks)), ticktext=[f"{t:g}" for t in ticks]))


def memory_needed_bytes(target: ModelSpec, draft: ModelSpec, tp: int, batch, context, gamma):
    """Bytes on the GPU holding target shard 0 and the co-located draft (perfmodel.optimize.report's
    rule): weights + KV cache for context + γ + 1 tokens; activations are not counted."""
    toks = batch * (context + gamma + 1)
    return (target.weight_bytes / tp + toks * target.kv_bytes_per_token / tp
            + draft.weight_bytes + toks * draft.kv_bytes_per_token)


# ---- latency sources ---------------------------------------------------------------------------
def source_kind(src: str) -> str:
    """'measured' (measured or interpolated between measured points), 'analytical' (roofline, plain
    or fitted to a profile), 'operator', 'mixed', 'none' (component absent), or the string itself.
    A perfmodel.latency.source.Provenance answers with its own `.coarse`; text (older tags, profile
    rows) is parsed."""
    coarse = getattr(src, "coarse", None)
    if isinstance(coarse, str):
        return coarse
    s = str(src).lower()
    if s.startswith("none"):
        return "none"
    if ";" in s:  # MeasuredLatency: 'measured (f) ×3; analytical fitted to f ×1'
        kinds = {source_kind(part.split(" ×")[0].strip()) for part in s.split(";")}
        return kinds.pop() if len(kinds) == 1 else "mixed"
    if "analytical" in s or "roofline" in s:
        return "analytical"
    if "measured" in s or "interpolated" in s:
        return "measured"
    return str(src)


def side_kind(sources: dict, side: str) -> str:
    """'measured', 'analytical' or 'mixed (layer measured, lm_head analytical)' for draft/target."""
    items = {k[len(side) + 1:]: source_kind(v) for k, v in sources.items() if k.startswith(side + "_")}
    items = {k: v for k, v in items.items() if v != "none"}
    kinds = set(items.values())
    if not kinds:
        return "n/a"
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed (" + ", ".join(f"{k} {v}" for k, v in items.items()) + ")"


def source_line(sources: dict) -> str:
    """One short hover line: 'latency: draft measured · target analytical · overhead analytical'."""
    parts = [f"draft {side_kind(sources, 'draft')}", f"target {side_kind(sources, 'target')}"]
    if "overhead" in sources:
        parts.append(f"overhead {source_kind(sources['overhead'])}")
    return "latency: " + " · ".join(parts)


def sources_note(sources: dict, width: int = 150) -> str:
    """A one-line badge for a figure footnote — 'latency: draft measured · target mixed · …' — the
    full source strings go to the footnote's hover (footnote() reads them from the figure's tag)."""
    return source_line(sources) + " (hover here for every source)"


def sources_detail(sources: dict, width: int = 110) -> str:
    """Full source strings, deduplicated and wrapped with <br>: hover text of the footnote."""
    seen: dict = {}
    for k, v in sources.items():
        if source_kind(v) != "none":
            seen.setdefault(str(v), []).append(k)
    return "<br>".join(_wrap(f"{', '.join(ks)}: {v}", width) for v, ks in seen.items())


def _wrap(text: str, width: int) -> str:
    lines, cur = [], ""
    for w in text.split(" "):
        if cur and len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "<br>".join(lines)


def tag(fig: go.Figure, sources: dict) -> go.Figure:
    """Record the latency sources in the figure (layout.meta) so callers can check what was measured;
    a prediction's 'acceptance' entry is not a latency and is left out."""
    fig.update_layout(meta={"specperf_latency_sources": {str(k): str(v) for k, v in sources.items()
                                                         if k != "acceptance"}})
    return fig


def latency_sources(fig: go.Figure) -> dict:
    meta = fig.layout.meta or {}
    return dict(meta.get("specperf_latency_sources", {})) if isinstance(meta, dict) else {}


FOOT_LINE_PX = 14  # one 10-px footnote line
FOOT_GAP_PX = 58  # below the plot area: tick labels and the x-axis title


def footnote(fig: go.Figure, text: str, y: float | None = None, width: int = 150) -> None:
    """Small print under the plot area; the bottom margin and the height grow with its lines, so it is
    never clipped. Hovering it shows every latency source the figure was tagged with (`tag`).
    `y` is accepted for old callers and ignored: the position is in pixels below the plot area."""
    text = "<br>".join(_wrap(line, width) for line in text.split("<br>"))
    n = text.count("<br>") + 1
    detail = sources_detail(latency_sources(fig))
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0, y=0, yshift=-FOOT_GAP_PX, xanchor="left",
                       yanchor="top", showarrow=False, align="left", font=dict(size=10, color="#555"),
                       hovertext=detail or None, hoverlabel=dict(font=dict(size=11)) if detail else None)
    old = fig.layout.margin.b if fig.layout.margin.b is not None else 80
    need = FOOT_GAP_PX + n * FOOT_LINE_PX + 12
    if need > old:
        fig.update_layout(margin=dict(b=need), height=int(fig.layout.height or PNG_SIZE[1]) + need - old)


def style(fig: go.Figure, title: str, sub: str | None = None, bottom: int = 120, height: int = 620,
          legend_y: float | None = None, top: int | None = None) -> go.Figure:
    """Template, fonts and a left-aligned title (`sub`: a small-print line after it); `legend_y`: a
    horizontal legend above the plot at that height; `top`: a taller top margin, the title pinned to it."""
    if sub:
        title = f"{title} <span style='font-size:12px'>({sub})</span>"
    fig.update_layout(template=TEMPLATE, font=FONT, title=dict(text=title, x=0.01, xanchor="left"),
                      margin=dict(l=70, r=30, t=top or 80, b=bottom), height=height,
                      hoverlabel=dict(font=dict(family="monospace", size=12)))
    if top:
        fig.update_layout(title=dict(y=0.98, yanchor="top"))
    if legend_y is not None:
        fig.update_layout(legend=dict(orientation="h", x=0, y=legend_y, yanchor="bottom"))
    return fig


# ---- output ------------------------------------------------------------------------------------
def check_out(path: str | Path, suffix: str, flag: str) -> Path:
    """Fail before any work if `path` cannot be written as a `suffix` file."""
    p = Path(path)
    if p.suffix.lower() != suffix:
        raise SpecError(f"{flag} {str(p)!r} must end in {suffix}")
    if p.is_dir():
        raise SpecError(f"{flag} {str(p)!r} is a directory; give a file name ending in {suffix}")
    target_path(p, flag)  # folder exists and is writable; not a link (unless followed), device or FIFO
    return p


def write_html(fig: go.Figure, path: str | Path) -> Path:
    """Standalone HTML with plotly.js embedded (no network needed to open it)."""
    p = check_out(path, ".html", "--out")
    html = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False, "responsive": True})
    atomic_write(p, html, "--out")  # atomic, symlink-safe (perfmodel.specs.safeio)
    return p


def write_png(fig: go.Figure, path: str | Path, scale: float = 2.0) -> Path:
    """Static PNG through kaleido (needs a Chrome/Chromium on the machine)."""
    p = check_out(path, ".png", "--png")
    w, h = PNG_SIZE
    try:
        png = fig.to_image(format="png", width=w, height=max(h, int(fig.layout.height or h)), scale=scale)
    except OSError as e:
        raise SpecError(f"--png export failed: {e.strerror or e}") from None
    except Exception as e:  # kaleido/choreographer: no browser found, browser crashed
        raise SpecError(f"--png export failed (kaleido needs Chrome or Chromium): "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    atomic_write(p, png, "--png")
    return p

