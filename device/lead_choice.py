"""Which lead of a recorded file is "the ECG lead" when its lead names do not say.

A live front-end sends one lead, the one its electrodes make. A recorded Holter file often holds
two or more under generic names (the AF and sinus-rhythm databases: ``ECG1``, ``ECG2``), and the
first is not always the readable one: one electrode pair can be loose or buried in muscle noise
for the whole day. Where a record names none of the preferred leads
(:data:`firmware_bridge.records.PREFERRED_LEADS`), replays take the first lead unless another is
clearly more readable by the device's own signal-quality judge (:class:`device.quality.
SignalQuality`, behind the device's own filters): the share of time judged good less the share
judged unreadable, over a few stretches spread through the record. The margin keeps the first
lead wherever the two are alike, so a record is replayed on another lead only where its first
is mostly noise.

On the 28 MIT-BIH records with their names hidden the judge never prefers the other lead to
MLII by the margin (at most +0.10, 109's V1); with the other lead first (V1 on most), it moves
13 of 28 records to MLII (those whose V1 is mostly noise or whose QRS hides in it), and the
replay's QRS Se 97.0 -> 98.1 %, VEB Se 46.9 -> 61.5 %, SVEB Se 34.0 -> 65.3 %, VT episodes
found 7 -> 21 of 39 (`benchmarks/results/session91.md`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.quality import GOOD, UNREADABLE, SignalQuality
from ecg_edge.device.signal_path import SignalPath
from ecg_edge.firmware_bridge.records import PREFERRED_LEADS, Record


@dataclass(frozen=True)
class LeadChoice:
    probe_s: float = 30.0  # each stretch judged
    probes: int = 10  # stretches, spread evenly through the record (the whole of a short one)
    settle_s: float = 4.0  # the start of each stretch, where the filters settle, is not judged
    # Another lead replaces the first only when its readability (good less unreadable share)
    # is higher by this much.
    margin: float = 0.2


def readability(record: Record, channel: int, cfg: SignalConfig | None = None,
                choice: LeadChoice = LeadChoice()) -> float:
    """Share of the lead's judged time that is good, less the share that is unreadable
    (-1 to 1), over ``choice.probes`` stretches of ``choice.probe_s`` seconds."""
    cfg = cfg or SignalConfig()
    x = record.counts[:, channel].astype(np.float64) * (record.uv_per_count[channel] / 1000.0)
    if record.invalid is not None:
        x[record.invalid[:, channel]] = 0.0  # no signal there: judged a flat line
    span = max(1, int(round(choice.probe_s * record.fs)))
    if len(x) <= span * choice.probes:
        starts, span = [0], len(x)
    else:
        starts = np.linspace(0, len(x) - span, choice.probes).round().astype(int).tolist()
    levels: list[int] = []
    for a in starts:
        path = SignalPath(cfg, record.fs)
        judge = SignalQuality(cfg.quality, cfg.fs)
        segments = judge.push(path.resampler(path.bandpass(x[a : a + span])))
        levels += [s.level for s in segments if s.start >= choice.settle_s * cfg.fs]
    if not levels:
        return 0.0
    lv = np.asarray(levels)
    return float(np.mean(lv == GOOD) - np.mean(lv == UNREADABLE))


def chosen_lead(record: Record, cfg: SignalConfig | None = None,
                choice: LeadChoice = LeadChoice()) -> int | None:
    """The channel to take as the ECG lead by its signal, or None where the names say (a
    preferred lead is present) or there is only one."""
    if len(record.channels) < 2 or any(p in record.channels for p in PREFERRED_LEADS):
        return None
    scores = [readability(record, c, cfg, choice) for c in range(len(record.channels))]
    best = int(np.argmax(scores))
    return best if scores[best] - scores[0] >= choice.margin else 0


def with_chosen_lead(record: Record, cfg: SignalConfig | None = None) -> Record:
    """The record with its default lead chosen by :func:`chosen_lead` where its names do not
    say (``Record.default_channel``); the record itself otherwise."""
    ch = chosen_lead(record, cfg)
    return record if ch is None else replace(record, default_channel=ch)


def lead_note(record: Record) -> str | None:
    """One line for stderr where a replay takes another lead than the first by its signal."""
    ch = record.default_channel
    if not ch:
        return None
    return (f"{record.name}: replaying lead {record.channels[ch]}, not the first "
            f"({record.channels[0]}), which is far less readable; --lead picks one")
