"""Rhythm evaluation like WFDB's ``epicmp`` (EC38/EC57): episodes and durations against rhythm
annotations; and a per-recording call for short strips (CinC 2017: one label per strip).

Episode sensitivity: the share of reference episodes that some detected episode overlaps;
episode positive predictivity: the share of detected episodes that overlap some reference
episode. Duration Se / +P: the overlap over the reference / detected duration. For AF, atrial
flutter in the reference is left out: detected AF during reference flutter counts neither way.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.evaluation import AAMI
from device.rhythm import RhythmConfig, analyze_beats
from firmware_bridge.errors import UserError
from firmware_bridge.wfdb_io import read_annotations_aux, read_header

#: MIT-BIH rhythm aux notes -> the rhythms the analyzer reports (others are "not these").
REFERENCE_RHYTHMS = {"(AFIB": "AF", "(AFL": "AFL", "(VT": "VT", "(VFL": "VF", "(VF": "VF"}
EVALUATED = ("AF", "VT", "VF")

Intervals = list[tuple[float, float]]


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


def read_reference(base: str | Path) -> ReferenceRecord:
    """Beat annotations and rhythm intervals of a WFDB record (``.hea`` + ``.atr``)."""
    base = Path(base)
    header = read_header(base.with_suffix(".hea"))
    atr = base.with_suffix(".atr")
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
    cls = np.array([AAMI.get(s, "") for s in symbols])
    beat = cls != ""
    return ReferenceRecord(base.name, fs, duration, samples[beat] / fs, samples[beat],
                           cls[beat], rhythms, base)


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
    """Rhythm intervals from ``rhythm_end`` events (each carries its start)."""
    out: dict[str, Intervals] = {}
    for e in events:
        if e.get("type") == "rhythm_end":
            out.setdefault(e["rhythm"], []).append((float(e["t_start"]), float(e["t"])))
    return out


def compare(ref: Intervals, det: Intervals, exclude: Intervals = ()) -> dict:
    """epicmp-style counts for one rhythm on one record (``exclude``: left out of both)."""
    ref, det = merge(subtract(ref, list(exclude))), merge(subtract(det, list(exclude)))
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


def evaluate_record(ref: ReferenceRecord, events: list[dict], monitored_s: float) -> dict:
    det = episodes_from_events(events)
    out = {"record": ref.name, "monitored_s": monitored_s}
    for r in EVALUATED:
        exclude = ref.rhythms.get("AFL", []) if r == "AF" else []
        c = compare(ref.rhythms.get(r, []), det.get(r, []), exclude)
        out[r] = {**c, **rates(c)}
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
    no_af = [p for p in per_record if p["AF"]["ref_s"] == 0]
    hours = sum(p["monitored_s"] for p in no_af) / 3600.0
    false_s = sum(p["AF"]["det_s"] for p in no_af)
    false_n = sum(p["AF"]["det_episodes"] for p in no_af)
    return {"records": per_record, "gross": gross, "false_af": {
        "records": [p["record"] for p in no_af], "hours": hours, "seconds": false_s,
        "episodes": false_n, "episodes_per_24h": false_n / hours * 24 if hours else None}}


def beats_of(ref: ReferenceRecord, source: str, lead: str | None = None):
    """(times, samples, RR, classes or None, monitored s) from the reference beats
    (RR-only input) or from the device's own signal path."""
    if source == "annotations":
        rr = np.r_[np.nan, np.diff(ref.time_s)]
        return ref.time_s, ref.sample, rr, ref.classes, ref.duration_s
    from device.config import SignalConfig
    from device.signal_path import process_signal
    from firmware_bridge.records import read_record

    rec = read_record(ref.path)
    b = process_signal(rec.lead_mv(lead), rec.fs, SignalConfig())
    return b.time_s, b.sample, b.rr_prev.astype(np.float64), None, rec.duration_s


def evaluate_folder(folder: str | Path, names: list[str] | None = None,
                    source: str = "annotations", cfg: RhythmConfig | None = None,
                    vt_classes: bool = True) -> dict:
    """Rhythm evaluation over WFDB records. With ``source="annotations"`` the analyzer gets the
    reference beat times (and, for VT, the reference beat classes: the episode logic is tested,
    not a beat classifier); with ``"signal"`` it gets the device's own beats."""
    from firmware_bridge.records import list_wfdb_records

    paths = list_wfdb_records(folder)
    if names is not None:
        missing = set(names) - {p.name for p in paths}
        if missing:
            raise UserError(f"{folder}: no record(s) {', '.join(sorted(missing))}")
        paths = [p for p in paths if p.name in names]
    per = []
    for p in paths:
        ref = read_reference(p)
        t, s, rr, cls, monitored = beats_of(ref, source)
        events, _ = analyze_beats(t, s, rr, cfg, classes=cls if vt_classes else None,
                                  monitored_s=monitored)
        per.append(evaluate_record(ref, events, monitored))
    out = summarize(per)
    out.update(source=source, config=(cfg or RhythmConfig()).to_dict())
    return out


# -- short strips (CinC 2017) ----------------------------------------------------------------

def read_strip_labels(folder: str | Path) -> dict[str, str]:
    """``REFERENCE-v3.csv`` (or ``REFERENCE.csv``): record -> N / A / O / ~."""
    folder = Path(folder)
    for name in ("REFERENCE-v3.csv", "REFERENCE.csv"):
        if (folder / name).exists():
            with (folder / name).open(newline="") as fh:
                rows = [r for r in csv.reader(fh) if r]
            labels = {r[0].strip(): r[1].strip() for r in rows if len(r) >= 2}
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
