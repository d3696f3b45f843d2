"""Beat-level evaluation in the spirit of ANSI/AAMI EC57, shared by training and the device.

Detected beats are matched one-to-one to the reference annotations within 150 ms; MIT-BIH
symbols map to the AAMI classes N, S, V, F, Q; records with paced beats are excluded; the first
``start_s`` seconds are a learning period left out of every count (EC57 uses 5 minutes).
"Abnormal" is S, V and F; Q (unclassifiable) is reported but belongs to neither side.

Beside the flag, each beat's class call (N/S/V/F/Q) gives the statistics ``bxb`` reports: VEB
and SVEB sensitivity and positive predictivity, counted as ``bxb`` counts them (a call of V on
a reference F or Q beat is neither a true nor a false positive; a reference beat no detection
matched is a false negative of its class, bxb's Vo and So; detections and reference beats
inside annotated ventricular flutter are not counted). Escape beats (e, j) are N, as in the AAMI
class table de Chazal et al. (2004) use; ``bxb -S`` would count them as S.
False flags on N beats are split by the underlying rhythm of the reference rhythm annotations
(sinus, AF/flutter, other), where prematurity means the least.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

AAMI_CLASSES = ("N", "S", "V", "F", "Q")
ABNORMAL = ("S", "V", "F")
AAMI = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
PACED_RECORDS = ("102", "104", "107", "217")
MATCH_WINDOW_S = 0.15
EC57_START_S = 300.0
#: Rhythm groups of MIT-BIH rhythm annotations (aux notes of '+' annotations).
RHYTHM_GROUPS = {"(N": "sinus", "(SBR": "sinus", "(AFIB": "af", "(AFL": "af"}
RHYTHMS = ("sinus", "af", "other")
#: Ventricular flutter / fibrillation rhythm notes. EC57 (and bxb) leave these episodes out of
#: QRS and beat scoring: there is no QRS to detect in them, only flutter waves ('!').
VF_RHYTHMS = ("(VF", "(VFL")


def vf_episodes(ann_samples: np.ndarray, ann_symbols: list[str],
                rhythm: tuple[np.ndarray, list[str]] | None = None,
                end: int | None = None) -> list[tuple[int, int]]:
    """[start, end) sample intervals of annotated ventricular flutter/fibrillation: from '['
    to ']' (the episode marks bxb uses) and from a '(VF'/'(VFL' rhythm note to the next
    rhythm change (or ``end``), merged."""
    samples = np.asarray(ann_samples, np.int64)
    stop = int(end) if end is not None else (int(samples.max()) + 1 if len(samples) else 0)
    out, since = [], None
    for s, sym in zip(samples.tolist(), ann_symbols):
        if sym == "[" and since is None:
            since = s
        elif sym == "]" and since is not None:
            out.append((since, s))
            since = None
    if since is not None:
        out.append((since, stop))
    if rhythm is not None:
        at, notes = np.asarray(rhythm[0], np.int64).tolist(), [n.strip("\x00") for n in rhythm[1]]
        for k, (s, note) in enumerate(zip(at, notes)):
            if note in VF_RHYTHMS:
                out.append((s, at[k + 1] if k + 1 < len(at) else stop))
    merged: list[tuple[int, int]] = []
    for a, b in sorted(out):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def in_intervals(samples: np.ndarray, intervals: list[tuple[int, int]]) -> np.ndarray:
    """True for each sample inside one of the sorted, disjoint [start, end) intervals."""
    samples = np.asarray(samples, np.int64)
    if not intervals:
        return np.zeros(len(samples), dtype=bool)
    bounds = np.asarray(intervals, np.int64)
    k = np.searchsorted(bounds[:, 0], samples, side="right") - 1
    return (k >= 0) & (samples < bounds[np.maximum(k, 0), 1])


def rhythm_of(samples: np.ndarray, change_samples: np.ndarray, change_notes: list[str]
              ) -> np.ndarray:
    """Rhythm group (sinus / af / other) in effect at each sample, from the rhythm-change
    annotations; before the first one, sinus."""
    groups = np.array([RHYTHM_GROUPS.get(n.strip("\x00"), "other") for n in change_notes]
                      + ["sinus"], dtype="<U5")
    idx = np.searchsorted(np.asarray(change_samples), np.asarray(samples), side="right") - 1
    return groups[idx]  # index -1 -> the trailing "sinus"


def aami_class(symbols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(is_beat mask, AAMI class per symbol ('' for non-beat annotations))."""
    cls = np.array([AAMI.get(s, "") for s in symbols], dtype="<U1")
    return cls != "", cls


