"""Markdown tables of :func:`benchmarks.suite.run_all` results and of a comparison."""

from __future__ import annotations

import math

LAT_ROWS = [
    ("keras_float", "Keras float (tf.function)"),
    ("tflite_float32_xnnpack", "TFLite float32, XNNPACK"),
    ("tflite_float32_builtin", "TFLite float32, builtin kernels"),
    ("tflite_int8_xnnpack", "TFLite int8, XNNPACK"),
    ("tflite_int8_builtin", "TFLite int8, builtin kernels"),
    ("tflm_int8", "TFLite-Micro int8 (reference kernels)"),
]


def _n(v, spec=".1f", unit="") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec) + unit


def _lat(v: dict | None, key: str, q: str) -> str:
    d = (v or {}).get(key)
    return _n(d.get(q)) if isinstance(d, dict) else "–"


def model_markdown(name: str, r: dict) -> list[str]:
    fp, pipe, mem = r["footprint"], r.get("pipeline", {}), r.get("memory", {})
    c = r["conditions"]
    out = [f"### {name} (`{r['bundle']}`, sha256 {r['model_sha256']})", "",
           f"load average {c['loadavg']} at start, governor {c['governor'] or 'n/a'}; "
           f"{r.get('seconds', '?')} s to measure.", "",
           "| runtime | invoke p50 µs | call p50 µs | call p99 µs | × floor | windows/s "
           "(batch) | note |", "|---|---|---|---|---|---|---|"]
    for key, label in LAT_ROWS:
        v = r["latency"].get(key)
        if v is None:
            continue
        if "skipped" in v or v.get("ok") is False:
            why = v.get("skipped") or v.get("error") or ""
            ops = v.get("unsupported_ops")
            why = f"not run: {why}" + (f" (unsupported ops: {', '.join(ops)})" if ops else "")
            out.append(f"| {label} | – | – | – | – | – | {why[:160]} |")
            continue
        xf = (v.get("invoke_us") or v.get("call_us") or {}).get("x_floor")
        out.append(f"| {label} | {_lat(v, 'invoke_us', 'p50')} | {_lat(v, 'call_us', 'p50')} | "
                   f"{_lat(v, 'call_us', 'p99')} | {_n(xf, '.0f', '×')} | "
                   f"{_n(v.get('windows_per_s'), '.0f')} | {v.get('batch_mode', '')} |")
    out += ["", f"Analytic floor: {_n(fp.get('macs_per_window'), 'd')} MACs / window at the "
            f"measured int8 rate = {_n(r.get('floor_us'), '.3f')} µs (× floor uses invoke p50).",
            "", "| footprint | value |", "|---|---|",
            f"| int8 model file | {_n(fp['int8_bytes'], 'd')} B |",
            f"| float32 model file | {_n(fp['float32_bytes'], 'd')} B |",
            f"| TFLite-Micro arena | {_n(fp['tflm_arena_bytes'], 'd')} B |",
            f"| parameters | {_n(fp['params'], 'd')} |",
            f"| MACs / window (Keras count; TFLite int8 count) | "
            f"{_n(fp['macs_per_window'], 'd')}; {_n(fp['macs_tflite_int8'], 'd')} |"]
    dev = mem.get("device_replay", {})
    base = mem.get("python_numpy_scipy", {})
    if dev:
        out.append(f"| device peak RSS (replay, TensorFlow blocked) | "
                   f"{_n(dev.get('peak_rss_mb'))} MB"
                   f"{' (' + dev['skipped'] + ')' if 'skipped' in dev else ''} |")
    npy = mem.get("device_replay_npy", {})
    if npy:
        out.append(f"| device peak RSS, same replay from .npy (no wfdb/pandas: a live `run`) | "
                   f"{_n(npy.get('peak_rss_mb'))} MB"
                   f"{' (' + npy['skipped'] + ')' if 'skipped' in npy else ''} |")
    if base:
        # Results from before device/ dropped scipy measured numpy + scipy.signal.
        out.append(f"| of which Python + {base.get('imports', 'numpy + scipy.signal')} imports | "
                   f"{_n(base.get('peak_rss_mb'))} MB |")
    if "skipped" in pipe:
        out += ["", f"Pipeline: not run ({pipe['skipped']})."]
    elif pipe:
        out += ["", f"Whole streaming pipeline on record {pipe['record']} ({pipe['ecg_s']:.0f} s "
                f"of ECG, {pipe['beats']} beats, {pipe['scorer']}): {pipe['cpu_s']:.3f} CPU s = "
                f"**{pipe['x_realtime']:.0f}× real time** on one core "
                f"({pipe['cpu_s_per_30_min']:.3f} s per 30 min)."
                + (f" The bundle's learned AF strip models stop after the first "
                   f"{pipe['rhythm_strip_max_s']:g} s (a strip's call; rhythm.strip_max_s)."
                   if pipe.get("rhythm_strip_max_s") else ""), "",
                "| stage | CPU s | share |", "|---|---|---|"]
        for k, v in pipe["stages_s"].items():
            out.append(f"| {k} | {v:.4f} | {pipe['stages_pct'][k]:.1f} % |")
        bm = pipe.get("batch_matched")
        if bm:
            out += ["", f"The device's ModelScorer pads every block's beats to batch "
                    f"{pipe['scorer_batch']} and this model has a static batch of "
                    f"{bm['scorer_batch']}: with the scorer's batch matched to the model's "
                    f"the same pipeline runs at **{bm['x_realtime']:.0f}× real time** "
                    f"({bm['cpu_s']:.3f} CPU s; infer {bm['infer_s']:.4f} s instead of "
                    f"{pipe['stages_s']['infer']:.4f} s)."]
        lr = pipe.get("live_reads")
        if lr:
            out += ["", f"Read as a live port delivers it at real time, one frame "
                    f"({lr['read_bytes']} B) per read: each read fed on, "
                    f"**{lr['each_read']['x_realtime']:.0f}×** real time; gathered to "
                    f"{lr['batch_s']:g} s blocks as `ecg-device run` does, "
                    f"**{lr['gathered']['x_realtime']:.0f}×**"
                    + (f"; to {lr['longer_batch_s']:g} s blocks (`--batch-s`), "
                       f"**{lr['gathered_longer']['x_realtime']:.0f}×**"
                       if "gathered_longer" in lr else "") + "."]
        rp = pipe.get("replay")
        if rp:
            out += ["", f"Replayed from the record as `ecg-device replay` feeds it "
                    f"({rp['block_s']:g} s blocks, nothing to decode): "
                    f"**{rp['x_realtime']:.0f}×** real time ({rp['cpu_s']:.3f} CPU s)."]
        fl = pipe.get("float32")
        if fl:
            per = 1e6 / max(pipe["beats"], 1)
            out += ["", f"Same pipeline with the bundle's float32 model: {fl['x_realtime']:.0f}× "
                    f"real time; inference {fl['infer_s']:.4f} CPU s "
                    f"({fl['infer_s'] * per:.1f} µs per beat) against int8's "
                    f"{pipe['stages_s']['infer']:.4f} s ({pipe['stages_s']['infer'] * per:.1f} "
                    "µs per beat)."]
    acc = r.get("accuracy", {})
    if acc.get("variants"):
        out += ["", f"Accuracy (bundle parity report, {acc.get('n')} beats, {acc.get('n_abnormal')}"
                " abnormal; each variant at its own calibrated threshold):", "",
                "| variant | ROC-AUC | ΔAUC vs Keras | PR-AUC | F1 | precision | recall | "
                "agreement | TP | FP | FN | TN |", "|" + "---|" * 12]
        for v, a in acc["variants"].items():
            out.append(f"| {v} | {_n(a['roc_auc'], '.4f')} | {_n(a['delta_roc_auc'], '+.5f')} | "
                       f"{_n(a['pr_auc'], '.4f')} | {_n(a['f1'], '.4f')} | "
                       f"{_n(a['precision'], '.4f')} | {_n(a['recall'], '.4f')} | "
                       f"{_n(100 * a['agreement'] if a['agreement'] is not None else None, '.2f')}"
                       f" % | {a['tp']} | {a['fp']} | {a['fn']} | {a['tn']} |")
    return out + [""]


