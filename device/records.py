"""Reading recordings and turning them into scored, evaluated beats (batch side of the device)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import PACED_RECORDS, BeatTable, aami_class, evaluate_record
from ecg_edge.device.events import episode_spans
from ecg_edge.device.lead_choice import with_chosen_lead
from ecg_edge.device.signal_path import Beats, process_signal
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.progress import progress
from ecg_edge.firmware_bridge.records import (
    OTHER_LEAD,
    Record,
    lead_index,
    list_wfdb_records,
    missing_signal_files,
    read_record,
)
from ecg_edge.firmware_bridge.wfdb_io import read_annotations, read_annotations_aux, read_header

__all__ = ["Record", "RecordBeats", "list_wfdb_records", "read_record", "read_rhythm",
           "record_beats", "resample_record", "evaluate_folder", "folder_records"]


@dataclass
class RecordBeats:
    record: Record
    beats: Beats


def record_beats(record: Record, cfg: SignalConfig, lead: str | int | None = None) -> Beats:
    """Run the signal path over one lead of a whole record."""
    return process_signal(record.lead_mv(lead), record.fs, cfg)


def _check_rate(fs: float) -> None:
    if not (np.isfinite(fs) and 50.0 <= fs <= 10_000.0):
        raise UserError(f"resample rate {fs} Hz is outside 50-10000 Hz; give a front-end's rate "
                        "such as 128, 250 or 500")


def invert_record(record: Record) -> Record:
    """The record with every lead inverted, as swapped electrodes (or a lead whose QRS points
    down) would give it: does a bundle hold on a lead of the other polarity?"""
    return replace(record, counts=-record.counts)


def resample_record(record: Record, fs: float) -> Record:
    """The record as a front-end sampling at ``fs`` would have given it (polyphase anti-alias
    filter, counts at the same gain), annotations moved to the new rate: a bench check that a
    bundle holds on front-ends at other rates (the bundle resamples to its own rate on the device,
    in the streaming path; this offline resampling only stands in for a different ADC)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    _check_rate(fs)
    ratio = Fraction(fs / record.fs).limit_denominator(1000)
    x = record.counts.astype(np.float64)
    if record.invalid is not None:
        x[record.invalid] = 0.0  # no number: the marker value would ring through the filter
    counts = resample_poly(x, ratio.numerator, ratio.denominator, axis=0)
    new_fs = record.fs * ratio.numerator / ratio.denominator
    samples = np.round(record.ann_samples * (new_fs / record.fs)).astype(np.int64)

    def moved(mask):  # a sample at the new rate is marked where either neighbour was
        if mask is None:
            return None
        pos = np.arange(len(counts)) * (record.fs / new_fs)
        lo = np.minimum(np.floor(pos).astype(np.int64), len(mask) - 1)
        return mask[lo] | mask[np.minimum(lo + 1, len(mask) - 1)]

    return Record(record.name, np.round(counts).astype(np.int32), new_fs,
                  record.uv_per_count, record.channels,
                  np.clip(samples, 0, len(counts) - 1), record.ann_symbols,
                  invalid=moved(record.invalid), saturated=moved(record.saturated),
                  default_channel=record.default_channel)


def replay_lead(record: Record, lead: str | int | None = None) -> Record:
    """The record as a replay of ``lead`` needs it: where ``lead`` is left to the default
    (None, or ``"other"``: the lead that is not the default) and the record's lead names do not
    say which is the ECG lead, its default lead chosen by its signal
    (:func:`device.lead_choice.with_chosen_lead`), and one line on stderr where a replay of the
    default takes another lead than the first. A named or numbered ``lead`` needs no choice."""
    if lead is not None and lead != OTHER_LEAD:
        return record
    record = with_chosen_lead(record)
    ch = record.default_channel
    if lead is None and ch:
        print(f"{record.name}: replaying lead {record.channels[ch]}, not the first "
              f"({record.channels[0]}), which is far less readable; --lead picks one",
              file=sys.stderr)
    return record


def replayed_record(path: str | Path, invert_lead: bool = False,
                    resample_hz: float | None = None,
                    lead: str | int | None = None) -> tuple[Record, float]:
    """A record as a bench replay of ``lead`` presents it (:func:`replay_lead`), with its
    leads inverted (:func:`invert_record`) and resampled (:func:`resample_record`) where asked,
    and the factor that moves the recorded sample indices of its other annotations (rhythm) to
    the replay's rate."""
    rec = replay_lead(read_record(path), lead)
    fs_was = rec.fs
    if invert_lead:
        rec = invert_record(rec)
    if resample_hz is not None:
        rec = resample_record(rec, resample_hz)
    return rec, rec.fs / fs_was