def match_beats(det: np.ndarray, ref: np.ndarray, tol: int) -> np.ndarray:
    """For each reference beat the index of its detection, or -1; nearest pairs first."""
    det, ref = np.asarray(det), np.asarray(ref)
    out = np.full(len(ref), -1, dtype=np.int64)
    if not len(det) or not len(ref):
        return out
    lo = np.searchsorted(det, ref - tol, side="left")
    hi = np.searchsorted(det, ref + tol, side="right")
    pairs = [(abs(int(det[j]) - int(r)), i, j)
             for i, (r, a, b) in enumerate(zip(ref, lo, hi)) for j in range(a, b)]
    used = np.zeros(len(det), dtype=bool)
    for _, i, j in sorted(pairs):
        if out[i] < 0 and not used[j]:
            out[i], used[j] = j, True
    return out


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average (``scipy.stats.rankdata``'s default).

    numpy only, so the device process never imports scipy (~70 MB of resident memory).
    """
    x = np.asarray(x)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.concatenate([[True], xs[1:] != xs[:-1]])  # a new value starts a tie group
    bounds = np.flatnonzero(np.concatenate([first, [True]]))  # group starts, then len(x)
    ranks = np.empty(len(x))
    ranks[order] = ((bounds[:-1] + bounds[1:] + 1) / 2)[np.cumsum(first) - 1]
    return ranks


def roc_auc(negative: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney ROC-AUC (ties count half); NaN when a side is empty."""
    neg = np.asarray(negative, float)
    pos = np.asarray(positive, float)
    neg, pos = neg[np.isfinite(neg)], pos[np.isfinite(pos)]
    if not len(neg) or not len(pos):
        return float("nan")
    ranks = average_ranks(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@dataclass
class BeatTable:
    """Matched beats of one or more records: the raw material of every figure."""

    n_ref: int = 0
    tp: int = 0
    fp: int = 0
    fp_flagged: int = 0  # unmatched detections that were flagged (false alarms)
    classes: list[str] = field(default_factory=list)  # AAMI class of each matched beat
    scores: list[float] = field(default_factory=list)
    flags: list[bool] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # class call of each matched beat
    rhythm: list[str] = field(default_factory=list)  # underlying rhythm of each matched beat
    fp_calls: list[str] = field(default_factory=list)  # calls of unmatched detections
    missed: list[str] = field(default_factory=list)  # classes of reference beats not detected
    hours: float = 0.0  # scored stream time (for alarm rates)
    episodes: int = 0  # anomaly episodes opened in the scored time: what a wearer is told
    false_episodes: int = 0  # of them, those without a single reference S/V/F/Q beat inside

    def extend(self, other: BeatTable) -> None:
        self.n_ref += other.n_ref
        self.tp += other.tp
        self.fp += other.fp
        self.fp_flagged += other.fp_flagged
        self.classes += other.classes
        self.scores += other.scores
        self.flags += other.flags
        self.calls += other.calls
        self.rhythm += other.rhythm
        self.fp_calls += other.fp_calls
        self.missed += other.missed
        self.hours += other.hours
        self.episodes += other.episodes
        self.false_episodes += other.false_episodes

    def metrics(self) -> dict:
        cls = np.array(self.classes, dtype="<U1")
        sc = np.array(self.scores, dtype=float)
        fl = np.array(self.flags, dtype=bool)
        fn = self.n_ref - self.tp
        out: dict = {
            "beats": self.n_ref,
            "qrs": {"tp": self.tp, "fn": fn, "fp": self.fp,
                    "se": _ratio(self.tp, self.tp + fn), "ppv": _ratio(self.tp, self.tp + self.fp)},
            "classes": {},
            "auc": {},
        }
        # An abnormal beat the detector missed was not flagged either (as bxb counts it);
        # N flag rates stay over the detected N beats (a missed beat raises no false alarm).
        missed = np.array(self.missed, dtype="<U1")
        for c in AAMI_CLASSES:
            m = cls == c
            n = int(m.sum()) + (int((missed == c).sum()) if c in ABNORMAL else 0)
            out["classes"][c] = {"n": n, "flagged": int(fl[m].sum()),
                                 "flag_rate": _ratio(int(fl[m].sum()), n)}
        abnormal = np.isin(cls, ABNORMAL)
        n_abnormal = int(abnormal.sum()) + int(np.isin(missed, ABNORMAL).sum())
        flagged_abnormal = int((fl & abnormal).sum())
        flagged_all = int((fl & np.isin(cls, ("N",) + ABNORMAL)).sum()) + self.fp_flagged
        out["abnormal"] = {"n": n_abnormal, "se": _ratio(flagged_abnormal, n_abnormal),
                           "ppv": _ratio(flagged_abnormal, flagged_all)}
        normal = sc[cls == "N"]
        for c in ABNORMAL:
            out["auc"][f"N_vs_{c}"] = roc_auc(normal, sc[cls == c])
        out["auc"]["N_vs_abnormal"] = roc_auc(normal, sc[abnormal])
        if self.rhythm:
            rh = np.array(self.rhythm, dtype="<U5")
            out["n_flagged_by_rhythm"] = {
                r: {"n": int(((cls == "N") & (rh == r)).sum()),
                    "flag_rate": _ratio(int((fl & (cls == "N") & (rh == r)).sum()),
                                        int(((cls == "N") & (rh == r)).sum()))}
                for r in RHYTHMS}
        if self.hours:
            out["alarms"] = {"hours": self.hours, "episodes": self.episodes,
                             "false_episodes": self.false_episodes,
                             "episodes_per_h": self.episodes / self.hours,
                             "false_per_h": self.false_episodes / self.hours}
        if self.calls:
            out["ec57"] = class_statistics(cls, np.array(self.calls, dtype="<U1"),
                                           np.array(self.fp_calls, dtype="<U1"),
                                           np.array(self.missed, dtype="<U1"))
        return out


def class_statistics(ref: np.ndarray, calls: np.ndarray, fp_calls: np.ndarray | None = None,
                     missed: np.ndarray | None = None) -> dict:
    """VEB and SVEB Se / +P from reference classes and class calls of matched beats, counted
    as bxb counts them: V calls on F or Q beats and S calls on Q beats count on neither side;
    unmatched detections called V or S are false positives; ``missed``, the classes of the
    reference beats no detection matched, are false negatives of their class. Plus the
    confusion matrix of the matched beats and bxb's other two margins (``missed``, ``extra``)."""
    fp_calls = np.zeros(0, "<U1") if fp_calls is None else fp_calls
    missed = np.zeros(0, "<U1") if missed is None else missed
    out: dict = {"confusion": {r: {c: int(((ref == r) & (calls == c)).sum()) for c in AAMI_CLASSES}
                               for r in AAMI_CLASSES},
                 # bxb's "o" column and "O" row: reference beats not detected, by class, and
                 # detections matching no reference beat, by call
                 "missed": {c: int((missed == c).sum()) for c in AAMI_CLASSES},
                 "extra": {c: int((fp_calls == c).sum()) for c in AAMI_CLASSES}}
    for name, c, ignore in (("veb", "V", ("F", "Q")), ("sveb", "S", ("Q",))):
        tp = int(((ref == c) & (calls == c)).sum())
        pos = int((ref == c).sum()) + int((missed == c).sum())
        called = int(((calls == c) & ~np.isin(ref, ignore)).sum()) + int((fp_calls == c).sum())
        out[name] = {"n": pos, "tp": tp, "se": _ratio(tp, pos), "ppv": _ratio(tp, called)}
    return out


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def evaluate_record(det_samples: np.ndarray, scores: np.ndarray, flags: np.ndarray,
                    ann_samples: np.ndarray, ann_symbols: list[str], fs: float,
                    start_s: float = EC57_START_S, end_s: float | None = None,
                    calls: np.ndarray | None = None,
                    rhythm: tuple[np.ndarray, list[str]] | None = None,
                    episodes: np.ndarray | None = None, n_samples: int | None = None
                    ) -> BeatTable:
    """Match one record's detections (at the record's rate) to its annotations.

    ``calls``: each detection's class call; ``rhythm``: the record's rhythm-change annotations
    (samples, aux notes), which label each reference beat's underlying rhythm; ``episodes``:
    the anomaly episodes the monitor opened, (k, 2) first and last sample, with ``n_samples``
    the record's length: the alarm load a wearer would have had (a beat-level +P hides whether
    the false flags come one by one or as episodes)."""
    det_samples = np.asarray(det_samples, dtype=np.int64)
    is_beat, cls = aami_class(ann_symbols)
    ref = np.asarray(ann_samples, dtype=np.int64)[is_beat]
    cls = cls[is_beat]
    lo = int(round(start_s * fs))
    hi = np.iinfo(np.int64).max if end_s is None else int(round(end_s * fs))
    tol = int(round(MATCH_WINDOW_S * fs))
    match = match_beats(det_samples, ref, tol)
    vf = vf_episodes(ann_samples, ann_symbols, rhythm, n_samples)
    in_ref = (ref >= lo) & (ref < hi) & ~_inside(ref, vf)
    matched = match >= 0
    used = np.zeros(len(det_samples), dtype=bool)
    used[match[matched]] = True
    in_det = (det_samples >= lo) & (det_samples < hi) & ~_inside(det_samples, vf)
    fp_mask = in_det & ~used
    keep = in_ref & matched
    j = match[keep]
    extra: dict = {}
    if calls is not None:
        calls = np.asarray(calls, dtype="<U1")
        extra["calls"] = calls[j].tolist()
        extra["fp_calls"] = calls[fp_mask].tolist()
    if rhythm is not None:
        extra["rhythm"] = rhythm_of(ref[keep], *rhythm).tolist()
    if episodes is not None and n_samples is not None:
        extra.update(episode_load(np.asarray(episodes, np.int64).reshape(-1, 2),
                                  ref[cls != "N"], vf, tol, lo, min(hi, n_samples), fs))
    extra["missed"] = cls[in_ref & ~matched].tolist()
    return BeatTable(
        n_ref=int(in_ref.sum()),
        tp=int(keep.sum()),
        fp=int(fp_mask.sum()),
        fp_flagged=int((np.asarray(flags, bool) & fp_mask).sum()),
        classes=cls[keep].tolist(),
        scores=np.asarray(scores, float)[j].tolist(),
        flags=np.asarray(flags, bool)[j].tolist(),
        **extra,
    )


def _inside(samples: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Which of ``samples`` fall in one of the [start, end) ``spans``."""
    out = np.zeros(len(samples), bool)
    for a, b in spans:
        out |= (samples >= a) & (samples < b)
    return out


def episode_load(spans: np.ndarray, abnormal: np.ndarray, vf: list[tuple[int, int]], tol: int,
                 lo: int, hi: int, fs: float) -> dict:
    """Episodes opened in [lo, hi) and how many hold neither an abnormal reference beat nor
    ventricular flutter/fibrillation (within the matching tolerance of their ends): false
    alarms as the wearer would count them."""
    spans = spans[(spans[:, 0] >= lo) & (spans[:, 0] < hi)]
    a, b = spans[:, 0] - tol, spans[:, 1] + tol
    true = np.searchsorted(abnormal, b, side="right") > np.searchsorted(abnormal, a, side="left")
    for start, end in vf:
        true |= (a < end) & (b >= start)
    return {"hours": max(hi - lo, 0) / fs / 3600.0, "episodes": len(spans),
            "false_episodes": int(np.count_nonzero(~true))}


def summarize(per_record: dict[str, BeatTable]) -> dict:
    """Per-record metrics and the gross (pooled) metrics, ready for JSON."""
    gross = BeatTable()
    for t in per_record.values():
        gross.extend(t)
    return {"records": {k: v.metrics() for k, v in per_record.items()}, "gross": gross.metrics()}


def to_jsonable(obj):
    """NaN -> None so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


__all__ = ["AAMI", "BeatTable", "evaluate_record", "roc_auc", "summarize", "asdict"]
