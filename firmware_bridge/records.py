"""Continuous ECG recordings: WFDB, CSV and NPY, as front-end counts with a gain.

A recording is what a front-end would stream: integer counts plus microvolts per count, at a
sample rate. The emulator plays it over a serial link and the device replays it, so both read
it through here (firmware_bridge is the bottom of the dependency chain). WFDB's common formats are
read with numpy alone (:mod:`firmware_bridge.wfdb_io`), so a Pi needs no wfdb package.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecg_edge.firmware_bridge import wfdb_io
from ecg_edge.firmware_bridge.errors import RecordError

_I32 = (-(1 << 31), (1 << 31) - 1)
MAX_RECORD_CHANNELS = 64
#: Lead names tried in order when the caller asks for "the ECG lead".
PREFERRED_LEADS = ("MLII", "II", "ECG", "ML2", "V5")
#: The lead name that picks the first lead other than the preferred one.
OTHER_LEAD = "other"


@dataclass
class Record:
    """A multi-channel recording; ``counts`` are integers relative to the ADC zero."""

    name: str
    counts: np.ndarray  # int32, shape (n_samples, n_channels)
    fs: float
    uv_per_count: np.ndarray  # float, one per channel
    channels: list[str]
    ann_samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ann_symbols: list[str] = field(default_factory=list)
    # (n_samples, n_channels) True where the file marks a sample invalid (WFDB's invalid
    # value: lost, lead off); None where none is. Those samples are no signal: a replay feeds
    # them to the monitor as lost samples (a gap), never as numbers.
    invalid: np.ndarray | None = None
    # (n_samples, n_channels) True where a channel sits at its ADC's limit for at least
    # SATURATION_MIN_S (wfdb_io.saturated_samples); None where none does. A replay sends those
    # samples as a front-end sends a block it marks saturated: unreadable, and a gap.
    saturated: np.ndarray | None = None
    # The lead "the ECG lead" (``channel_index(None)``) means for this record where its lead
    # names do not say (none of PREFERRED_LEADS): chosen by its signal
    # (``device.lead_choice``); None: by name, else the first.
    default_channel: int | None = None

    @property
    def n_samples(self) -> int:
        return int(self.counts.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    @property
    def has_annotations(self) -> bool:
        return len(self.ann_symbols) > 0

    def channel_index(self, lead: str | int | None = None) -> int:
        """Resolve a lead: a name, an index (also as digits, the way a command line gives it),
        ``None`` for the first preferred ECG lead, or ``"other"`` for the first lead that is not
        that one (a second lead of a Holter record: does a bundle hold on a lead it was not
        trained on?). A record with a :attr:`default_channel` takes that lead as the preferred
        one."""
        d = self.default_channel
        if d is not None and (lead is None or lead == OTHER_LEAD):
            if lead is None:
                return d
            if len(self.channels) < 2:
                return lead_index(self.name, self.channels, lead)  # its one-lead error
            return next(i for i in range(len(self.channels)) if i != d)
        return lead_index(self.name, self.channels, lead)

    def lead_mv(self, lead: str | int | None = None) -> np.ndarray:
        """One lead in millivolts."""
        ch = self.channel_index(lead)
        return self.counts[:, ch].astype(np.float64) * (self.uv_per_count[ch] / 1000.0)


def lead_index(name: str, channels: list[str], lead: str | int | None = None) -> int:
    """:meth:`Record.channel_index` of a record called ``name`` with these lead names (what a
    header alone says: a folder's leads are checked before any signal is read)."""
    if isinstance(lead, str) and lead not in channels:
        if lead.isdigit():
            lead = int(lead)
        elif lead == OTHER_LEAD:
            if len(channels) < 2:
                raise RecordError(f"{name}: has one lead ({channels[0]}) and no "
                                  "other; give records with two leads or ask for that one")
            first = lead_index(name, channels)
            return next(i for i in range(len(channels)) if i != first)
    if isinstance(lead, int):
        if not 0 <= lead < len(channels):
            raise RecordError(
                f"{name}: channel {lead} does not exist "
                f"(the record has {len(channels)}: {', '.join(channels)})"
            )
        return lead
    if lead is None:
        for preferred in PREFERRED_LEADS:
            if preferred in channels:
                return channels.index(preferred)
        return 0
    if lead not in channels:
        raise RecordError(f"{name}: no lead named {lead!r} (leads: {', '.join(channels)})")
    return channels.index(lead)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise RecordError(f"{path}: file not found")
    if path.is_dir():
        raise RecordError(f"{path}: is a folder; give a recording file")
    if path.is_file() and path.stat().st_size == 0:
        raise RecordError(f"{path}: file is empty")


def _finish(name: str, values: np.ndarray, fs: float | None, uv_per_count: float,
            path: Path, channels: list[str] | None = None) -> Record:
    if fs is None or not np.isfinite(fs) or fs <= 0:
        raise RecordError(f"{path}: a sample rate is needed for this format (give fs in Hz)")
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0:
        raise RecordError(f"{path}: expected samples x channels, got shape {values.shape}")
    if values.shape[1] > MAX_RECORD_CHANNELS:
        raise RecordError(f"{path}: {values.shape[1]} channels; one row per sample and one "
                          f"column per channel are expected (at most {MAX_RECORD_CHANNELS})")
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise RecordError(f"{path}: {bad} samples are NaN or infinite; clean or interpolate them")
    if not (np.isfinite(uv_per_count) and uv_per_count > 0):
        raise RecordError(f"{path}: gain {uv_per_count} uV per count must be a positive number")
    is_integer = np.issubdtype(values.dtype, np.integer) or np.all(values == np.round(values))
    if is_integer:
        wide, gain = values, uv_per_count
    else:
        # Physical millivolts: store as 1 µV counts so every recording has one shape.
        wide, gain = np.round(values * 1000.0), 1.0
    if wide.size and (wide.min() < _I32[0] or wide.max() > _I32[1]):
        bad = int(np.count_nonzero((wide < _I32[0]) | (wide > _I32[1])))
        raise RecordError(f"{path}: {bad} values lie outside the 32-bit range a front-end "
                          f"sends ({wide.min():g} .. {wide.max():g}"
                          + (" counts" if is_integer else " uV") + "); check the units")
    counts = wide.astype(np.int32)
    n_ch = counts.shape[1]
    channels = channels or [f"ch{i}" for i in range(n_ch)]
    return Record(name, counts, float(fs), np.full(n_ch, float(gain)), channels)


def csv_rows(path: Path, expected: str) -> list[list[str]]:
    """The non-blank rows of a CSV file; text that is not UTF-8 or not CSV is one RecordError
    that says what was ``expected``. utf-8-sig: spreadsheets write a byte-order mark first,
    which would otherwise join the first cell."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise RecordError(f"{path}: not UTF-8 text; {expected} is expected") from None
    except csv.Error as exc:
        raise RecordError(f"{path}: not a readable CSV ({exc}); {expected} is expected") from None


def read_csv(path: str | Path, fs: float | None, uv_per_count: float = 1.0) -> Record:
    """CSV of samples, one row per sample, one column per channel, optional header row.

    Integer values are taken as counts (``uv_per_count`` each), decimals as millivolts.
    """
    path = Path(path)
    _check_file(path)
    rows = csv_rows(path, "a CSV of numbers")
    if not rows:
        raise RecordError(f"{path}: no samples found")
    header = None
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    try:
        values = np.array([[float(c) for c in r] for r in rows])
    except (ValueError, OverflowError) as exc:
        raise RecordError(f"{path}: not numeric CSV ({exc}); one sample per row expected") from None
    if values.ndim != 2:
        raise RecordError(f"{path}: rows have different numbers of columns")
    return _finish(path.stem, values, fs, uv_per_count, path, header)


def read_npy(path: str | Path, fs: float | None, uv_per_count: float = 1.0) -> Record:
    """NPY array of shape (n,) or (n, channels); integers are counts, floats millivolts."""
    path = Path(path)
    _check_file(path)
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not a readable .npy array ({exc})") from None
    values = np.asarray(values)
    if values.dtype.kind not in "iuf":
        raise RecordError(f"{path}: array of {values.dtype} values; integers (counts) or "
                          "floats (mV) are expected")
    return _finish(path.stem, values, fs, uv_per_count, path)


def read_wfdb(path: str | Path, annotator: str | None = "atr") -> Record:
    """A WFDB record (``.hea`` + signal file), with reference annotations when present.

    Formats 212, 16, 80 and 32 are read with numpy alone; others need the wfdb package.
    """
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".hea", ".dat", ".atr") else path
    header_path = base.with_suffix(".hea")
    _check_file(header_path)
    try:
        header = wfdb_io.read_header(header_path)
        counts = wfdb_io.read_signals(base, header)
        gains = np.array([s.gain for s in header.signals])
        sig = header.signals
        out = Record(base.name, counts, header.fs, 1000.0 / gains, [s.name for s in sig],
                     **_no_signal(counts, header.fs, [s.fmt for s in sig],
                                  [s.baseline for s in sig], [s.adc_res for s in sig],
                                  [s.adc_zero for s in sig]))
    except wfdb_io.UnsupportedFormat:
        out = _read_with_wfdb(base, header_path)
    if out.n_samples == 0:
        raise RecordError(f"{header_path}: record holds no samples")
    ann_file = base.with_suffix(f".{annotator}") if annotator else None
    if ann_file is not None and ann_file.exists():
        out.ann_samples, out.ann_symbols = wfdb_io.read_annotations(ann_file)
    return out


def _read_with_wfdb(base: Path, header: Path) -> Record:
    try:
        import wfdb
    except ImportError:
        raise RecordError(
            f"{header}: this WFDB format needs the 'wfdb' package (pip install wfdb), "
            "or convert the record to CSV/NPY"
        ) from None
    try:
        rec = wfdb.rdrecord(str(base), physical=False)
    except (OSError, ValueError, IndexError) as exc:
        raise RecordError(f"{header}: cannot read WFDB record ({exc})") from None
    if rec.d_signal is None or rec.d_signal.size == 0:
        raise RecordError(f"{header}: record holds no samples")
    gains = np.asarray(rec.adc_gain, dtype=float)
    if np.any(gains <= 0):
        raise RecordError(f"{header}: ADC gain must be positive, got {list(gains)}")
    counts = (rec.d_signal - np.asarray(rec.baseline)[None, :]).astype(np.int32)
    formats = [int(f) if str(f).isdigit() else -1 for f in rec.fmt]
    return Record(base.name, counts, float(rec.fs), 1000.0 / gains, list(rec.sig_name),
                  **_no_signal(counts, float(rec.fs), formats, list(rec.baseline),
                               [int(r or 0) for r in rec.adc_res],
                               [int(z or 0) for z in rec.adc_zero]))


#: A channel held at its ADC's limit this long (s) is a saturated amplifier, not a QRS peak
#: clipped for a moment (DS1 116: 0.7 s at the lower rail, then a recovery whose shrunken
#: QRS complexes the detector missed: a false 6 s pause).
SATURATION_MIN_S = 0.1


def _no_signal(counts: np.ndarray, fs: float, formats: list[int], baselines: list[int],
               resolutions: list[int], zeros: list[int]) -> dict:
    """``Record``'s ``invalid`` and ``saturated`` masks, one definition for both WFDB readers."""
    limits = [wfdb_io.adc_limits(f, r, z, int(b))
              for f, r, z, b in zip(formats, resolutions, zeros, baselines)]
    return {"invalid": wfdb_io.invalid_samples(counts, formats, baselines),
            "saturated": wfdb_io.saturated_samples(counts, limits,
                                                   max(1, round(SATURATION_MIN_S * fs)))}


def read_record(path: str | Path, fs: float | None = None, uv_per_count: float = 1.0) -> Record:
    """Read any supported recording by its extension (``.hea``/no extension = WFDB)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, fs, uv_per_count)
    if suffix == ".npy":
        return read_npy(path, fs, uv_per_count)
    if suffix in ("", ".hea", ".dat", ".atr") or path.with_suffix(".hea").exists():
        return read_wfdb(path)
    raise RecordError(f"{path}: unknown recording format {suffix!r} (use WFDB, .csv or .npy)")


def list_wfdb_records(directory: str | Path) -> list[Path]:
    """Every WFDB record in a folder (the RECORDS file when present, else every .hea)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RecordError(f"{directory}: not a folder of WFDB records")
    listing = directory / "RECORDS"
    if listing.exists():
        names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
        names = [n for n in names if (directory / f"{n}.hea").exists()]
    else:
        names = sorted(p.stem for p in directory.glob("*.hea"))
    if not names:
        raise RecordError(f"{directory}: no WFDB records (.hea files) found")
    return [directory / n for n in names]


def missing_signal_files(path: str | Path) -> list[str]:
    """Signal files a WFDB record's header names that are not beside it. The AF database
    lists two records whose signals were never published (annotations only)."""
    path = Path(path)
    header = wfdb_io.read_header(path.with_suffix(".hea"))
    return sorted({s.file for s in header.signals if not (path.parent / s.file).exists()})
