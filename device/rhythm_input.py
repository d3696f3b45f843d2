"""Beat times from outside the signal path: RR-only front-ends (chest straps, patches) and tools.

A WFDB record's beat annotations, or a CSV whose header names one column ``t_s`` (beat times in
seconds) or ``rr_ms`` (RR intervals in milliseconds) and optionally ``class`` (each beat's AAMI
class). What comes out is what the rhythm analysis takes from the signal path: times, samples,
RR intervals (and, from annotations or a class column, the beat classes). Bad input is
refused in one line that says where and what to do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_edge.device.classes import CALLS, burden, count_calls
from ecg_edge.device.evaluation import aami_class
from ecg_edge.device.rhythm import RhythmConfig, analyze_beats, beat_types
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.records import csv_rows
from ecg_edge.firmware_bridge.wfdb_io import read_annotations_aux, read_header

#: Samples of a CSV's beats are given at this rate (milliseconds), as a sample index must be.
CSV_FS = 1000.0
#: Beat times beyond a year are a unit or export error, not a recording (and would overflow
#: the sample index).
MAX_TIME_S = 366 * 86400.0


@dataclass
class BeatInput:
    """Beats as the rhythm analysis takes them."""

    source: str
    fs: float  # rate of ``sample``
    time_s: np.ndarray
    sample: np.ndarray
    rr_s: np.ndarray  # NaN before the first interval and across refused intervals
    classes: np.ndarray | None  # AAMI class per beat, from annotations or a class column
    annotator: str | None = None  # the WFDB annotation file the beats came from
    rr_refused: int = 0  # intervals outside the valid range, taken as gaps (annotations only)


#: Beat annotation files tried in order: the reference, then the AF database's manually
#: corrected and automatic QRS annotations (its .atr holds rhythm changes only).
BEAT_ANNOTATORS = ("atr", "qrsc", "qrs")


class NoBeatAnnotations(UserError):
    """A WFDB record with no annotation file that labels beats (the AF database's rhythm-only
    ``.atr`` without its ``.qrs``): a folder evaluation of RR-only input leaves it out."""


def beat_annotations(base: Path, annotators: tuple[str, ...] = BEAT_ANNOTATORS
                     ) -> tuple[str, np.ndarray, np.ndarray]:
    """(annotator, samples, AAMI classes) of a WFDB record's beats: from the first of
    ``annotators`` that holds beats."""
    tried = []
    for name in annotators:
        f = base.with_suffix(f".{name}")
        if not f.exists():
            tried.append(f"no .{name}")
            continue
        samples, symbols, _ = read_annotations_aux(f)
        keep, cls = aami_class(symbols)
        if keep.any():
            if np.any(np.diff(samples[keep]) <= 0):
                raise UserError(f"{f}: beat annotations are not in time order")
            return name, samples[keep], cls[keep]
        tried.append(f".{name} holds no beats")
    raise NoBeatAnnotations(f"{base}: no beat annotations ({', '.join(tried)}); give the "
                            "annotation file's name (--annotator) or a CSV of beat times")


def read_beats(path: str | Path, cfg: RhythmConfig | None = None,
               annotator: str | None = None) -> BeatInput:
    """Beats of a WFDB record (its beat annotations: ``annotator``, else .atr, .qrsc or .qrs)
    or a ``t_s`` / ``rr_ms`` CSV."""
    path = Path(path)
    cfg = cfg or RhythmConfig()
    if path.suffix.lower() == ".csv":
        if annotator:
            raise UserError(f"{path}: --annotator names a WFDB annotation file; a CSV holds "
                            "its beats itself")
        beats = _read_csv(path, cfg)
    elif (path.suffix.lower() in ("", ".hea", ".dat", *(f".{a}" for a in BEAT_ANNOTATORS))
          or path.with_suffix(".hea").exists()):
        beats = _read_annotations(path, cfg, annotator)
    else:
        raise UserError(f"{path}: give a WFDB record (with beat annotations) or a CSV "
                        "with a t_s or rr_ms column")
    if not np.isfinite(beats.rr_s).any():
        raise UserError(f"{path}: no RR interval (one beat, or every interval outside "
                        f"{cfg.rr_valid_s[0]:g}-{cfg.rr_valid_s[1]:g} s); the rhythm analysis "
                        "needs at least two beats")
    return beats


def _read_annotations(path: Path, cfg: RhythmConfig, annotator: str | None) -> BeatInput:
    suffixes = (".hea", ".dat", *(f".{a}" for a in BEAT_ANNOTATORS))
    base = path.with_suffix("") if path.suffix in suffixes else path
    hea = base.with_suffix(".hea")
    if not hea.exists():
        raise UserError(f"{hea}: not found; a WFDB record needs its header and beat annotations")
    fs = read_header(hea).fs
    name, sample, cls = beat_annotations(base, (annotator,) if annotator else BEAT_ANNOTATORS)
    t = sample / fs
    rr, refused = annotated_intervals(t, cfg)
    return BeatInput(base.name, fs, t, sample, rr, cls, name, refused)


def annotated_intervals(time_s: np.ndarray, cfg: RhythmConfig) -> tuple[np.ndarray, int]:
    """RR intervals of annotated beat times (NaN before the first), and how many were refused.

    A long recording's annotations hold signal loss and, from a QRS detector, double
    detections: an interval outside ``cfg.rr_valid_s`` is no RR (a gap, as in the signal
    path), counted, not fatal as it is in a CSV someone wrote."""
    rr = np.r_[np.nan, np.diff(time_s)]
    lo, hi = cfg.rr_valid_s
    refused = np.isfinite(rr) & ((rr < lo) | (rr > hi))
    rr[refused] = np.nan
    return rr, int(refused.sum())


def _read_csv(path: Path, cfg: RhythmConfig) -> BeatInput:
    if not path.exists():
        raise UserError(f"{path}: file not found")
    rows = csv_rows(path, "a CSV with a t_s or rr_ms column")
    if not rows:
        raise UserError(f"{path}: empty; expected a header row naming t_s or rr_ms, then beats")
    header = [c.strip() for c in rows[0]]
    cols = [c for c in ("t_s", "rr_ms") if c in header]
    if len(cols) != 1:
        raise UserError(f"{path}: the header must name exactly one of the columns t_s (beat "
                        f"times, s) or rr_ms (RR intervals, ms); it has {', '.join(header)}")
    col = header.index(cols[0])
    values = []
    for k, r in enumerate(rows[1:], start=2):
        try:
            values.append(float(r[col]))
        except (IndexError, ValueError):
            raise UserError(f"{path}: line {k}: {cols[0]} value "
                            f"{r[col] if col < len(r) else ''!r} is not a number") from None
    classes = _csv_classes(path, header, rows[1:])
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        raise UserError(f"{path}: no beats after the header")
    if not np.all(np.isfinite(v)):
        k = int(np.flatnonzero(~np.isfinite(v))[0]) + 2
        raise UserError(f"{path}: line {k}: {cols[0]} is not a finite number")
    if cols[0] == "t_s":
        bad = np.flatnonzero(np.diff(v) <= 0)
        if len(bad):
            k = int(bad[0]) + 3
            raise UserError(f"{path}: line {k}: beat time {v[bad[0] + 1]:g} s is not after the "
                            f"one before ({v[bad[0]]:g} s); times must increase")
        if v[0] < 0:
            raise UserError(f"{path}: line 2: negative beat time {v[0]:g} s")
        t, rr = v, np.r_[np.nan, np.diff(v)]
    else:
        rr = v / 1000.0
        bad = np.flatnonzero(rr <= 0)
        if len(bad):
            raise UserError(f"{path}: line {int(bad[0]) + 2}: RR interval {v[bad[0]]:g} ms is "
                            "not positive")
        t = np.cumsum(rr)  # the first interval ends at the first beat listed
    _check_intervals(str(path), t, rr, cfg)
    if t[-1] > MAX_TIME_S:
        raise UserError(f"{path}: beat times reach {t[-1]:.4g} s, more than a year; check the "
                        "unit (t_s is seconds)")
    sample = np.round(t * CSV_FS).astype(np.int64)
    return BeatInput(path.stem, CSV_FS, t, sample, rr, classes)


def _csv_classes(path: Path, header: list[str], rows: list[list[str]]) -> np.ndarray | None:
    """The optional ``class`` column: each beat's AAMI class (with rr_ms, the beat that ends
    the interval), as a Holter program exports its beat list. Types are what let VT be found
    and take ectopic beats out of the AF windows (the typed rule,
    :attr:`RhythmConfig.af_enter_rr_classes`); a strap's file has none."""
    if "class" not in header:
        return None
    col = header.index("class")
    out = []
    for k, r in enumerate(rows, start=2):
        c = r[col].strip().upper() if col < len(r) else ""
        if c not in CALLS:
            raise UserError(f"{path}: line {k}: class {c!r} is not one of "
                            f"{', '.join(CALLS)} (AAMI; Q: unknown)")
        out.append(c)
    return np.asarray(out)


