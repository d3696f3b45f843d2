"""Beat-set loaders (UCR TSV/ARFF, CSV of beats) and MIT-BIH beat datasets.

Beat sets arrive already cut (one beat per row); continuous records go through the device's
signal path (:mod:`device.records`) so training sees exactly the windows the device will see.
No TensorFlow here: these loaders are also used by evaluation and tests.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_edge.firmware_bridge.errors import RecordError

#: ECG5000's label names (class 1 is normal; the rest are anomalies in the usual protocol).
ECG5000_CLASSES = {1: "N", 2: "R-on-T PVC", 3: "PVC", 4: "SP", 5: "UB"}


@dataclass
class BeatSet:
    """Beats as rows with one integer label each."""

    x: np.ndarray  # float32 (n, length)
    y: np.ndarray  # int64 (n,)
    source: str

    def __len__(self) -> int:
        return len(self.y)


def _check(path: Path) -> None:
    if not path.exists():
        raise RecordError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise RecordError(f"{path}: file is empty")


def _finish(rows: list[list[float]], path: Path, label_col: int) -> BeatSet:
    if not rows:
        raise RecordError(f"{path}: no beats found")
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise RecordError(f"{path}: rows have different lengths {sorted(lengths)[:5]}; "
                          "every beat must have the same number of samples")
    data = np.asarray(rows, dtype=np.float64)
    if data.shape[1] < 2:
        raise RecordError(f"{path}: a label column and at least one sample are needed")
    if not np.all(np.isfinite(data)):
        raise RecordError(f"{path}: {int((~np.isfinite(data)).sum())} values are NaN or infinite")
    y = data[:, label_col]
    x = np.delete(data, label_col, axis=1)
    if not np.all(y == np.round(y)):
        raise RecordError(f"{path}: label column {label_col} holds non-integer values")
    return BeatSet(x.astype(np.float32), y.astype(np.int64), str(path))


def _parse_rows(lines, path: Path, delimiter: str | None) -> list[list[float]]:
    rows = []
    for k, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(delimiter) if delimiter else line.split()
        try:
            rows.append([float(p) for p in parts if p.strip() != ""])
        except ValueError:
            raise RecordError(f"{path}: line {k} is not numeric: {line[:40]!r}") from None
    return rows


def load_ucr_tsv(path: str | Path) -> BeatSet:
    """UCR 2018 TSV: label first, then the samples, tab-separated, no header."""
    path = Path(path)
    _check(path)
    with path.open() as fh:
        return _finish(_parse_rows(fh, path, "\t"), path, 0)


def load_arff(path: str | Path) -> BeatSet:
    """ARFF as the UCR archive ships it: numeric attributes, the class attribute last."""
    path = Path(path)
    _check(path)
    rows, in_data = [], False
    with path.open() as fh:
        for k, line in enumerate(fh, 1):
            s = line.strip()
            if not s or s.startswith("%"):
                continue
            if not in_data:
                if s.lower().startswith("@data"):
                    in_data = True
                continue
            parts = [p.strip().strip("'\"") for p in s.split(",")]
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                raise RecordError(f"{path}: data line {k} is not numeric: {s[:40]!r}") from None
    if not in_data:
        raise RecordError(f"{path}: no @data section; is this an ARFF file?")
    return _finish(rows, path, -1)


def load_beat_csv(path: str | Path, label_column: str | int = 0) -> BeatSet:
    """CSV of beats, one per row; the label column by header name or index."""
    path = Path(path)
    _check(path)
    with path.open(newline="") as fh:
        raw = [r for r in csv.reader(fh) if r]
    if not raw:
        raise RecordError(f"{path}: no beats found")
    header = None
    try:
        [float(c) for c in raw[0]]
    except ValueError:
        header, raw = [c.strip() for c in raw[0]], raw[1:]
    if isinstance(label_column, str):
        if header is None or label_column not in header:
            raise RecordError(f"{path}: no column named {label_column!r} in the header")
        label_column = header.index(label_column)
    try:
        rows = [[float(c) for c in r] for r in raw]
    except ValueError as exc:
        raise RecordError(f"{path}: not numeric CSV ({exc})") from None
    return _finish(rows, path, label_column)


def load_beats(path: str | Path, label_column: str | int = 0) -> BeatSet:
    """Any beat-set file by its extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".txt"):
        return load_ucr_tsv(path)
    if suffix == ".arff":
        return load_arff(path)
    if suffix == ".csv":
        return load_beat_csv(path, label_column)
    raise RecordError(f"{path}: unknown beat-set format {suffix!r} (use .tsv, .arff or .csv)")


def load_ecg5000(folder: str | Path) -> BeatSet:
    """All 5000 ECG5000 beats (TRAIN + TEST concatenated, the anomaly protocol re-splits)."""
    folder = Path(folder)
    parts = [load_ucr_tsv(folder / f"ECG5000_{s}.tsv") for s in ("TRAIN", "TEST")]
    return BeatSet(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                   str(folder))
