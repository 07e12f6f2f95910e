// specperf explorer: the closed form of perfmodel.specdec.maths on latency tables embedded by
// plots/explore_data.py. Only tokens per iteration and the formula are computed here:
//   tpi = (1 - a^(g+1)) / (1 - a)  (g+1 at a = 1), computed as -expm1((g+1) ln a) / (1 - a)
//   iteration_s = proposal [+ catch-up] + t_verify + overhead  (maths.iteration_time_s on the exported parts:
//   each proposer's proposal_s / catchup_s come from its speculation method in Python, never derived here);
//   throughput = batch*tpi/iteration_s
//   baseline = batch/(t_target + overhead(0));  speedup = throughput/baseline
// Bands (issues 14, 26): the Monte Carlo of perfmodel.specdec.uncertainty.propagate, step for step, on the
// standard normals of its seeded streams (D.mc.z, embedded by plots/explore_data.mc_stream): one stream
// per latency kind, each (batch, context, γ) cell's role scaled by that cell's own band (90 % interval
// 1 ± band; cell_bands.cell_factors), α logit-normal (stream 'acceptance') when the page's α ± (a 95 %
// interval, as acceptance files state it) is > 0, the baseline its own stream at its own sources' band;
// 90 % intervals are numpy's linear percentiles. Same draws: same lo/hi.
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('specperf-data').textContent);
  var ALPHAS = [0.5, 0.6, 0.7, 0.8, 0.9];
  var COL = {spec: '#1f77b4', base: '#d62728', draft: '#1f77b4', verify: '#ff7f0e', overhead: '#7f7f7f'};
  var $ = function (id) { return document.getElementById(id); };

  function tpi(a, g) {
    if (a === 1) { return g + 1; }
    return -Math.expm1((g + 1) * Math.log(a)) / (1 - a);
  }
  function proposer(s) { return (s.method || 'draft') === 'draft' ? s.draft : s.method + '@' + s.target; }
  function fits(s, b, c, g) {  // perfmodel.optimize.report: target shard + co-located draft, weights + KV
    var t = D.models[s.target], d = D.models[proposer(s)], toks = D.batches[b] * (D.contexts[c] + D.gammas[g] + 1);
    var need = t.weight_bytes / s.tp + toks * t.kv_bytes_per_token / s.tp + d.weight_bytes + toks * d.kv_bytes_per_token;
    return {ok: need <= D.hardware[s.gpu].memory_bytes, need: need, have: D.hardware[s.gpu].memory_bytes};
  }
  // one (batch index, context index, γ index) point: every quantity predict reports
  function point(s, a, b, c, g) {
    var T = tables(s), dt = T.d, tt = T.t;
    var gam = D.gammas[g], B = D.batches[b];
    var td = dt.t_draft_s[b][c][g], pr = dt.proposal_s[b][c][g], tv = tt.t_verify_s[b][c][g], ov = tt.overhead_s[b][c][g];
    var t0 = tt.t_target_s[b][c], ov0 = tt.baseline_overhead_s[b][c], cu = catchup(s, dt, b, c, g);
    var e = tpi(a, gam), it = pr + cu + tv + ov, thr = B * e / it, base = B / (t0 + ov0);
    return {gamma: gam, batch: B, context: D.contexts[c], tokens_per_iteration: e, iteration_s: it,
            throughput_tok_s: thr, baseline_tok_s: base, speedup: thr / base, t_draft_s: td, proposal_s: pr,
            catchup_s: cu, t_verify_s: tv, overhead_s: ov, t_target_s: t0, fit: fits(s, b, c, g)};
  }
  function catchup(s, dt, b, c, g) {  // a draft model's catch-up only when ticked; a head's always
    return (!dt.catchup_optional || s.catchup) ? dt.catchup_s[b][c][g] : 0;
  }
  function best(s, a, b, c) {  // argmax over γ, ties: the smallest γ (numpy argmax)
    var k = 0, pts = [];
    for (var g = 0; g < D.gammas.length; g++) { pts.push(point(s, a, b, c, g)); if (pts[g].speedup > pts[k].speedup) { k = g; } }
    return {k: k, pt: pts[k], pts: pts, cap: k === D.gammas.length - 1};
  }
  function logit(a) { a = Math.min(Math.max(a, 1e-9), 1 - 1e-9); return Math.log(a / (1 - a)); }
  function factor(band, key) {  // cell_bands.cell_factors for one cell: exp(ln(1+b)/z90 · z_key)
    var n = D.mc.draws, f = new Float64Array(n), sc = Math.log1p(band) / D.mc.z90, z = D.mc.z[key];
    for (var i = 0; i < n; i++) { f[i] = band > 0 ? Math.exp(sc * z[i]) : 1; }
    return f;
  }
  function pct(x, q) {  // numpy.percentile, method 'linear', on a sorted array
    var v = q / 100 * (x.length - 1), j = Math.floor(v), t = v - j;
    if (j + 1 >= x.length) { return x[x.length - 1]; }
    var a = x[j], b = x[j + 1], d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
  }
  function interval(arr) {
    var x = Float64Array.from(arr).sort(), L = D.mc.level;
    return [pct(x, (1 - L) / 2 * 100), pct(x, (1 + L) / 2 * 100)];
  }
  // 90 % intervals of iteration_s, throughput_tok_s and speedup for every γ of one (batch, context) cell
  function bands(s, a, h, b, c) {
    var T = tables(s), n = D.mc.draws, base = T.t.base_band[b][c];
    var al = new Float64Array(n).fill(a), za = D.mc.z.acceptance;
    if (h > 0) {
      var lo = Math.max(a - h, 0), hi = Math.min(a + h, 1), m = logit(a);
      var sd = Math.max((logit(hi) - logit(lo)) / (2 * D.mc.z95), 0);
      for (var i = 0; i < n; i++) { al[i] = sd > 0 ? 1 / (1 + Math.exp(-(m + sd * za[i]))) : a; }
    }
    var fb = factor(base.band, 'baseline');
    var B = D.batches[b], t0 = T.t.t_target_s[b][c], ov0 = T.t.baseline_overhead_s[b][c];
    var out = {iteration_s: [], throughput_tok_s: [], speedup: [], cells: []};
    var cp = Float64Array.from(al), cs = new Float64Array(n), gi = 0;
    for (var g = 1; g <= D.gammas[D.gammas.length - 1]; g++) {  // tokens_from_draws: 1 + cumsum(cumprod α)
      for (var i2 = 0; i2 < n; i2++) { if (g > 1) { cp[i2] *= al[i2]; } cs[i2] += cp[i2]; }
      if (D.gammas[gi] !== g) { continue; }
      var pr = T.d.proposal_s[b][c][gi], tv = T.t.t_verify_s[b][c][gi], ov = T.t.overhead_s[b][c][gi];
      var cu = catchup(s, T.d, b, c, gi), dr = T.d.cell_band[b][c][gi], tg = T.t.cell_band[b][c][gi];
      var fd = factor(dr.band, 'kind:' + dr.kind), ft = factor(tg.target.band, 'kind:' + tg.target.kind);
      var fo = factor(tg.overhead.band, 'kind:' + tg.overhead.kind);
      out.cells.push({draft: dr, target: tg.target, overhead: tg.overhead});
      var it = new Float64Array(n), thr = new Float64Array(n), sp = new Float64Array(n);
      for (var k = 0; k < n; k++) {
        var e = 1.0 + cs[k];
        it[k] = pr * fd[k] + cu * fd[k] + tv * ft[k] + ov * fo[k];
        thr[k] = B * e / it[k];
        sp[k] = e * (t0 * fb[k] + ov0 * fb[k]) / it[k];
      }
      out.iteration_s.push(interval(it)); out.throughput_tok_s.push(interval(thr)); out.speedup.push(interval(sp));
      gi++;
    }
    return out;
  }
  function state() {
    return {target: $('target').value, draft: $('draft').value, method: $('method').value, gpu: $('gpu').value, mode: $('mode').value,
            tp: parseInt($('tp').value, 10), alpha: parseFloat($('alpha').value), pm: parseFloat($('alpha-pm').value),
            b: parseInt($('batch').value, 10), c: parseInt($('context').value, 10), catchup: $('catchup').checked};
  }
  function badge(kind) { return '<span class="badge ' + kind + '">' + kind + '</span>'; }
  function tables(s) {
    return {d: D.draft[proposer(s) + '|' + s.gpu + '|' + s.mode], t: D.target[s.target + '|' + s.gpu + '|' + s.mode + '|' + s.tp]};
  }
  function srcText(tab) {
    return Object.keys(tab.detail).map(function (k) { return k + ': ' + tab.detail[k]; }).join('<br>');
  }
  var LAYOUT = {template: 'plotly_white', font: {family: 'Helvetica, Arial, sans-serif', size: 12},
                margin: {l: 60, r: 20, t: 40, b: 90}, hovermode: 'x unified', height: 380,
                legend: {orientation: 'h', x: 0, y: -0.3}};
  function lay(title, x, y, extra) {
    var l = JSON.parse(JSON.stringify(LAYOUT));
    l.title = {text: title, x: 0.01, xanchor: 'left', font: {size: 14}};
    [x, y].forEach(function (ax) { if (typeof ax.title === 'string') { ax.title = {text: ax.title}; } });
    l.xaxis = x; l.yaxis = y;
    Object.keys(extra || {}).forEach(function (k) { l[k] = extra[k]; });
    return l;
  }
  var CFG = {displaylogo: false, responsive: true, displayModeBar: false};

  function update() {
    var s = state(), T = tables(s), bi = s.b, ci = s.c, r = best(s, s.alpha, bi, ci), p = r.pt;
    var cell = {draft: T.d.cell_badge[bi][ci], target: T.t.cell_badge[bi][ci]};
    $('alpha-val').textContent = s.alpha.toFixed(2);
    $('batch-val').textContent = D.batches[bi];
    $('context-val').textContent = D.contexts[ci];
    var U = bands(s, s.alpha, s.pm, bi, ci), k = r.k, off = p.speedup < 1, fit = p.fit;
    var band = {speedup_lo: U.speedup[k][0], speedup_hi: U.speedup[k][1], throughput_tok_s_lo: U.throughput_tok_s[k][0],
                throughput_tok_s_hi: U.throughput_tok_s[k][1], iteration_s_lo: U.iteration_s[k][0], iteration_s_hi: U.iteration_s[k][1],
                latency: {}};
    ['draft', 'target', 'overhead'].forEach(function (ro) {  // the optimal γ row's own bands
      band.latency[ro] = U.cells[k][ro].kind + ' ±' + (100 * U.cells[k][ro].band).toFixed(1) + '%';
    });
    $('alpha-pm-val').textContent = s.pm > 0 ? '±' + s.pm.toFixed(2) : 'exact';
    $('gstar').textContent = off ? 'off' : String(p.gamma) + (r.cap ? ' (search cap)' : '');
    $('speedup').textContent = p.speedup.toFixed(3) + '×' + (off ? ' — autoregressive is faster' : '');
    $('speedup-band').textContent = '[' + band.speedup_lo.toFixed(3) + '–' + band.speedup_hi.toFixed(3) + ']';
    $('tps').textContent = p.throughput_tok_s.toFixed(1);
    $('tps-band').textContent = '[' + band.throughput_tok_s_lo.toFixed(1) + '–' + band.throughput_tok_s_hi.toFixed(1) + ']';
    $('bands').textContent = 'draft ' + band.latency.draft + ', target ' + band.latency.target + ', overhead ' + band.latency.overhead;
    $('base').textContent = p.baseline_tok_s.toFixed(1);
    $('mem').textContent = fit.ok ? 'fits (' + (fit.need / 1e9).toFixed(1) + ' of ' + (fit.have / 1e9).toFixed(0) + ' GB)'
                                  : 'does not fit: ' + (fit.need / 1e9).toFixed(1) + ' GB > ' + (fit.have / 1e9).toFixed(0) + ' GB';
    $('mem').className = fit.ok ? '' : 'warn';
    $('badges').innerHTML = 'draft ' + badge(cell.draft) + ' target ' + badge(cell.target);
    $('badges').title = 'draft — ' + Object.keys(T.d.detail).map(function (k) { return k + ': ' + T.d.detail[k]; }).join('; ') +
                        '\ntarget — ' + Object.keys(T.t.detail).map(function (k) { return k + ': ' + T.t.detail[k]; }).join('; ');
    window.specperfState = {inputs: s, optimal_gamma: p.gamma, at_cap: r.cap, off: off, point: p,
                            badges: cell, fits: fit.ok, band: band};
    drawGamma(s, bi, ci, U); drawBatch(s, ci, T); drawPareto(s, ci); drawBreakdown(s, bi, ci, r, U);
    if (window.specperfDrawLoad) { window.specperfDrawLoad(s); }  // plots/explorer_load.js (explore --load)
    document.body.setAttribute('data-updates', String(parseInt(document.body.getAttribute('data-updates') || '0', 10) + 1));
  }

  function shade(x, lo, hi, name, color) {  // a filled 90 % band: upper edge, then lower edge filled to it
    return [{x: x, y: hi, mode: 'lines', line: {width: 0}, showlegend: false, hoverinfo: 'skip', name: name + ' hi'},
            {x: x, y: lo, mode: 'lines', line: {width: 0}, fill: 'tonexty', fillcolor: color, name: name,
             hoverinfo: 'skip', meta: 'band'}];
  }
  function drawGamma(s, bi, ci, U) {
    var alphas = ALPHAS.indexOf(s.alpha) >= 0 ? ALPHAS : ALPHAS.concat([s.alpha]).sort();
    var gx = D.gammas, ok = best(s, s.alpha, bi, ci).pts.map(function (q) { return q.fit.ok; });
    var traces = shade(gx, U.speedup.map(function (v, i) { return ok[i] ? v[0] : null; }),
                       U.speedup.map(function (v, i) { return ok[i] ? v[1] : null; }), '90 % band (α ' + s.alpha.toFixed(2) + ')',
                       'rgba(31,119,180,0.22)');
    alphas.forEach(function (a) {
      var r = best(s, a, bi, ci), cur = a === s.alpha;
      var y = r.pts.map(function (q) { return q.fit.ok ? q.speedup : null; });
      traces.push({x: gx, y: y, mode: 'lines', name: 'α = ' + a.toFixed(2), line: {width: cur ? 4 : 1.5, color: cur ? COL.spec : undefined},
                   opacity: cur ? 1 : 0.55, customdata: cur ? U.speedup : undefined,
                   hovertemplate: 'α ' + a.toFixed(2) + ': %{y:.3f}×' + (cur ? ' [%{customdata[0]:.3f}–%{customdata[1]:.3f}]' : '') + '<extra></extra>'});
      traces.push({x: [r.pt.gamma], y: [r.pt.fit.ok ? r.pt.speedup : null], mode: 'markers', showlegend: false,
                   marker: {symbol: r.cap ? 'triangle-right' : 'star', size: cur ? 16 : 10, color: r.pt.speedup < 1 ? '#999' : '#d62728'},
                   hovertemplate: 'γ* ' + (r.pt.speedup < 1 ? 'off' : r.pt.gamma) + (r.cap ? ' (search cap)' : '') + ' at α ' + a.toFixed(2) + '<extra></extra>'});
    });
    var l = lay('Speedup vs lookahead γ (★ γ*, ▶ γ* at the search cap)',
                {title: 'lookahead γ', dtick: 1}, {title: 'speedup ×'});
    l.shapes = [{type: 'line', xref: 'paper', x0: 0, x1: 1, y0: 1, y1: 1, line: {dash: 'dash', color: '#999', width: 1}}];
    Plotly.react('fig-gamma', traces, l, CFG);
  }

  function drawBatch(s, ci, T) {
    var xs = [], sp = [], ar = [], tx = [], lo = [], hi = [];
    D.batches.forEach(function (B, bi) {
      var r = best(s, s.alpha, bi, ci), p = r.pt, u = bands(s, s.alpha, s.pm, bi, ci).throughput_tok_s[r.k];
      xs.push(B); lo.push(p.fit.ok ? u[0] : null); hi.push(p.fit.ok ? u[1] : null);
      sp.push(p.fit.ok ? p.throughput_tok_s : null); ar.push(p.fit.ok ? p.baseline_tok_s : null);
      tx.push((p.fit.ok ? '' : 'does not fit in memory · ') + 'γ* ' + (p.speedup < 1 ? 'off' : p.gamma) +
              ' · ' + p.speedup.toFixed(2) + '× · draft ' + T.d.cell_badge[bi][ci] + ', target ' + T.t.cell_badge[bi][ci]);
    });
    var traces = shade(xs, lo, hi, '90 % band (speculative)', 'rgba(31,119,180,0.22)').concat([{x: xs, y: sp, text: tx, mode: 'lines+markers', name: 'speculative at γ*', line: {color: COL.spec},
                   hovertemplate: '%{y:,.1f} tok/s (%{text})<extra>speculative</extra>'},
                  {x: xs, y: ar, mode: 'lines+markers', name: 'autoregressive', line: {color: COL.base, dash: 'dot'},
                   hovertemplate: '%{y:,.1f} tok/s<extra>autoregressive</extra>'}]);
    Plotly.react('fig-batch', traces, lay('Tokens/s vs batch (context ' + D.contexts[ci] + '; gaps: does not fit in memory)',
      {title: 'batch (sequences)', type: 'log', tickvals: D.batches}, {title: 'tokens/s (all sequences)'}), CFG);
  }

  function drawPareto(s, ci) {
    var spec = {x: [], y: [], text: []}, base = {x: [], y: [], text: []};
    D.batches.forEach(function (B, bi) {
      var r = best(s, s.alpha, bi, ci);
      r.pts.forEach(function (q) {
        if (!q.fit.ok) { return; }
        spec.x.push(1e3 * q.iteration_s / q.tokens_per_iteration); spec.y.push(q.throughput_tok_s);
        spec.text.push('batch ' + B + ', γ ' + q.gamma + ', ' + q.speedup.toFixed(2) + '×');
      });
      var q0 = r.pts[0];
      if (q0.fit.ok) { base.x.push(1e3 * B / q0.baseline_tok_s); base.y.push(q0.baseline_tok_s); base.text.push('batch ' + B); }
    });
    var idx = spec.x.map(function (_, i) { return i; }).sort(function (i, j) { return spec.x[i] - spec.x[j]; });
    var fx = [], fy = [], top = -1;
    idx.forEach(function (i) { if (spec.y[i] > top) { top = spec.y[i]; fx.push(spec.x[i]); fy.push(spec.y[i]); } });
    var traces = [{x: spec.x, y: spec.y, text: spec.text, mode: 'markers', name: 'speculative (batch × γ)',
                   marker: {color: COL.spec, size: 6, opacity: 0.45}, hovertemplate: '%{text}<br>%{x:.2f} ms/token, %{y:,.1f} tok/s<extra></extra>'},
                  {x: fx, y: fy, mode: 'lines', name: 'Pareto front', line: {color: COL.spec, width: 2}, hoverinfo: 'skip'},
                  {x: base.x, y: base.y, text: base.text, mode: 'lines+markers', name: 'autoregressive', line: {color: COL.base, dash: 'dot'},
                   hovertemplate: '%{text}<br>%{x:.2f} ms/token, %{y:,.1f} tok/s<extra></extra>'}];
    Plotly.react('fig-pareto', traces, lay('Throughput vs per-token latency (context ' + D.contexts[ci] + ')',
      {title: 'per-token latency of one sequence (ms)', type: 'log'}, {title: 'tokens/s', type: 'log'}, {hovermode: 'closest'}), CFG);
  }

  function drawBreakdown(s, bi, ci, r, U) {
    var ms = function (f) { return r.pts.map(function (q) { return 1e3 * f(q); }); };
    var traces = [
      {x: D.gammas, y: ms(function (q) { return q.proposal_s + q.catchup_s; }), type: 'bar', name: 'proposal (+ catch-up)', marker: {color: COL.draft}},
      {x: D.gammas, y: ms(function (q) { return q.t_verify_s; }), type: 'bar', name: 'verify (γ+1 tokens)', marker: {color: COL.verify}},
      {x: D.gammas, y: ms(function (q) { return q.overhead_s; }), type: 'bar', name: 'overhead', marker: {color: COL.overhead}},
      {x: D.gammas, y: ms(function (q) { return q.iteration_s / q.tokens_per_iteration; }), mode: 'lines+markers', name: 'per token',
       line: {color: '#000', dash: 'dot'}},
      {x: D.gammas, y: ms(function (q) { return q.iteration_s; }), mode: 'markers', name: 'iteration, 90 % band',
       marker: {color: '#000', size: 3}, meta: 'band', customdata: U.iteration_s,
       error_y: {type: 'data', symmetric: false, color: '#000', thickness: 1.2, width: 3,
                 array: r.pts.map(function (q, i) { return 1e3 * (U.iteration_s[i][1] - q.iteration_s); }),
                 arrayminus: r.pts.map(function (q, i) { return 1e3 * (q.iteration_s - U.iteration_s[i][0]); })}}];
    traces.forEach(function (t) { t.hovertemplate = '%{y:.3f} ms'; });
    Plotly.react('fig-breakdown', traces, lay('Time per iteration (batch ' + D.batches[bi] + ', context ' + D.contexts[ci] + ')',
      {title: 'lookahead γ', dtick: 1}, {title: 'ms'}, {barmode: 'stack'}), CFG);
  }

  function fill(id, values, labels, def) {
    var el = $(id);
    values.forEach(function (v, i) { var o = document.createElement('option'); o.value = v; o.textContent = labels ? labels[i] : v; el.appendChild(o); });
    el.value = String(def);
    el.addEventListener('change', update);
  }
  var d = D.defaults;
  fill('target', D.targets, null, d.target); fill('draft', D.drafts, null, d.draft); fill('gpu', D.gpus, null, d.gpu);
  fill('mode', D.modes, null, d.mode); fill('tp', D.tps, null, d.tp);
  fill('method', ['draft'].concat(D.methods || []), null, 'draft');
  $('method').addEventListener('change', function () {  // a method other than draft uses no draft model
    var own = $('method').value === 'draft';
    $('draft').disabled = !own; $('catchup').disabled = !own;
  });
  $('alpha').value = d.alpha;
  $('batch').max = D.batches.length - 1; $('batch').value = D.batches.indexOf(d.batch);
  $('context').max = D.contexts.length - 1; $('context').value = D.contexts.indexOf(d.context);
  $('alpha-pm').value = 0;
  ['alpha', 'alpha-pm', 'batch', 'context'].forEach(function (id) { $(id).addEventListener('input', update); });
  $('catchup').addEventListener('change', update);
  window.specperfPoint = point; window.specperfUpdate = update;
  update();
})();