def _check_intervals(source: str, t: np.ndarray, rr: np.ndarray, cfg: RhythmConfig) -> None:
    lo, hi = cfg.rr_valid_s
    bad = np.flatnonzero(np.isfinite(rr) & ((rr < lo) | (rr > hi)))
    if len(bad):
        i = int(bad[0])
        raise UserError(f"{source}: beat {i + 1} at {t[i]:.6g} s follows an RR interval of "
                        f"{rr[i] * 1000:.6g} ms, outside {lo * 1000:.0f}-{hi * 1000:.0f} ms (a "
                        "missed or doubled beat, or a gap); clean the input or split it at the "
                        "gap")


def analyze_file(path: str | Path, cfg: RhythmConfig | None = None,
                 use_classes: bool = True, af_model=None,
                 annotator: str | None = None) -> tuple[list[dict], dict]:
    """Rhythm events and summary of a beat file, with the analysis throughput (beats/s)."""
    cfg = cfg or RhythmConfig()
    beats = read_beats(path, cfg, annotator)
    # Intervals refused as too long are signal loss: not monitored time. An rr_ms file's first
    # interval ends at its first beat: monitored from the beat before it.
    dt = np.diff(beats.time_s)
    lost = float(dt[np.isnan(beats.rr_s[1:]) & (dt > cfg.rr_valid_s[1])].sum())
    start = beats.time_s[0] - np.nan_to_num(beats.rr_s[0])
    classes = beat_types(beats.classes) if use_classes else None
    t0 = time.perf_counter()
    events, summary = analyze_beats(beats.time_s, beats.sample, beats.rr_s, cfg,
                                    classes=classes,
                                    monitored_s=float(beats.time_s[-1] - start) - lost,
                                    af_model=af_model)
    elapsed = time.perf_counter() - t0
    summary.update(type="summary", source=beats.source, fs=beats.fs, beats=len(beats.time_s),
                   classes=classes is not None,
                   annotator=beats.annotator, rr_refused=beats.rr_refused,
                   analysis_s=round(elapsed, 4),
                   beats_per_s=round(len(beats.time_s) / elapsed) if elapsed > 0 else None)
    if classes is not None:  # a Holter report's PVC / PAC burden, as the monitor's summary
        summary.update(burden(count_calls(classes)))
    return events, summary
