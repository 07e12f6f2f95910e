"""The explorer: one self-contained HTML page (plotly.js and the latency tables embedded; no server,
no network) with dropdowns for target, draft, GPU, mode and tp and sliders for α, batch and context.
Moving a control recomputes the closed form in the page (plots/explorer.js) and redraws speedup vs
γ, tokens/s vs batch against autoregressive decoding, throughput vs per-token latency, and the time
per iteration; badges say whether each side's latency at the chosen cell is measured or analytical.
Shaded 90 % bands (speedup vs γ, tokens/s vs batch) and the iteration's error bars come from the same
Monte Carlo as `predict` (plots/explorer.js `bands`); the α ± slider gives α a 95 % interval.

Key assumption: the page's numbers equal `specperf predict` for the same inputs, because the tables
come from the same providers (plots.explore_data) and the JavaScript reproduces perfmodel.specdec.maths.
"""
from __future__ import annotations

import html
import json
from pathlib import Path


from specperf.perfmodel.specs.safeio import atomic_write

from .common import check_out

JS = Path(__file__).with_name("explorer.js")
LOAD_JS = Path(__file__).with_name("explorer_load.js")  # the under-load view, only when the data has one
CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:16px;color:#222;max-width:1400px}
h1{font-size:20px;margin:0 0 4px} .sub{color:#555;font-size:13px;margin-bottom:10px}
.controls{display:flex;flex-wrap:wrap;gap:14px;align-items:center;padding:8px;background:#f5f6f8;border-radius:6px}
.controls label{font-size:13px} select{font-size:13px} input[type=range]{width:150px;vertical-align:middle}
.readout{margin:10px 0;font-size:15px} .readout b{font-size:17px} .warn{color:#b00}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;color:#fff;margin:0 4px}
.badge.measured{background:#2a7d2a} .badge.operator{background:#2a5d9d} .badge.analytical{background:#a86400}
.badge.mixed{background:#7a4a9a} .badge.none{background:#999}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:8px} .fig{min-height:360px}
.note{font-size:12px;color:#555;margin-top:8px}
"""


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def page(data: dict, title: str = "specperf explorer") -> str:
    """The HTML text of the page for explore_data.explorer_data(...)."""
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    d = data["defaults"]
    load = ""
    if "load" in data:
        st = data["load"]["setting"]
        load = f"""
<h2 style="font-size:16px;margin:14px 0 4px">Under load: {html.escape(st['target'])}, tp {st['tp']}, {html.escape(st['gpu'])}, {html.escape('/'.join(st['modes']))}</h2>
<div class="note" id="load-status"></div>
<div class="grid" style="grid-template-columns:1fr 1fr 1fr">
 <div id="fig-load-tps" class="fig"></div><div id="fig-load-lat" class="fig"></div><div id="fig-load-tpot" class="fig"></div>
</div>
<div class="note">Precomputed by <code>specperf serve-sim</code>'s engine model (continuous batching, chunked prefill,
vLLM V1's token budget) at α {', '.join(f'{a:.2f}' for a in data['load']['alphas'])} for every draft of the page;
the view shows the α nearest the slider. Speculation pays while its median request latency is below the engine's
without it; the dashed line is the rate where it stops. No engine costs outside the profile are charged
(serve-sim's --step-overhead-ms and related flags are 0), and KV-cache capacity is not modelled.</div>"""
    body = f"""
<h1>{html.escape(title)}</h1>
<div class="sub">Speculative decoding, closed form of <code>specperf predict</code> on latency tables from the
shipped profiles (measured where the badge says so, analytical roofline otherwise). Study's case:
{html.escape(d['target'])}, tp {d['tp']}, {html.escape(d['gpu'])}.</div>
<div class="controls">
 <label>target <select id="target"></select></label>
 <label title="speculation method: a separate draft model, or a head / n-gram lookup for the target (perfmodel.specdec.methods)">method <select id="method"></select></label>
 <label>draft <select id="draft"></select></label>
 <label>GPU <select id="gpu"></select></label>
 <label>mode <select id="mode"></select></label>
 <label>tp <select id="tp"></select></label>
 <label>α <input id="alpha" type="range" min="0" max="0.98" step="0.01"> <span id="alpha-val"></span></label>
 <label title="half-width of α's 95 % interval (0: α taken as exact)">α ± <input id="alpha-pm" type="range" min="0" max="0.2" step="0.01"> <span id="alpha-pm-val"></span></label>
 <label>batch <input id="batch" type="range" min="0" step="1"> <span id="batch-val"></span></label>
 <label>context <input id="context" type="range" min="0" step="1"> <span id="context-val"></span></label>
 <label title="the draft's first step per iteration feeds 2 tokens (the previous one re-fed), as predict --draft-catchup charges it"><input id="catchup" type="checkbox"> draft catch-up</label>
</div>
<div class="readout">γ* = <b id="gstar"></b> · speedup <b id="speedup"></b> <span id="speedup-band"></span> · <b id="tps"></b>
<span id="tps-band"></span> tokens/s vs
<span id="base"></span> autoregressive · memory: <span id="mem"></span> · latency: <span id="badges"></span></div>
<div class="grid">
 <div id="fig-gamma" class="fig"></div><div id="fig-batch" class="fig"></div>
 <div id="fig-pareto" class="fig"></div><div id="fig-breakdown" class="fig"></div>
</div>
<div class="note">γ searched over {data['gammas'][0]}..{data['gammas'][-1]}; "off": no γ beats autoregressive
decoding; "search cap": γ* is the largest γ searched, the true optimum may be larger. Memory: target
weights and KV cache / tp + the co-located draft's weights and KV cache for context + γ + 1 tokens against
one GPU (activations not counted); cells that do not fit are left out of the figures. Hover a badge for
every component's source. Bands and [lo–hi]: 90 % intervals, the Monte Carlo of <code>specperf predict</code>
(same seeded draws, so the same numbers): each latency kind off by a log-normal factor with its validated
error band (latency bands: <span id="bands"></span>; perfmodel/data/error_bands.json), shared by the
components it answers; α logit-normal with α ± as its 95 % interval (0: α exact, so the band is latency
only); the autoregressive baseline its own draw at the target's band. Not included: the α model's own
error for drafts that do not exist yet unless you set α ±, and anything outside the latency model
(batching policy, engine differences).</div>{load}"""
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style><script>{_plotly_js()}</script></head><body>{body}"
            f"<script id=\"specperf-data\" type=\"application/json\">{blob}</script>"
            + (f"<script>{LOAD_JS.read_text()}</script>" if "load" in data else "")
            + f"<script>{JS.read_text()}</script></body></html>")


def write_explorer(data: dict, path: str | Path) -> Path:
    """Write the page; returns its path."""
    p = check_out(path, ".html", "--out")
    atomic_write(p, page(data), "--out")  # atomic, symlink-safe (perfmodel.specs.safeio)
    return p
