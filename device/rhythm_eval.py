"""Rhythm evaluation like WFDB's ``epicmp`` (EC38/EC57): episodes and durations against rhythm
annotations; and a per-recording call for short strips (CinC 2017: one label per strip).

Episode sensitivity: the share of reference episodes that some detected episode overlaps;
episode positive predictivity: the share of detected episodes that overlap some reference
episode. Duration Se / +P: the overlap over the reference / detected duration. For AF, atrial
flutter in the reference is left out: detected AF during reference flutter counts neither way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_edge.device.ectopy_patterns import PATTERNS
from ecg_edge.device.evaluation import aami_class
from ecg_edge.device.records import check_lead, folder_records, warn_skipped
from ecg_edge.device.rhythm import (
    RhythmConfig,
    analyze_beats,
    beat_types,
    gate_evidence,
    p_wave_similarity,
)
from ecg_edge.device.rhythm_input import (
    BEAT_ANNOTATORS,
    NoBeatAnnotations,
    annotated_intervals,
    beat_annotations,
)
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.progress import progress
from ecg_edge.firmware_bridge.records import csv_rows
from ecg_edge.firmware_bridge.wfdb_io import read_annotations_aux, read_header

#: MIT-BIH rhythm aux notes -> the rhythms the analyzer reports (others are "not these").
REFERENCE_RHYTHMS = {"(AFIB": "AF", "(AFL": "AFL", "(VT": "VT", "(VFL": "VF", "(VF": "VF",
                     "(SVTA": "SVT", "(B": "BIGEMINY", "(T": "TRIGEMINY"}
EVALUATED = ("AF", "VT", "VF", *PATTERNS)  # the patterns are tabled apart
#: Rhythms whose start events say when the start was decided (``detected_t``): the alarm.
ALARMED = ("AF", "VT", "VF")

Intervals = list[tuple[float, float]]
#: Event types that open and close episodes: the rhythms' and the ectopy patterns'.
EPISODE_EVENTS = ("rhythm_", "pattern_")


@dataclass
class ReferenceRecord:
    """A record's reference: beats (times, samples, AAMI classes) and rhythm intervals."""

    name: str
    fs: float
    duration_s: float
    time_s: np.ndarray
    sample: np.ndarray
    classes: np.ndarray
    rhythms: dict[str, Intervals]
    path: Path


def read_reference(base: str | Path, annotator: str = "atr",
                   need_beats: bool = True) -> ReferenceRecord:
    """Beat annotations and rhythm intervals of a WFDB record (``.hea`` + ``.atr``; beats from
    ``.qrsc`` or ``.qrs`` where the ``.atr`` holds rhythm changes only); ``annotator`` reads
    another annotation file, e.g. one ``ecg-device annotate`` wrote. Without ``need_beats`` a
    record whose beats no file labels has none (a replay finds its own)."""
    base = Path(base)
    header = read_header(base.with_suffix(".hea"))
    atr = base.with_suffix(f".{annotator}")
    if not atr.exists():
        raise UserError(f"{atr}: no reference annotations to compare rhythms with")
    samples, symbols, aux = read_annotations_aux(atr)
    fs = header.fs
    duration = (header.n_samples or (int(samples[-1]) + 1 if len(samples) else 0)) / fs
    rhythms: dict[str, Intervals] = {}
    current, since = None, 0.0
    vf_open = None
    for s, sym, note in zip(samples.tolist(), symbols, aux):
        t = s / fs
        if sym == "+" and note:
            if current is not None:
                rhythms.setdefault(current, []).append((since, t))
            current, since = REFERENCE_RHYTHMS.get(note.strip()), t
        elif sym == "[":
            vf_open = t
        elif sym == "]" and vf_open is not None:
            rhythms.setdefault("VF", []).append((vf_open, t))
            vf_open = None
    if current is not None:
        rhythms.setdefault(current, []).append((since, duration))
    if vf_open is not None:
        rhythms.setdefault("VF", []).append((vf_open, duration))
    rhythms = {k: merge(v) for k, v in rhythms.items()}
    beat, cls = aami_class(symbols)
    if beat.any():
        sample, cls = samples[beat], cls[beat]
    else:  # the AF database: rhythm in .atr, beats in .qrsc / .qrs
        try:
            _, sample, cls = beat_annotations(base, BEAT_ANNOTATORS[1:])
        except NoBeatAnnotations:
            if need_beats:
                raise
            sample, cls = samples[:0], cls[:0]
    return ReferenceRecord(base.name, fs, duration, sample / fs, sample, cls, rhythms, base)


