"""A numpy-only reader for the common WFDB formats (212, 16, 80, 32) and MIT annotation files.

The device extra stays lean (no wfdb, pandas or matplotlib on a Pi), yet ``replay`` takes a
PhysioNet record as downloaded. Formats this reader does not know fall back to the wfdb package
when it is installed; the tests check both readers agree on every shared MIT-BIH record.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_edge.firmware_bridge.errors import RecordError
from ecg_edge.firmware_bridge.private_files import open_private

FORMATS = (212, 16, 80, 32)
#: Formats the wfdb package reads (the fallback); any other number is not a WFDB format.
WFDB_FORMATS = (8, 16, 24, 32, 61, 80, 160, 212, 310, 311, 508, 516, 524)

#: The stored value that marks a sample invalid (lost, lead off) in each format, as the WFDB
#: library and wfdb-python (``_digi_nan``) read it.
INVALID = {80: -128, 310: -512, 311: -512, 212: -2048, 16: -32768, 61: -32768, 160: -32768,
           24: -(1 << 23), 32: -(1 << 31)}

#: MIT annotation codes (ecgcodes.h) to symbols.
ANN_SYMBOLS = {
    1: "N", 2: "L", 3: "R", 4: "a", 5: "V", 6: "F", 7: "J", 8: "A", 9: "S", 10: "E", 11: "j",
    12: "/", 13: "Q", 14: "~", 16: "|", 18: "s", 19: "T", 20: "*", 21: "D", 22: '"', 23: "=",
    24: "p", 25: "B", 26: "^", 27: "t", 28: "+", 29: "u", 30: "?", 31: "!", 32: "[", 33: "]",
    34: "e", 35: "n", 36: "@", 37: "x", 38: "f", 39: "(", 40: ")", 41: "r",
}
_SKIP, _NUM, _SUB, _CHN, _AUX = 59, 60, 61, 62, 63
_SIGNAL = re.compile(r"^(?P<file>\S+)\s+(?P<fmt>\d+)(?:x\d+)?(?::\d+)?(?:\+(?P<offset>\d+))?"
                     r"(?:\s+(?P<gain>[-\d.eE+]+)(?:\((?P<baseline>-?\d+)\))?(?:/\S+)?"
                     r"(?:\s+(?P<res>\d+)(?:\s+(?P<zero>-?\d+))?)?)?"
                     r"(?:\s+-?\d+){0,3}(?:\s+(?P<desc>.*))?$")


@dataclass
class Signal:
    file: str
    fmt: int
    offset: int
    gain: float
    baseline: int
    name: str
    adc_res: int = 0  # ADC resolution in bits (0: the header gives none)
    adc_zero: int = 0


@dataclass
class Header:
    name: str
    n_signals: int
    fs: float
    n_samples: int | None
    signals: list[Signal]


class UnsupportedFormat(RecordError):
    """A valid WFDB record in a format only the wfdb package reads."""


def read_header(path: Path) -> Header:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise RecordError(f"{path}: empty WFDB header")
    first = lines[0].split()
    try:
        name, n_sig = first[0], int(first[1])
        fs = float(first[2].split("/")[0].split("(")[0]) if len(first) > 2 else 250.0
        n_samples = int(first[3]) if len(first) > 3 else None
    except (IndexError, ValueError):
        raise RecordError(f"{path}: malformed record line {lines[0]!r}") from None
    if not np.isfinite(fs) or fs <= 0:
        raise RecordError(f"{path}: sampling frequency {first[2]!r} is not a positive number")
    if n_sig < 1:
        raise RecordError(f"{path}: the record has {n_sig} signals; nothing to play or replay")
    if n_samples is not None and n_samples < 0:
        raise RecordError(f"{path}: negative number of samples {n_samples}")
    if "/" in name:
        raise UnsupportedFormat(f"{path}: multi-segment records need the wfdb package")
    signals = []
    for ln in lines[1 : 1 + n_sig]:
        m = _SIGNAL.match(ln)
        if m is None:
            raise RecordError(f"{path}: malformed signal line {ln!r}")
        gain = float(m["gain"]) if m["gain"] else 200.0
        zero = int(m["zero"]) if m["zero"] else 0
        baseline = int(m["baseline"]) if m["baseline"] else zero
        if int(m["fmt"]) not in WFDB_FORMATS:
            raise RecordError(f"{path}: signal format {m['fmt']} is not a WFDB format "
                              f"(known: {', '.join(map(str, WFDB_FORMATS))})")
        signals.append(Signal(m["file"], int(m["fmt"]), int(m["offset"] or 0),
                              gain if gain != 0 else 200.0, baseline,
                              (m["desc"] or f"ch{len(signals)}").strip(),
                              int(m["res"]) if m["res"] else 0, zero))
    if len(signals) != n_sig:
        raise RecordError(f"{path}: header names {n_sig} signals but describes {len(signals)}")
    return Header(name, n_sig, fs, n_samples, signals)


#: Signal-file bytes decoded per step: a 24 h Holter record is read in slices this size, so
#: reading it costs its int32 samples and no more (decoding it whole took five times that).
CHUNK_BYTES = 1 << 22


def _decode(raw: bytes, fmt: int) -> np.ndarray:
    if fmt == 16:
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int32)
    if fmt == 32:
        return np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<i4").astype(np.int32)
    if fmt == 80:
        return np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128
    if fmt == 212:
        b = np.frombuffer(raw[: len(raw) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(
            np.int32)
        s0 = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
        s1 = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
        out = np.empty(2 * len(b), dtype=np.int32)
        out[0::2], out[1::2] = s0, s1
        return np.where(out > 2047, out - 4096, out)
    raise UnsupportedFormat(f"WFDB format {fmt} needs the wfdb package (pip install wfdb)")


def _frame_bytes(fmt: int, n_channels: int) -> tuple[int, int]:
    """(bytes, values) of the smallest step that holds whole frames and, in format 212, whole
    3-byte pairs, so a file decoded in such steps equals the file decoded at once."""
    if fmt == 16:
        return 2 * n_channels, n_channels
    if fmt == 32:
        return 4 * n_channels, n_channels
    if fmt == 80:
        return n_channels, n_channels
    if fmt == 212:
        return 3 * n_channels, 2 * n_channels
    raise UnsupportedFormat(f"WFDB format {fmt} needs the wfdb package (pip install wfdb)")


def _n_values(size: int, fmt: int) -> int:
    """Values a signal file of ``size`` bytes holds (as :func:`_decode` counts them)."""
    step_bytes, step_values = _frame_bytes(fmt, 1)
    return size // step_bytes * step_values


def _file_frames(path: Path, sig: Signal, n_channels: int, n: int, chunk_bytes: int):
    """The first ``n`` frames of a format 16/80/212 file, as (start frame, (k, channels) int32)
    slices: the file is read a slice at a time, never whole."""
    step_bytes, step_values = _frame_bytes(sig.fmt, n_channels)
    per_chunk = max(1, chunk_bytes // step_bytes)
    frames_per_step = step_values // n_channels
    with path.open("rb") as fh:
        fh.seek(sig.offset)
        start = 0
        while start < n:
            steps = min(per_chunk, -(-(n - start) // frames_per_step))
            flat = _decode(fh.read(steps * step_bytes), sig.fmt)
            k = min(len(flat) // n_channels, n - start)
            if k == 0:
                raise RecordError(f"{path}: signal file ended early (changed while read?); "
                                  "copy the record again")
            yield start, flat[: k * n_channels].reshape(k, n_channels)
            start += k


def read_signals(base: Path, header: Header, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Digital samples (n, channels) minus each channel's baseline."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(header.signals):
        groups.setdefault(s.file, []).append(i)
    mats: dict[str, np.ndarray] = {}
    available: dict[str, int] = {}
    for file, idx in groups.items():
        sig = header.signals[idx[0]]
        if any(header.signals[i].fmt != sig.fmt for i in idx):
            raise UnsupportedFormat(f"{base}.hea: mixed formats in {file} need wfdb")
        path = base.parent / file
        if not path.exists():
            raise RecordError(f"{path}: signal file not found")
        if path.suffix.lower() == ".mat":
            mats[file] = read_mat_v4(path, len(idx), sig.fmt, sig.offset)
            available[file] = len(mats[file]) // len(idx)
        else:
            size = max(0, path.stat().st_size - sig.offset)
            # (an unknown format raises UnsupportedFormat here: the wfdb package reads it)
            available[file] = _n_values(size, sig.fmt) // len(idx)
    n = min(available.values())
    if header.n_samples:
        if n < header.n_samples:
            raise RecordError(f"{base}.hea: signal file holds {n} samples, the header says "
                              f"{header.n_samples}: truncated; download the record again")
        n = header.n_samples
    data = np.empty((n, header.n_signals), dtype=np.int32)
    for file, idx in groups.items():
        base_values = np.array([header.signals[i].baseline for i in idx], dtype=np.int32)
        if file in mats:
            slices = [(0, mats[file][: n * len(idx)].reshape(n, len(idx)))]
        else:
            slices = _file_frames(base.parent / file, header.signals[idx[0]], len(idx), n,
                                  chunk_bytes)
        for start, frames in slices:
            data[start : start + len(frames), idx] = frames - base_values
    return data


#: A format's ADC resolution (bits) where the header gives none, as WFDB assumes.
FORMAT_BITS = {8: 8, 80: 8, 16: 16, 61: 16, 160: 16, 212: 12, 310: 10, 311: 10, 24: 24, 32: 32}


def adc_limits(fmt: int, res: int, zero: int, baseline: int) -> tuple[int, int] | None:
    """The lowest and highest value the channel's ADC can give, as counts relative to the
    baseline (:func:`read_signals`); None for a format of unknown width."""
    bits = res or FORMAT_BITS.get(fmt, 0)
    if bits < 2:
        return None
    half = 1 << (bits - 1)
    return zero - half - baseline, zero + half - 1 - baseline


def saturated_samples(counts: np.ndarray, limits: list[tuple[int, int] | None],
                      min_run: int) -> np.ndarray | None:
    """Where a channel sits at its ADC's limit (:func:`adc_limits`) for ``min_run`` samples or
    more: an amplifier driven into saturation (motion, a loose electrode), whose samples carry
    no ECG. A peak that touches the limit for a moment is left alone. None when nowhere."""
    out = None
    for ch, lim in enumerate(limits):
        if lim is None:
            continue
        x = counts[:, ch]
        at = (x == lim[0]) | (x == lim[1])
        if not at.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], at.astype(np.int8), [0]])))
        starts, ends = edges[::2], edges[1::2]
        long = ends - starts >= min_run  # a clipped QRS peak touches the limit every beat
        for a, b in zip(starts[long], ends[long]):
            if out is None:
                out = np.zeros(counts.shape, bool)
            out[a:b, ch] = True
    return out


def invalid_samples(counts: np.ndarray, formats: list[int], baselines: list[int]
                    ) -> np.ndarray | None:
    """Which of ``counts`` (baseline subtracted, as :func:`read_signals` gives them) hold their
    channel's format's invalid-sample value; None when none does (the usual case)."""
    marks = np.array([INVALID.get(f, 0) - b for f, b in zip(formats, baselines)], np.int64)
    known = np.array([f in INVALID for f in formats])
    mask = (counts == marks[None, :]) & known[None, :]
    return mask if mask.any() else None


#: MATLAB v4 precision digit (the P of the MOPT type word) -> (numpy dtype, WFDB format).
_MAT_V4_TYPES = {0: ("f8", None), 1: ("f4", None), 2: ("i4", 32), 3: ("i2", 16),
                 4: ("u2", None), 5: ("u1", None)}


def read_mat_v4(path: Path, n_signals: int, fmt: int, offset: int) -> np.ndarray:
    """Samples of a WFDB signal file in MATLAB v4 form (as PhysioNet's ``wfdb2mat`` writes and
    the CinC 2017 strips come): one ``n_signals`` x ``n_samples`` integer matrix, column-major,
    i.e. frame-interleaved like format 16. The MATLAB header is checked against the WFDB one."""
    raw = path.read_bytes()
    if len(raw) < 20:
        raise RecordError(f"{path}: too short for a MATLAB v4 file; copy the record again")
    mopt, mrows, ncols, imagf, namlen = (int(v) for v in np.frombuffer(raw[:20], "<i4"))
    m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
    if m != 0 or o != 0 or t != 0 or imagf != 0 or mopt < 0 or p not in _MAT_V4_TYPES:
        raise RecordError(f"{path}: not a little-endian real numeric MATLAB v4 matrix (type "
                          f"{mopt}); MATLAB v5/v7 files need conversion (wfdb2mat writes v4)")
    dtype, mat_fmt = _MAT_V4_TYPES[p]
    data_at = 20 + namlen
    if mat_fmt != fmt or data_at != offset:
        raise RecordError(f"{path}: MATLAB matrix is {dtype} with data at byte {data_at}, the "
                          f"header says format {fmt} at byte {offset}; the header does not "
                          "belong to this file")
    if mrows != n_signals:
        raise RecordError(f"{path}: MATLAB matrix has {mrows} rows, the header names "
                          f"{n_signals} signals")
    need = mrows * ncols * np.dtype(dtype).itemsize
    if len(raw) - data_at < need:
        raise RecordError(f"{path}: holds {len(raw) - data_at} data bytes, its MATLAB header "
                          f"says {need}: truncated; copy the record again")
    return np.frombuffer(raw, f"<{dtype}", mrows * ncols, data_at).astype(np.int32)


def read_annotations(path: Path) -> tuple[np.ndarray, list[str]]:
    """MIT-format annotation file: (sample indices, symbols)."""
    samples, symbols, _ = read_annotations_aux(path)
    return samples, symbols


def read_annotations_aux(path: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """MIT-format annotation file: (sample indices, symbols, aux notes; '' where none).

    Rhythm changes are ``+`` annotations whose aux note names the rhythm (``(AFIB``, ``(N``).
    """
    data = path.read_bytes()
    words = np.frombuffer(data[: len(data) // 2 * 2], dtype="<u2")
    samples, symbols, aux = [], [], []
    t, i, n = 0, 0, len(words)
    while True:
        if i >= n:  # every annotation file ends with a zero word
            raise RecordError(f"{path}: truncated annotation file (no end marker after "
                              f"{len(samples)} annotations); download it again")
        w = int(words[i])
        code, value = w >> 10, w & 0x3FF
        i += 1
        if code == 0 and value == 0:
            break
        if code == _SKIP:
            if i + 1 >= n:
                raise RecordError(f"{path}: truncated annotation file; download it again")
            hi, lo = int(words[i]), int(words[i + 1])
            skip = (hi << 16) | lo
            t += skip - (1 << 32) if skip >= 1 << 31 else skip
            i += 2
        elif code == _AUX:
            text = words[i : i + (value + 1) // 2].tobytes()[:value]
            if aux:
                aux[-1] = text.split(b"\0")[0].decode("latin-1")
            i += (value + 1) // 2
        elif code in (_NUM, _SUB, _CHN):
            continue
        else:
            t += value
            samples.append(t)
            symbols.append(ANN_SYMBOLS.get(code, "?"))
            aux.append("")
    return np.asarray(samples, dtype=np.int64), symbols, aux


#: Symbols to MIT annotation codes, for writing (``ANN_SYMBOLS`` inverted).
ANN_CODES = {s: c for c, s in ANN_SYMBOLS.items()}
_NOTE = ANN_CODES['"']


def encode_annotations(samples, symbols, aux=None, subtypes=None, fs: float | None = None
                       ) -> bytes:
    """An MIT-format annotation file (as WFDB's ``putann`` writes it), so ``rdann``, ``bxb``,
    ``epicmp``, WAVE and wfdb-python read what the monitor called.

    ``samples`` must not decrease; ``aux`` notes (latin-1, at most 255 bytes) carry rhythm
    names on ``+`` annotations; ``subtypes`` -128..127 (noise annotations: -1 unreadable).
    With ``fs``, a leading note says the time resolution, as wfdb-python writes it, so a file
    read without its record's header still knows its sample rate.
    """
    samples = np.asarray(samples, dtype=np.int64)
    n = len(samples)
    aux = [""] * n if aux is None else list(aux)
    subtypes = [0] * n if subtypes is None else [int(s) for s in subtypes]
    if not (len(symbols) == len(aux) == len(subtypes) == n):
        raise ValueError("samples, symbols, aux and subtypes must have one entry per annotation")
    if n and (samples[0] < 0 or np.any(np.diff(samples) < 0)):
        raise ValueError("annotation samples must be >= 0 and not decrease")
    words: list[int] = []
    rows = zip(samples.tolist(), symbols, aux, subtypes)
    if fs is not None:
        rows = [(0, '"', f"## time resolution: {fs:g}", 0), *rows]
    t = 0
    for sample, symbol, note, sub in rows:
        code = ANN_CODES.get(symbol)
        if code is None:
            raise ValueError(f"{symbol!r} is not an MIT annotation symbol")
        if not -128 <= sub <= 127:
            raise ValueError(f"annotation subtype {sub} is outside -128..127")
        delta = sample - t
        while delta > 0x3FF:  # beyond the 10-bit interval: SKIPs of signed 32 bits, high first
            step = min(delta, 0x7FFFFFFF)
            words += [_SKIP << 10, step >> 16, step & 0xFFFF]
            delta -= step
        words.append(code << 10 | delta)
        t = sample
        if sub:
            words.append(_SUB << 10 | (sub & 0xFF))
        if note:
            text = note.encode("latin-1")
            if len(text) > 255:
                raise ValueError(f"aux note of {len(text)} bytes; at most 255")
            padded = text + b"\0" * (len(text) & 1)
            words.append(_AUX << 10 | len(text))
            words += np.frombuffer(padded, "<u2").tolist()
    words.append(0)
    return np.asarray(words, dtype="<u2").tobytes()


class RecordWriter:
    """A WFDB record written as its samples arrive: format 32, so any front-end's counts
    (16, 24 or 32 bits) are kept as they came, and samples that never arrived are WFDB's
    invalid value, which wfdb-python reads as NaN and :func:`invalid_samples` marks.

    The header is written at once without a length (a WFDB reader then takes the signal
    file's size: a recording cut by a power failure still opens) and rewritten on
    :meth:`close` with the length, the start time and each signal's checksum. Both files are
    readable by their owner only: they hold a person's ECG.
    """

    FMT = 32

    def __init__(self, base: str | Path, fs: float, uv_per_count: float, names: list[str],
                 started=None):
        self.base = Path(base)
        self.fs, self.gain, self.names, self.started = fs, 1000.0 / uv_per_count, names, started
        self.n = 0
        self._sum = np.zeros(len(names), np.int64)
        self._first: np.ndarray | None = None
        self._dat = open_private(self.base.with_suffix(".dat"), "wb", "the recording")
        self._write_header(final=False)

    def write(self, start: int, counts: np.ndarray) -> None:
        """``counts`` (n, channels) beginning at sample ``start``; samples before it that
        never came are written invalid."""
        if start < self.n:
            raise ValueError(f"samples from {start} overlap those written (up to {self.n})")
        if start > self.n:
            self._put(np.full((start - self.n, len(self.names)), INVALID[self.FMT], np.int64))
        if len(counts):
            self._put(np.asarray(counts, np.int64).reshape(len(counts), len(self.names)))

    def _put(self, values: np.ndarray) -> None:
        self._dat.write(values.astype("<i4").tobytes())  # first: a failed write counts nothing
        if self._first is None:
            self._first = values[0].copy()
        self._sum += values.sum(axis=0)
        self.n += len(values)

    def flush(self) -> None:
        self._dat.flush()

    def close(self) -> None:
        """Flush and close the signal file, then give the header its length: the frames the
        file really holds, should the last writes have failed (a full card)."""
        if self._dat.closed:
            return
        try:
            self._dat.close()
        finally:
            size = os.path.getsize(self.base.with_suffix(".dat"))
            self.n = min(self.n, size // (4 * len(self.names)))
            self._write_header(final=True)

    def _write_header(self, final: bool) -> None:
        name = self.base.name
        line = f"{name} {len(self.names)} {self.fs:g}"
        if final:
            line += f" {self.n}"
            if self.started is not None:
                line += self.started.strftime(" %H:%M:%S %d/%m/%Y")
        lines = [line]
        first = self._first if self._first is not None else np.zeros(len(self.names), np.int64)
        for i, sig in enumerate(self.names):
            check = (int(self._sum[i]) + 0x8000) % 0x10000 - 0x8000  # 16-bit, signed
            tail = f" {int(first[i])} {check} 0" if final else ""
            lines.append(f"{name}.dat {self.FMT} {self.gain:.12g}/mV 32 0{tail} {sig}")
        with open_private(self.base.with_suffix(".hea"), "w", "the recording") as fh:
            fh.write("\n".join(lines) + "\n")
