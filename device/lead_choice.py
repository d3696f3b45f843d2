"""Which lead of a recorded file is "the ECG lead" when its lead names do not say.

A live front-end sends one lead, the one its electrodes make. A recorded Holter file often holds
two or more under generic names (the AF and sinus-rhythm databases: ``ECG1``, ``ECG2``), and the
first is not always the readable one: one electrode pair can be loose or buried in muscle noise
for the whole day. Where a record names none of the preferred leads
(:data:`firmware_bridge.records.PREFERRED_LEADS`), replays take the first lead unless another is
clearly more readable to the device itself, over a few stretches spread through the record:
the share of time its signal-quality judge (:class:`device.quality.SignalQuality`, behind its
own filters) calls good, less the share it calls unreadable, less twice the share of RR
intervals its beat detector gives that no heart makes (under 0.6 or over 1.6 times the median
of the few before: a beat missed or invented). Both leads see the same heart, so its real
ectopy and pauses count on each alike; a lead whose small QRS hides beside large PVCs or T
waves (MIT-BIH 208's V1: 28 % of its intervals against 1 % on MLII) reads clean to the quality
judge and is caught by the second term. The margin keeps the first lead wherever the two are
alike, so a record is replayed on another lead only where its first is clearly worse.

Measured on the 28 MIT-BIH records with their names hidden (the margin and the weight were
set there; the Holter databases it is for are measured independently):
`benchmarks/results/session91.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.quality import GOOD, UNREADABLE
from ecg_edge.device.signal_path import Beats, SignalPath
from ecg_edge.firmware_bridge.records import PREFERRED_LEADS, Record


@dataclass(frozen=True)
class LeadChoice:
    probe_s: float = 30.0  # each stretch judged
    probes: int = 10  # stretches, spread evenly through the record (the whole of a short one)
    settle_s: float = 4.0  # the start of each stretch, where the filters settle, is not judged
    # An RR interval outside these times the median of the (up to) 8 before it is implausible,
    # and the share of those counts this many times against the lead.
    rr_plausible: tuple[float, float] = (0.6, 1.6)
    rr_weight: float = 2.0
    # Another lead replaces the first only when its :func:`readability` is higher by this much.
    margin: float = 0.2


def implausible_rr(times_s: np.ndarray, plausible: tuple[float, float]) -> tuple[int, int]:
    """(implausible, judged) RR intervals of consecutive beat times: each against the median
    of the up to 8 before it, once 3 are known."""
    rr = np.diff(np.asarray(times_s, np.float64))
    judged = [(r, np.median(rr[max(0, i - 8) : i])) for i, r in enumerate(rr) if i >= 3]
    bad = sum(not plausible[0] * m <= r <= plausible[1] * m for r, m in judged)
    return bad, len(judged)


def readability(record: Record, channel: int, cfg: SignalConfig | None = None,
                choice: LeadChoice = LeadChoice()) -> float:
    """Share of the lead's judged time that is good, less the share that is unreadable, less
    ``choice.rr_weight`` times the share of implausible RR intervals of its beats, over
    ``choice.probes`` stretches of ``choice.probe_s`` seconds."""
    cfg = cfg or SignalConfig()
    x = record.counts[:, channel].astype(np.float64) * (record.uv_per_count[channel] / 1000.0)
    if record.invalid is not None:
        x[record.invalid[:, channel]] = 0.0  # no signal there: judged a flat line
    span = max(1, int(round(choice.probe_s * record.fs)))
    if len(x) <= span * choice.probes:
        starts, span = [0], len(x)
    else:
        starts = np.linspace(0, len(x) - span, choice.probes).round().astype(int).tolist()
    whole = max(2, int(round(cfg.quality.segment_s * cfg.fs)))  # a whole segment's samples
    levels: list[int] = []
    bad = judged = 0
    for a in starts:
        path = SignalPath(cfg, record.fs)  # one pass: its beats and its quality judge's segments
        beats = Beats.concat([path.push(x[a : a + span]), path.flush()], path.n.window)
        levels += [q.segment.level for q in path.take_quality()
                   if q.segment.start >= choice.settle_s * cfg.fs
                   and q.segment.end - q.segment.start == whole]
        b, n = implausible_rr(beats.time_s, choice.rr_plausible)
        bad, judged = bad + b, judged + n
    if not levels:
        return 0.0
    lv = np.asarray(levels)
    return float(np.mean(lv == GOOD) - np.mean(lv == UNREADABLE)
                 - choice.rr_weight * bad / max(judged, 1))


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