def merge(iv: Intervals) -> Intervals:
    out: Intervals = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def subtract(iv: Intervals, cut: Intervals) -> Intervals:
    """``iv`` minus ``cut``."""
    out = []
    for a, b in iv:
        pieces = [(a, b)]
        for c, d in cut:
            pieces = [p for x, y in pieces
                      for p in ((x, min(y, c)), (max(x, d), y)) if p[1] > p[0]]
        out += pieces
    return out


def overlap(a: Intervals, b: Intervals) -> float:
    return sum(max(0.0, min(y, d) - max(x, c)) for x, y in a for c, d in b)


def total(iv: Intervals) -> float:
    return sum(b - a for a, b in iv)


def episodes_from_events(events: list[dict]) -> dict[str, Intervals]:
    """Rhythm and ectopy-pattern intervals from ``rhythm_end`` and ``pattern_end`` events
    (each carries its start)."""
    out: dict[str, Intervals] = {}
    for e in events:
        if e.get("type") in ("rhythm_end", "pattern_end"):
            out.setdefault(e["rhythm"], []).append((float(e["t_start"]), float(e["t"])))
    return out


def alarms_from_events(events: list[dict]) -> dict[str, list[tuple[float, float, float]]]:
    """Per rhythm: (start, end, alarm) of each detected episode, the alarm being when its start
    was decided (the start event's ``detected_t``; its start where it has none, as for AF
    resumed after VT)."""
    decided: dict[tuple[str, int], float] = {}
    out: dict[str, list[tuple[float, float, float]]] = {}
    for e in events:
        if e.get("type") == "rhythm_start":
            decided[(e["rhythm"], e["episode"])] = float(e.get("detected_t", e["t"]))
        elif e.get("type") == "rhythm_end":
            alarm = decided.pop((e["rhythm"], e["episode"]), float(e["t_start"]))
            out.setdefault(e["rhythm"], []).append((float(e["t_start"]), float(e["t"]), alarm))
    return out


def alarm_delays(ref: Intervals, det: list[tuple[float, float, float]],
                 exclude: Intervals = (), start_s: float = 0.0) -> list[float]:
    """Per reference episode (counted as :func:`compare` counts them) that a detection
    overlaps: seconds from its start to the first alarm among the detections that overlap it
    (0 where one was already open): how long the wearer waits to be told."""
    out = []
    for a, b in merge(subtract(ref, _cut(exclude, start_s))):
        alarms = [alarm for s, e, alarm in det if s < b and e > a]
        if alarms:
            out.append(round(max(0.0, min(alarms) - a), 3))
    return out


def delay_summary(delays: list[float]) -> dict:
    """Median, 90th percentile and largest alarm delay (s) of the episodes found."""
    d = np.asarray(delays, dtype=np.float64)
    if not len(d):
        return {"n": 0, "median": None, "p90": None, "max": None}
    return {"n": len(d), "median": round(float(np.median(d)), 2),
            "p90": round(float(np.percentile(d, 90)), 2), "max": round(float(d.max()), 2)}


def _cut(exclude: Intervals, start_s: float) -> Intervals:
    return [*exclude, (float("-inf"), start_s)] if start_s > 0 else list(exclude)


