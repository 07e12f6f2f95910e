// specperf explorer, under-load view (specperf explore --load): draws the serve-sim sweeps that
// plots/explore_serve.py precomputed (D.load) for the page's study setting — tokens/s, median
// request latency and median TPOT against the Poisson request rate, without speculation and with the
// batch-size γ schedule — at the precomputed α nearest the page's α slider. Nothing is simulated here.
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('specperf-data').textContent);
  var L = D.load;
  function nearest(a) {
    var k = 0;
    L.alphas.forEach(function (x, i) { if (Math.abs(x - a) < Math.abs(L.alphas[k] - a)) { k = i; } });
    return L.alphas[k];
  }
  function panel(id, title, ytitle, xs, off, spec, scale, cx) {
    var f = function (v) { return v === null ? null : v * scale; };
    var traces = [{x: xs, y: off.map(f), mode: 'lines+markers', name: 'no speculation', line: {color: '#d62728', dash: 'dot'}},
                  {x: xs, y: spec.map(f), mode: 'lines+markers', name: 'speculation, γ schedule', line: {color: '#2ca02c'}}];
    var lay = {template: 'plotly_white', height: 320, margin: {l: 60, r: 20, t: 40, b: 60}, hovermode: 'x unified',
               title: {text: title, x: 0.01, xanchor: 'left', font: {size: 14}},
               xaxis: {title: {text: 'request rate (req/s, Poisson)'}, type: 'log'}, yaxis: {title: {text: ytitle}},
               legend: {orientation: 'h', x: 0, y: -0.35}, shapes: []};
    if (cx !== null) {
      lay.shapes.push({type: 'line', x0: cx, x1: cx, yref: 'paper', y0: 0, y1: 1, line: {dash: 'dash', color: '#555', width: 1}});
    }
    Plotly.react(id, traces, lay, {displaylogo: false, responsive: true, displayModeBar: false});
  }
  window.specperfDrawLoad = function (s) {
    var el = document.getElementById('load-status');
    var st = L.setting, ok = s.target === st.target && s.gpu === st.gpu && s.tp === st.tp && (s.method || 'draft') === 'draft' &&
      st.modes.indexOf(s.mode) >= 0;
    var a = nearest(s.alpha), e = L.entries[s.draft + '|' + s.mode + '|' + a.toFixed(2)];
    if (!ok || !e) {
      el.textContent = 'precomputed for ' + st.target + ', tp ' + st.tp + ', ' + st.gpu + ', ' + st.modes.join('/') +
        ' with a draft model only: run ' +
        '`specperf serve-sim --target ' + s.target + (s.method === 'draft' ? ' --draft ' + s.draft : ' --method ' + s.method) +
        ' --gpu ' + s.gpu + ' --tp ' + s.tp + ' --mode ' + s.mode + ' --alpha ' + s.alpha.toFixed(2) + ' --rate …` for this setting';
      ['fig-load-tps', 'fig-load-lat', 'fig-load-tpot'].forEach(function (id) { Plotly.purge(id); });
      window.specperfLoad = {shown: false};
      return;
    }
    var cx = e.crossover.load;
    var segs = e.schedule.map(function (g) { return g.batch_lo + '–' + g.batch_hi + ': γ=' + g.gamma; }).join(', ');
    el.textContent = 'α ' + a.toFixed(2) + ' (nearest precomputed to the slider) · ' + e.crossover.verdict +
      (cx !== null ? ' at ' + cx.toFixed(3) + ' req/s' : '') + ' · γ schedule by decode batch: ' + segs +
      ' · ' + L.prompt + '-token prompts, ' + L.output + '-token outputs, ' + L.requests + ' requests per rate, at most ' +
      L.max_num_seqs + ' running';
    panel('fig-load-tps', 'Tokens/s under load', 'tokens/s', e.rates, e.off.throughput_tok_s, e.spec.throughput_tok_s, 1, cx);
    panel('fig-load-lat', 'Median request latency', 'latency p50 (s)', e.rates, e.off.latency_p50_s, e.spec.latency_p50_s, 1, cx);
    panel('fig-load-tpot', 'Median time per output token', 'TPOT p50 (ms)', e.rates, e.off.tpot_p50_s, e.spec.tpot_p50_s, 1e3, cx);
    window.specperfLoad = {shown: true, alpha: a, crossover: e.crossover, schedule: e.schedule, rates: e.rates};
  };
})();
