"""Rhythm alarms on short strips that do not hold that rhythm: what a wearer who records strips
(a handheld or a watch) would be told in error.

Each strip of a labelled folder (CinC 2017: N normal, A AF, O other rhythm, ~ noisy) is replayed
through the device's default monitor as its own stream, as a handheld recording is; every
``rhythm_start`` is counted per type and per strip label, and scaled to 24 h of such strips. On
normal strips every episode is false; on the others only AF is checkable against the label.
The beats' class calls after the learning period are counted too: on normal strips a V or S
call is a false beat alarm unless the strip holds a real ectopic beat (the labels do not say).
So is the share of strip time inside AF episodes (``af_time_pct``): on AF strips, how much of
other wearers' AF on another device the episodes find (their bar was chosen on DS1, which has
two AF records); on the others, AF time in error. And how soon a strip's first AF alarm came
(``af_alarm_s``: from the strip's start to when the monitor decided its first AF episode, the
median over the strips with one): a strip starts cold, and an onset needs a window of beats.
Strips start cold (no learning period behind them), so a detector that loses its first beats
to a contact artifact shows here as false pauses.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.ectopy_patterns import PATTERNS
from ecg_edge.device.monitor import Monitor, bundle_settings, record_blocks, run_blocks
from ecg_edge.device.records import _check_rate, replayed_record
from ecg_edge.device.rhythm import RHYTHMS
from ecg_edge.device.rhythm_eval import alarms_from_events, read_strip_labels
from ecg_edge.device.scoring import ModelScorer
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.progress import progress

EPISODES = (*RHYTHMS, *PATTERNS)  # rhythm alarms, then the patterns named without one


def strip_alarms(folder: str | Path, bundle_path: str | Path, labels: str = "N,O,~",
                 limit: int | None = None, variant: str = "int8",
                 resample_hz: float | None = None, invert_lead: bool = False) -> dict:
    """Per strip label: strips, hours, rhythm episodes opened per type and per 24 h, AF time
    and the first AF alarm's time, and the class calls of the beats after the learning period
    (``beat_calls``, with V and S as % of those beats). ``resample_hz``, ``invert_lead``: each
    strip replayed as a front-end at that rate, or with its lead inverted, would give it (AF
    Holter databases record at 128 and 250 Hz; CinC 2017 at 300)."""
    if resample_hz is not None:  # a wrong rate is said before any strip is read
        _check_rate(resample_hz)
    folder = Path(folder)
    ref = read_strip_labels(folder)
    wanted = [x.strip() for x in labels.split(",") if x.strip()]
    bad = [x for x in wanted if x not in "NAO~"]
    if bad or not wanted:
        raise UserError(f"strip labels {labels!r}: give some of N, A, O, ~ (comma-separated)")
    bundle = load_bundle(bundle_path)
    settings = bundle_settings(bundle)
    threshold = bundle.threshold(variant).value
    out: dict = {"bundle": str(bundle_path), "variant": variant, "resampled_to_hz": resample_hz,
                 "lead_inverted": invert_lead, "labels": {}}
    for label in wanted:
        names = sorted(n for n, lab in ref.items() if lab == label)[:limit]
        counts = dict.fromkeys(EPISODES, 0)
        calls: Counter[str] = Counter()
        strips_with = 0
        seconds = af_s = 0.0
        first_af: list[float] = []  # per strip with AF: when its first AF start was decided
        for name in progress(names, f"strip {label}", every_s=10.0):
            rec, _ = replayed_record(folder / name, invert_lead, resample_hz)
            events: list[dict] = []
            monitor = Monitor(bundle.manifest.signal, ModelScorer(bundle, variant), threshold,
                              events.append, **settings)
            summary = run_blocks(monitor, record_blocks(rec, None, 10.0))
            af_s += summary["rhythm"]["total_s"]["AF"]
            alarms = [e["rhythm"] for e in events if e["type"] == "rhythm_start"]
            af_alarms = [alarm for _, _, alarm in alarms_from_events(events).get("AF", [])]
            first_af += [min(af_alarms)] if af_alarms else []
            opened = alarms + [e["rhythm"] for e in events if e["type"] == "pattern_start"]
            calls.update(str(e.get("class")) for e in events
                         if e["type"] == "beat" and not e.get("learning"))
            for r in opened:
                counts[r] += 1
            strips_with += bool(alarms)
            seconds += rec.duration_s
        day = seconds / 86400.0
        beats = sum(calls.values())
        out["labels"][label] = {
            "strips": len(names), "hours": seconds / 3600.0,
            "strips_with_an_alarm": strips_with,  # an episode other than an ectopy pattern
            "af_time_pct": 100.0 * af_s / seconds if seconds else float("nan"),
            "strips_with_af": len(first_af),
            "af_alarm_s": float(np.median(first_af)) if first_af else None,
            "episodes": counts,
            "per_24h": {r: (c / day if day else float("nan")) for r, c in counts.items()},
            "beat_calls": dict(sorted(calls.items())),
            **{f"{k}_pct": 100.0 * calls[k] / beats if beats else float("nan")
               for k in ("V", "S")}}
    return out


def table(out: dict) -> str:
    head = ("| strips | n | hours | AF time % | first AF alarm s (median) | "
            + " | ".join(f"{r} /24 h" for r in EPISODES)
            + " | beats after learning | V % | S % |")
    lines = [head, "|" + "---|" * (8 + len(EPISODES))]
    for label, m in out["labels"].items():
        cells = " | ".join(f"{m['per_24h'][r]:.1f} ({m['episodes'][r]})" for r in EPISODES)
        alarm = "-" if m["af_alarm_s"] is None else f"{m['af_alarm_s']:.1f}"
        lines.append(f"| {label} | {m['strips']} | {m['hours']:.2f} | {m['af_time_pct']:.1f} | "
                     f"{alarm} | {cells} | {sum(m['beat_calls'].values())} | {m['V_pct']:.2f} | "
                     f"{m['S_pct']:.2f} |")
    return "\n".join(lines)