def compare(ref: Intervals, det: Intervals, exclude: Intervals = (), start_s: float = 0.0
            ) -> dict:
    """epicmp-style counts for one rhythm on one record (``exclude``: left out of both; an
    episode is counted from ``start_s`` on, as epicmp counts from its ``-f`` time)."""
    cut = _cut(exclude, start_s)
    ref, det = merge(subtract(ref, cut)), merge(subtract(det, cut))
    ov = overlap(ref, det)
    return {
        "ref_episodes": len(ref), "det_episodes": len(det),
        "ref_detected": sum(1 for r in ref if overlap([r], det) > 0),
        "det_true": sum(1 for d in det if overlap(ref, [d]) > 0),
        "ref_s": total(ref), "det_s": total(det), "overlap_s": ov,
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def rates(c: dict) -> dict:
    """Se / +P for episodes and durations from summed counts."""
    return {
        "episode_se": _ratio(c["ref_detected"], c["ref_episodes"]),
        "episode_ppv": _ratio(c["det_true"], c["det_episodes"]),
        "duration_se": _ratio(c["overlap_s"], c["ref_s"]),
        "duration_ppv": _ratio(c["overlap_s"], c["det_s"]),
    }


def evaluate_record(ref: ReferenceRecord, events: list[dict], monitored_s: float,
                    start_s: float = 0.0) -> dict:
    """Every evaluated rhythm of one record, from ``start_s`` on (epicmp's default is 300 s,
    its learning period; 0: the whole record); ``monitored_s`` then counts from there too."""
    det, alarms = episodes_from_events(events), alarms_from_events(events)
    out = {"record": ref.name, "monitored_s": max(0.0, monitored_s - start_s)}
    for r in EVALUATED:
        exclude = ref.rhythms.get("AFL", []) if r == "AF" else []
        c = compare(ref.rhythms.get(r, []), det.get(r, []), exclude, start_s)
        out[r] = {**c, **rates(c)}
        if r in ALARMED:
            out[r]["alarm_delays_s"] = alarm_delays(ref.rhythms.get(r, []), alarms.get(r, []),
                                                    exclude, start_s)
    return out


def summarize(per_record: list[dict]) -> dict:
    """Gross figures (counts and seconds summed over records) per rhythm, and false AF on
    records without reference AF (seconds, episodes, per hour of monitoring)."""
    gross = {}
    for r in EVALUATED:
        keys = ("ref_episodes", "det_episodes", "ref_detected", "det_true", "ref_s", "det_s",
                "overlap_s")
        c = {k: sum(p[r][k] for p in per_record) for k in keys}
        gross[r] = {**c, **rates(c)}
        if r in ALARMED:
            gross[r]["alarm_delay_s"] = delay_summary(
                [d for p in per_record for d in p[r].get("alarm_delays_s", [])])
    no_af = [p for p in per_record if p["AF"]["ref_s"] == 0]
    hours = sum(p["monitored_s"] for p in no_af) / 3600.0
    false_s = sum(p["AF"]["det_s"] for p in no_af)
    false_n = sum(p["AF"]["det_episodes"] for p in no_af)
    return {"records": per_record, "gross": gross, "false_af": {
        "records": [p["record"] for p in no_af], "hours": hours, "seconds": false_s,
        "episodes": false_n, "episodes_per_24h": false_n / hours * 24 if hours else None}}


def monitor_rhythm(path: Path, cfg: RhythmConfig | None = None,
                   lead: str | None = None, af_model=None,
                   make_monitor=None, resample_hz: float | None = None,
                   invert_lead: bool = False) -> tuple[list[dict], float, str]:
    """(rhythm and pattern events, monitored s, the lead replayed) of a record replayed through
    the device
    monitor: its own beats, and VF from its band-passed signal. Beats are scored by the
    reference detector (scores play no part in AF), or by ``make_monitor(emit)``'s (a bundle's
    classifier: its beat classes make the VT calls). ``resample_hz``: replayed as a front-end
    at that rate would give it (:func:`device.records.resample_record`); the comparison is in
    seconds. ``invert_lead``: replayed with the lead inverted (electrodes swapped; a Holter
    lead of unknown polarity)."""
    from ecg_edge.device.monitor import record_blocks, run_blocks
    from ecg_edge.device.records import replayed_record

    rec, _ = replayed_record(path, invert_lead, resample_hz, lead)
    events: list[dict] = []

    def keep(ev: dict) -> None:
        if ev["type"].startswith(EPISODE_EVENTS):
            events.append(ev)

    monitor = make_monitor(keep) if make_monitor is not None else _reference_monitor(
        keep, cfg, af_model)
    summary = run_blocks(monitor, record_blocks(rec, lead, 10.0))
    return events, summary["rhythm"]["monitored_s"], rec.channels[rec.channel_index(lead)]


def _reference_monitor(emit, cfg: RhythmConfig | None, af_model):
    """The device monitor with the reference beat scorer (scores play no part in AF)."""
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.monitor import Monitor
    from ecg_edge.device.reference import THRESHOLDS
    from ecg_edge.device.scoring import reference_scorer

    return Monitor(SignalConfig(), reference_scorer("combined"), THRESHOLDS["combined"], emit,
                   rhythm=cfg, af_model=af_model)


def strip_model_calls(folder: str | Path, names: list[str], cfg: RhythmConfig | None,
                      af_model) -> dict[str, tuple[bool | None, float | None]]:
    """Each strip replayed through the device monitor with a bundle's AF model(s): the
    summary's (per-strip call, AF probability); call None when the strip gave no window."""
    from ecg_edge.device.monitor import record_blocks, run_blocks
    from ecg_edge.firmware_bridge.records import read_record

    out = {}
    for n in progress(names, "strip", every_s=10.0):
        monitor = _reference_monitor(lambda ev: None, cfg, af_model)
        r = run_blocks(monitor, record_blocks(read_record(Path(folder) / n), None, 10.0))
        out[n] = (r["rhythm"]["af_call"], r["rhythm"]["af_probability"])
    return out


def evaluate_folder(folder: str | Path, names: list[str] | None = None,
                    source: str = "annotations", cfg: RhythmConfig | None = None,
                    vt_classes: bool = True, af_model=None, make_monitor=None,
                    resample_hz: float | None = None, lead: str | None = None,
                    invert_lead: bool = False, start_s: float = 0.0) -> dict:
    """Rhythm evaluation over WFDB records, counted from ``start_s`` (0: whole records; WFDB's
    epicmp starts at 300 s by default). With ``source="annotations"`` the analyzer gets the
    reference beat times (and, for VT, the reference beat classes: the episode logic is tested,
    not a beat classifier); with ``"signal"`` the record is replayed through the device monitor
    (its own beats, no beat classes yet, VF from the signal); ``lead``: which of its leads
    (:meth:`Record.channel_index`; default as :func:`device.records.replayed_record` chooses),
    ``invert_lead``: that lead inverted."""
    if resample_hz is not None:  # a wrong rate is said before any record is read
        from ecg_edge.device.records import _check_rate

        _check_rate(resample_hz)
    paths, skipped = folder_records(folder, names, signal=source != "annotations",
                                    beat_labels=False)
    warn_skipped(skipped)
    check_lead(paths, lead)
    per = []
    for p in progress(paths, "record", lambda p: p.name):
        try:
            ref = read_reference(p, need_beats=source == "annotations")
        except NoBeatAnnotations:
            if names is not None:  # a record the user named must be whole
                raise
            skipped[p.name] = "no beat annotations (.atr, .qrsc, .qrs)"
            warn_skipped({p.name: skipped[p.name]})
            continue
        extra = {}  # per record: which RR-only AF rule ran, or which lead was replayed
        if source == "annotations":
            rr, _ = annotated_intervals(ref.time_s, cfg or RhythmConfig())
            classes = beat_types(ref.classes) if vt_classes else None
            extra = {"classes": classes is not None}
            events, _ = analyze_beats(ref.time_s, ref.sample, rr, cfg, classes=classes,
                                      monitored_s=ref.duration_s, af_model=af_model)
            monitored = ref.duration_s
        else:
            events, monitored, used = monitor_rhythm(p, cfg, af_model=af_model,
                                                     make_monitor=make_monitor,
                                                     resample_hz=resample_hz, lead=lead,
                                                     invert_lead=invert_lead)
            extra = {"lead": used}
        per.append({**evaluate_record(ref, events, monitored, start_s), **extra})
    out = summarize(per)
    out.update(start_s=start_s, source=source, skipped=skipped,
               config=(cfg or RhythmConfig()).to_dict(), resampled_to_hz=resample_hz, lead=lead,
               lead_inverted=invert_lead)
    return out


# -- short strips (CinC 2017) ----------------------------------------------------------------

def read_strip_labels(folder: str | Path) -> dict[str, str]:
    """``REFERENCE-v3.csv`` (or ``REFERENCE.csv``): record -> N / A / O / ~."""
    folder = Path(folder)
    for name in ("REFERENCE-v3.csv", "REFERENCE.csv"):
        if (folder / name).exists():
            rows = csv_rows(folder / name, "lines of 'record,label'")
            labels = {r[0].strip(): r[1].strip() for r in rows if len(r) >= 2}
            if not labels:
                raise UserError(f"{folder / name}: no 'record,label' lines")
            bad = {v for v in labels.values()} - {"N", "A", "O", "~"}
            if bad:
                raise UserError(f"{folder / name}: unknown labels {sorted(bad)} (N, A, O, ~)")
            return labels
    raise UserError(f"{folder}: no REFERENCE-v3.csv or REFERENCE.csv with strip labels")


def strip_is_af(summary: dict, min_burden_pct: float) -> bool:
    """A strip is called AF when the analyzer spent at least this share of it in AF."""
    burden = summary.get("af_burden_pct") or 0.0
    return burden >= min_burden_pct


def strip_metrics(calls: dict[str, bool], labels: dict[str, str]) -> dict:
    """F1(AF) as the challenge scores it (2TP / (2TP + FP + FN), AF against every other label,
    noisy '~' strips included as not-AF) and Se / Sp AF vs the rest; also with '~' left out,
    and how many noisy strips were called AF."""
    def block(names):
        tp = sum(1 for n in names if calls[n] and labels[n] == "A")
        fp = sum(1 for n in names if calls[n] and labels[n] != "A")
        fn = sum(1 for n in names if not calls[n] and labels[n] == "A")
        tn = sum(1 for n in names if not calls[n] and labels[n] != "A")
        return {"n": len(names), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
                "f1_af": _ratio(2 * tp, 2 * tp + fp + fn), "se": _ratio(tp, tp + fn),
                "sp": _ratio(tn, tn + fp), "ppv": _ratio(tp, tp + fp)}

    names = sorted(calls)
    noisy = [n for n in names if labels[n] == "~"]
    return {"all": block(names), "without_noisy": block([n for n in names if labels[n] != "~"]),
            "noisy": {"n": len(noisy), "called_af": sum(calls[n] for n in noisy)}}


def folds_by_record(names: list[str], k: int, seed: int = 0) -> list[list[str]]:
    """``k`` folds of whole records (a strip is one recording), shuffled with a fixed seed."""
    rng = np.random.default_rng(seed)
    order = list(np.array(sorted(names))[rng.permutation(len(names))])
    return [sorted(order[i::k]) for i in range(k)]


def strip_irregularity(beats: dict[str, tuple], cfg: RhythmConfig) -> dict[str, float]:
    """Share (%) of each strip's irregularity windows above ``cfg.strip_af_enter``; -1 for a
    strip too short for one window (never called AF)."""
    out = {}
    for name, (t, s, rr, duration, p_wave) in beats.items():
        _, summary = analyze_beats(t, s, rr, cfg, monitored_s=duration, p_wave=p_wave)
        pct = summary["irregular_windows_pct"]
        out[name] = -1.0 if pct is None else pct
    return out


def strip_beats(folder: str | Path, names: list[str]) -> dict[str, tuple]:
    """Each strip through the device's signal path (as ``replay`` runs it): its beats and
    their P-wave similarity (the monitor computes the same)."""
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.signal_path import process_signal
    from ecg_edge.firmware_bridge.records import read_record

    folder, cfg = Path(folder), SignalConfig()
    region = RhythmConfig().p_wave_region_s
    out = {}
    for n in progress(names, "strip", every_s=10.0):
        rec = read_record(folder / n)
        b = process_signal(rec.lead_mv(), rec.fs, cfg)
        p = p_wave_similarity(b.window, b.template, cfg.fs, cfg.window_before_s, region)
        out[n] = (b.time_s, b.sample, b.rr_prev.astype(np.float64), rec.duration_s, p)
    return out


#: Settings tuned by cross-validation on strips (each fold picks its own from the others).
STRIP_GRID = {"strip_af_enter": (-1.4, -1.3, -1.2, -1.1, -1.0, -0.9, -0.8, -0.7, -0.6),
              "strip_p_wave_max": (0.5, 0.7, 0.9, 2.0),  # 2: no P-wave gate
              "strip_af_windows_pct": (35.0, 50.0, 65.0, 80.0, 90.0, 95.0)}


def evaluate_strips(folder: str | Path, folds: int = 5, limit: int | None = None,
                    cfg: RhythmConfig | None = None, seed: int = 0, af_model=None) -> dict:
    """Per-strip AF calls against the strip labels: with ``cfg`` (default settings) on every
    strip, and with settings tuned on the other folds for each fold (record-grouped CV); with
    ``af_model`` (a bundle's) also the learned call as the device makes it (no window: not
    AF). The learned call is in-sample on the strips its model was trained on."""
    from dataclasses import replace

    cfg = cfg or RhythmConfig()
    labels = read_strip_labels(folder)
    names = sorted(labels)[:limit] if limit else sorted(labels)
    beats = strip_beats(folder, names)
    settings = {(e, p) for e in STRIP_GRID["strip_af_enter"]
                for p in STRIP_GRID["strip_p_wave_max"]}
    settings.add((cfg.strip_af_enter, cfg.strip_p_wave_max))
    irregular = {(e, p): strip_irregularity(beats, replace(cfg, strip_af_enter=e,
                                                             strip_p_wave_max=p))
                 for e, p in sorted(settings)}
    default = irregular[(cfg.strip_af_enter, cfg.strip_p_wave_max)]
    default_calls = {n: default[n] >= cfg.strip_af_windows_pct for n in names}
    cv_calls: dict[str, bool] = {}
    chosen = []
    split = folds_by_record(names, folds, seed)
    for k, test in enumerate(split):
        train = [n for j, f in enumerate(split) if j != k for n in f]
        best = None
        for key in sorted(settings):
            for pct in STRIP_GRID["strip_af_windows_pct"]:
                calls = {n: irregular[key][n] >= pct for n in train}
                f1 = strip_metrics(calls, labels)["all"]["f1_af"]
                f1 = -1.0 if f1 is None else f1
                if best is None or f1 > best[0]:
                    best = (f1, key, pct)
        chosen.append({"fold": k, "train_f1_af": best[0], "strip_af_enter": best[1][0],
                       "strip_p_wave_max": best[1][1], "strip_af_windows_pct": best[2]})
        cv_calls.update({n: irregular[best[1]][n] >= best[2] for n in test})
    too_short = [n for n in names if default[n] < 0]
    learned = {}
    if af_model is not None:
        got = strip_model_calls(folder, names, cfg, af_model)
        learned = {"model": {"no_call": sum(c is None for c, _ in got.values()),
                             **strip_metrics({n: bool(c) for n, (c, _) in got.items()},
                                             labels)}}
    return {**learned, "strips": len(names), "labels": {c: sum(labels[n] == c for n in names)
                                             for c in "NAO~"},
            "too_short_for_a_window": len(too_short),
            "default": {"config": cfg.to_dict(), **strip_metrics(default_calls, labels)},
            "cv": {"folds": folds, "seed": seed, "chosen": chosen,
                   **strip_metrics(cv_calls, labels)}}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def table(out: dict) -> str:
    """Markdown table of :func:`evaluate_folder`."""
    lines = [f"beats from: {out['source']}", "",
             "| record | AF ref s | AF det s | overlap s | AF ep ref/det | AF ep Se | AF ep +P "
             "| VT ep ref/det | VT ep Se | VT ep +P | VF ep ref/det | VF ep Se | VF ep +P |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [*out["records"], {"record": "gross", **out["gross"]}]
    for p in rows:
        a, v, f = p["AF"], p["VT"], p["VF"]
        lines.append(f"| {p['record']} | {a['ref_s']:.0f} | {a['det_s']:.0f} | "
                     f"{a['overlap_s']:.0f} | {a['ref_episodes']}/{a['det_episodes']} | "
                     f"{_pct(a['episode_se'])} | {_pct(a['episode_ppv'])} | "
                     f"{v['ref_episodes']}/{v['det_episodes']} | {_pct(v['episode_se'])} | "
                     f"{_pct(v['episode_ppv'])} | {f['ref_episodes']}/{f['det_episodes']} | "
                     f"{_pct(f['episode_se'])} | {_pct(f['episode_ppv'])} |")
    g, fa = out["gross"]["AF"], out["false_af"]
    lines += ["", f"AF duration Se {_pct(g['duration_se'])} %, +P {_pct(g['duration_ppv'])} %; "
              f"episode Se {_pct(g['episode_se'])} %, +P {_pct(g['episode_ppv'])} %",
              *(f"{r} alarm after the episode's start: median {d['median']} s, 90th percentile "
                f"{d['p90']} s, longest {d['max']} s ({d['n']} episodes found)"
                for r in ALARMED if (d := out["gross"][r]["alarm_delay_s"])["n"]),
              f"false AF on {len(fa['records'])} records without AF ({fa['hours']:.2f} h): "
              f"{fa['seconds']:.0f} s in {fa['episodes']} episodes", "",
              "| gross | ep ref/det | ep Se | ep +P | ref s | det s | duration Se | duration +P |",
              "|---|---|---|---|---|---|---|---|"]
    for r in PATTERNS:
        g = out["gross"][r]
        lines.append(f"| {r} | {g['ref_episodes']}/{g['det_episodes']} | "
                     f"{_pct(g['episode_se'])} | {_pct(g['episode_ppv'])} | {g['ref_s']:.0f} | "
                     f"{g['det_s']:.0f} | {_pct(g['duration_se'])} | {_pct(g['duration_ppv'])} |")
    return "\n".join(lines)


def strip_table(out: dict) -> str:
    """Text summary of :func:`evaluate_strips`."""
    lines = [f"{out['strips']} strips: " + ", ".join(f"{k} {v}" for k, v in out["labels"].items())]
    for name in ("default", "cv", "model"):
        if name not in out:
            continue
        r = out[name]
        for part in ("all", "without_noisy"):
            m = r[part]
            lines.append(f"{name:8s} {part:14s} F1(AF) {_pct(m['f1_af'])} %  Se {_pct(m['se'])} "
                         f"%  Sp {_pct(m['sp'])} %  +P {_pct(m['ppv'])} %  (n {m['n']})")
        lines.append(f"{name:8s} noisy '~' strips called AF: {r['noisy']['called_af']} of "
                     f"{r['noisy']['n']}")
    return "\n".join(lines)


#: Holter AF settings searched by leave-one-record-out cross-validation (DS1 only).
HOLTER_GRID = {"af_enter": (-0.9, -0.7, -0.5), "af_onset_beats": (8, 16, 24),
               "af_p_wave_max": (0.5, 0.6, 0.7, 2.0), "af_skip_odd_beats": (False, True)}


def _af_score(c: dict) -> float:
    """What a Holter setting is chosen by: the mean of AF duration Se and +P."""
    r = rates(c)
    return ((r["duration_se"] or 0.0) + (r["duration_ppv"] or 0.0)) / 2


def cross_validate_af(folder: str | Path, names: list[str],
                      cfg: RhythmConfig | None = None) -> dict:
    """Leave one record out: for each record, the AF settings of :data:`HOLTER_GRID` that score
    best (:func:`_af_score`) on the other records are applied to it. Beats from the device's
    signal path with P-wave evidence (as the monitor has them; VF is not involved)."""
    from dataclasses import replace

    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.rhythm_features import atrial_evidence
    from ecg_edge.device.signal_path import process_signal
    from ecg_edge.firmware_bridge.records import read_record

    cfg, sig = cfg or RhythmConfig(), SignalConfig()
    data = {}
    for n in names:
        ref = read_reference(Path(folder) / n)
        rec = read_record(Path(folder) / n)
        b = process_signal(rec.lead_mv(), rec.fs, sig)
        # The atrial evidence the monitor computes (P wave, and QRS shape for the odd-beat gate).
        p = atrial_evidence(b.window, b.template, b.amplitude, sig.fs, sig.window_before_s,
                            cfg.p_wave_region_s)
        data[n] = (ref, b.time_s, b.sample, b.rr_prev.astype(np.float64), rec.duration_s, p,
                   *gate_evidence(b.window, b.template, sig.fs, sig.window_before_s, cfg))
    g = HOLTER_GRID
    keys = [(e, o, p, k) for e in g["af_enter"] for o in g["af_onset_beats"]
            for p in g["af_p_wave_max"] for k in g["af_skip_odd_beats"]]
    counts: dict[tuple, dict[str, dict]] = {}
    for e, o, p, k in keys:
        c = replace(cfg, af_enter=e, af_exit=e - (cfg.af_enter - cfg.af_exit),
                    af_onset_beats=o, af_p_wave_max=p, af_skip_odd_beats=k)
        counts[(e, o, p, k)] = {}
        for n, (ref, t, s, rr, dur, pw, p_gate, qrs_gate) in data.items():
            events, _ = analyze_beats(t, s, rr, c, monitored_s=dur, p_wave=pw, p_gate=p_gate,
                                      qrs_gate=qrs_gate)
            counts[(e, o, p, k)][n] = evaluate_record(ref, events, dur)

    def summed(key, records):
        fields = ("ref_episodes", "det_episodes", "ref_detected", "det_true", "ref_s", "det_s",
                  "overlap_s")
        return {f: sum(counts[key][r]["AF"][f] for r in records) for f in fields}

    held, chosen = [], []
    for n in names:
        train = [r for r in names if r != n]
        best = max(keys, key=lambda k: _af_score(summed(k, train)))
        chosen.append({"record": n, "af_enter": best[0], "af_onset_beats": best[1],
                       "af_p_wave_max": best[2], "af_skip_odd_beats": best[3]})
        held.append(counts[best][n])
    return {"held_out": summarize(held), "chosen": chosen}