def read_rhythm(path: str | Path, annotator: str = "atr") -> tuple[np.ndarray, list[str]]:
    """Rhythm-change annotations of a WFDB record: (samples, aux notes such as '(AFIB');
    empty when the record has none. The device's own reader: a Pi evaluates without wfdb."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".hea", ".dat", f".{annotator}") else path
    if not base.with_suffix(f".{annotator}").exists():
        return np.zeros(0, np.int64), []
    samples, _, aux = read_annotations_aux(base.with_suffix(f".{annotator}"))
    keep = [i for i, note in enumerate(aux) if note.startswith("(")]
    return samples[keep].astype(np.int64), [aux[i] for i in keep]


def iter_folder(folder: str | Path, cfg: SignalConfig, include_paced: bool = False,
                lead: str | None = None):
    """(Record, Beats) of one lead (default MLII or the first) of every record of a folder with
    beat labels (:func:`folder_records`, the others named on stderr), paced records skipped."""
    paths, skipped = folder_records(folder)
    if not include_paced:
        paths, skipped = _unpaced(paths, skipped)
    warn_skipped(skipped)
    for path in paths:
        rec = read_record(path)
        yield RecordBeats(rec, record_beats(rec, cfg, lead))


def folder_records(folder: str | Path, names: list[str] | None = None, signal: bool = True,
                   beat_labels: bool = True) -> tuple[list[Path], dict[str, str]]:
    """The records of a folder an evaluation can use, and why each other one cannot (name ->
    reason). Records named by the caller must all be usable (an error names the one that is
    not); the rest of a listed folder is skipped and reported, not fatal: a database folder may
    hold records published without signals or without beat labels (the AF database has both)
    or without annotations at all. ``beat_labels``: the ``.atr`` must label beats (a
    beat-by-beat comparison), not only rhythm changes."""
    if names is None:
        paths = list_wfdb_records(folder)
    else:
        paths = [Path(folder) / n for n in names]
        missing = [p.name for p in paths if not p.with_suffix(".hea").exists()]
        if missing:
            raise UserError(f"{folder}: no record(s) {', '.join(missing)} (no .hea file)")
    keep, skipped = [], {}
    for path in paths:
        lost = missing_signal_files(path) if signal else []
        atr = path.with_suffix(".atr")
        why = (f"signal file {', '.join(lost)} not found" if lost else
               "no reference annotations (.atr)" if not atr.exists() else
               "its .atr labels no beats (rhythm changes only, as in the AF database: "
               "rhythm-evaluate compares those)"
               if beat_labels and not aami_class(read_annotations(atr)[1])[0].any()
               else None)
        if why is None:
            keep.append(path)
        elif names is not None:
            raise UserError(f"{path}: {why}; leave it out of the records named")
        else:
            skipped[path.name] = why
    if not keep:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise UserError(f"{folder}: none of its records can be used" + (f" ({why})" if why else ""))
    return keep, skipped


def _unpaced(paths: list[Path], skipped: dict[str, str]
             ) -> tuple[list[Path], dict[str, str]]:
    """The paths without paced records, which EC57 leaves out, and those added to skipped."""
    paced = {p.name: "paced (EC57 leaves paced records out)" for p in paths
             if p.name in PACED_RECORDS}
    return [p for p in paths if p.name not in paced], {**skipped, **paced}


def check_lead(paths: list[Path], lead: str | None) -> None:
    """Every record has ``lead`` (:meth:`Record.channel_index`), said from the headers before
    any record is replayed, not halfway through a folder."""
    if lead is None:
        return
    for path in paths:
        lead_index(path.name, [s.name for s in read_header(path.with_suffix(".hea")).signals],
                   lead)


def warn_skipped(skipped: dict[str, str]) -> None:
    """One stderr line per record a folder evaluation left out, so none goes missing unseen."""
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)


def evaluate_folder(folder: str | Path, cfg: SignalConfig, scorer, threshold: float,
                    start_s: float, records: list[str] | None = None,
                    block_s: float = 10.0, settings: dict | None = None,
                    resample_hz: float | None = None,
                    invert_lead: bool = False, lead: str | None = None,
                    on_record: Callable[[Path, list[dict], dict], None] | None = None,
                    leads: dict[str, str] | None = None) -> dict[str, BeatTable]:
    """Replay every annotated record through the streaming monitor (the device's own code
    path) with ``scorer`` and match its beat events to the annotations. ``settings``: the rest
    of what a bundle tells the monitor (``device.monitor.bundle_settings``), so the monitor
    measured is the one the device runs. ``resample_hz``: replay each record as a front-end at
    that rate would have sampled it (:func:`resample_record`). ``invert_lead``: replay each
    record with its lead inverted (electrodes swapped, or a lead whose QRS points down).
    ``lead``: which lead of each record to replay (a name, an index or ``"other"``;
    :meth:`Record.channel_index`); default MLII or another named ECG lead, else as
    :func:`replayed_record` chooses. ``on_record(path, events, summary)``, where given, sees
    each replay's events and summary too (its rhythm episodes are measured from the same
    pass). ``leads``, where given, gets each record's name -> the lead replayed."""
    from ecg_edge.device.monitor import Monitor, record_blocks, run_blocks

    if resample_hz is not None:
        _check_rate(resample_hz)
    tables = {}
    paths, skipped = _unpaced(*folder_records(folder, records))
    warn_skipped(skipped)
    check_lead(paths, lead)
    for path in progress(paths, "record", lambda p: p.name):
        rec, moved = replayed_record(path, invert_lead, resample_hz, lead)
        if leads is not None:
            leads[rec.name] = rec.channels[rec.channel_index(lead)]
        rhythm_samples, rhythm_notes = read_rhythm(path)
        if moved != 1.0:
            rhythm_samples = np.round(rhythm_samples * moved).astype(np.int64)
        events: list[dict] = []
        summary = run_blocks(Monitor(cfg, scorer, threshold, events.append, **(settings or {})),
                             record_blocks(rec, lead, block_s))
        if on_record is not None:
            on_record(path, events, summary)
        beats = [e for e in events if e["type"] == "beat"]
        sample = np.array([e["sample"] for e in beats], dtype=np.int64)
        score = np.array([np.nan if e["score"] is None else e["score"] for e in beats])
        flag = np.array([e["flag"] for e in beats], dtype=bool)
        calls = np.array([e.get("class", "N") for e in beats], dtype="<U1")
        episodes = episode_spans([e for e in events if e["type"].startswith("episode_")],
                                  int(sample.max(initial=0)))
        tables[rec.name] = evaluate_record(sample, score, flag, rec.ann_samples,
                                           rec.ann_symbols, rec.fs, start_s=start_s,
                                           calls=calls, rhythm=(rhythm_samples, rhythm_notes),
                                           episodes=episodes, n_samples=rec.n_samples)
    return tables
