"""Reading recordings and turning them into scored, evaluated beats (batch side of the device)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.config import SignalConfig
from device.evaluation import PACED_RECORDS, BeatTable, evaluate_record
from device.signal_path import Beats, process_signal
from firmware_bridge.records import Record, list_wfdb_records, read_record

__all__ = ["Record", "RecordBeats", "list_wfdb_records", "read_record", "record_beats",
           "evaluate_folder"]


@dataclass
class RecordBeats:
    record: Record
    beats: Beats


def record_beats(record: Record, cfg: SignalConfig, lead: str | int | None = None) -> Beats:
    """Run the signal path over one lead of a whole record."""
    return process_signal(record.lead_mv(lead), record.fs, cfg)


def iter_folder(folder: str | Path, cfg: SignalConfig, include_paced: bool = False):
    """(Record, Beats) for every annotated record of a folder, paced records skipped."""
    for path in list_wfdb_records(folder):
        if not include_paced and path.name in PACED_RECORDS:
            continue
        rec = read_record(path)
        if not rec.has_annotations:
            continue
        yield RecordBeats(rec, record_beats(rec, cfg))


def evaluate_folder(folder: str | Path, cfg: SignalConfig, scorer, threshold: float,
                    start_s: float) -> dict[str, BeatTable]:
    """Score every record's beats with ``scorer(beats)`` and match them to the annotations."""
    tables = {}
    for rb in iter_folder(folder, cfg):
        s = np.asarray(scorer(rb.beats), dtype=float)
        tables[rb.record.name] = evaluate_record(
            rb.beats.sample, s, s > threshold, rb.record.ann_samples, rb.record.ann_symbols,
            rb.record.fs, start_s=start_s)
    return tables