def markdown(doc: dict) -> str:
    b, rate = doc["board"], doc.get("mac_rate", {})
    c0, c1 = doc["conditions_start"], doc["conditions_end"]
    lines = [f"# ecg-bench on {b['board']}", "",
             f"CPU {b['cpu']}, {b['system']}, Python {b['python']}. One core, 1 thread. "
             f"Load average {c0['loadavg']} at start, {c1['loadavg']} at end; governor "
             f"{c0['governor'] or 'n/a'}; {c0['time']}.", ""]
    if "macs_per_s" in rate:
        lines += [f"int8 MAC rate (probe `{rate['probe']}`, {rate['probe_macs']} MACs, measured): "
                  f"{rate['xnnpack']['macs_per_s'] / 1e9:.1f} GMAC/s with XNNPACK, "
                  f"{rate['builtin']['macs_per_s'] / 1e9:.1f} GMAC/s builtin kernels; the floor "
                  "uses the faster.", ""]
    else:
        lines += [f"int8 MAC rate: not measured ({rate.get('skipped', '?')}).", ""]
    lines += ["Latency: `invoke` = the kernel alone; `call` = quantize + set + invoke + get + "
              "dequantize for one window (what the device pays per call). Medians / 99th "
              "percentiles over all timed calls after a warm-up.", ""]
    s = doc.get("settings", {})
    lines += [f"Settings: {s.get('rounds')} rounds × {s.get('n')} calls, warm-up "
              f"{s.get('warmup')}, batch {s.get('batch')}, pipeline best of "
              f"{s.get('pipeline_repeats')}, record {s.get('record')}.", ""]
    for name, r in doc["models"].items():
        lines += model_markdown(name, r)
    return "\n".join(lines)


def compare_markdown(cmp: dict) -> str:
    lines = [f"## Compared with the reference ({cmp['reference_board']}) at tolerance "
             f"{cmp['tolerance']:.0%}", "",
             f"reference conditions: {_cond(cmp['reference_conditions'])}; "
             f"now: {_cond(cmp['current_conditions'])}", "",
             "| model | metric | reference | now | change | |", "|---|---|---|---|---|---|"]
    for r in cmp["rows"]:
        flag = "REGRESSION" if r["regression"] else ""
        lines.append(f"| {r['model']} | {r['metric']} | {r['reference']:.4g} | "
                     f"{r['current']:.4g} | {r['change']:+.1%} ({r['better']} is better) | "
                     f"{flag} |")
    n = len(cmp["regressions"])
    lines += ["", f"{n} regression(s) beyond {cmp['tolerance']:.0%}." if n else
              "No regression beyond the tolerance."]
    return "\n".join(lines) + "\n"


def _cond(c: dict | None) -> str:
    if not c:
        return "unknown"
    return f"load {c.get('loadavg')}, governor {c.get('governor') or 'n/a'}"
