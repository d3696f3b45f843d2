"""Causal, streaming filters whose chunked output equals their whole-array output.

Every stage carries its state between calls (``sosfilt``/``lfilter`` ``zi``, a polyphase
history), so a stream cut into any blocks gives bit-for-bit the same samples as one call over
the whole record: the property that lets training run over whole records with the very code the
device runs live. Nothing here looks into the future (no ``filtfilt``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal


class Tail:
    """The recent part of an unbounded signal, addressed by global sample index.

    Bounded memory: callers trim what they no longer need.
    """

    def __init__(self, dtype=np.float64, start: int = 0, prefill: np.ndarray | None = None):
        self.data = np.zeros(0, dtype) if prefill is None else np.asarray(prefill, dtype)
        self.start = start  # global index of data[0]

    @property
    def end(self) -> int:
        return self.start + len(self.data)

    def append(self, chunk: np.ndarray) -> None:
        if len(chunk):
            self.data = np.concatenate([self.data, chunk.astype(self.data.dtype, copy=False)])

    def get(self, a: int, b: int) -> np.ndarray:
        """Samples with global indices [a, b); they must still be held."""
        if a < self.start or b > self.end:
            raise IndexError(f"[{a}, {b}) not held (have [{self.start}, {self.end}))")
        return self.data[a - self.start : b - self.start]

    def trim(self, keep_from: int) -> None:
        cut = keep_from - self.start
        if cut > 0:
            self.data = self.data[cut:].copy()
            self.start = keep_from


class SosFilter:
    """Causal IIR (second-order sections) with carried state."""

    def __init__(self, sos: np.ndarray):
        self.sos = np.asarray(sos, dtype=np.float64)
        self.zi = np.zeros((self.sos.shape[0], 2))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        y, self.zi = signal.sosfilt(self.sos, x, zi=self.zi)
        return y

    def reset(self) -> None:
        self.zi[:] = 0.0


class FirFilter:
    """Causal FIR with carried state (derivatives, moving averages)."""

    def __init__(self, b: np.ndarray):
        self.b = np.asarray(b, dtype=np.float64)
        self.zi = np.zeros(len(self.b) - 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        y, self.zi = signal.lfilter(self.b, [1.0], x, zi=self.zi)
        return y

    def reset(self) -> None:
        self.zi[:] = 0.0


def bandpass_sos(low_hz: float, high_hz: float, order: int, fs: float) -> np.ndarray:
    """Butterworth band-pass; the upper edge is clipped below Nyquist for low-rate front-ends."""
    high = min(high_hz, 0.45 * fs)
    if not 0 < low_hz < high:
        raise ValueError(f"band-pass {low_hz}-{high_hz} Hz does not fit a {fs} Hz signal")
    return signal.butter(order, [low_hz, high], btype="bandpass", fs=fs, output="sos")


def sos_group_delay_s(sos: np.ndarray, freq_hz: float, fs: float) -> float:
    """Group delay of an IIR at one frequency: how late the QRS comes out of the filter."""
    b, a = signal.sos2tf(sos)
    _, gd = signal.group_delay((b, a), w=[freq_hz], fs=fs)
    return float(gd[0]) / fs


def rational_ratio(fs_out: float, fs_in: float, max_denominator: int = 1000) -> tuple[int, int]:
    """(up, down) with up/down = fs_out/fs_in, exactly when the rates allow."""
    frac = Fraction(fs_out / fs_in).limit_denominator(max_denominator)
    return frac.numerator, frac.denominator


class PolyphaseResampler:
    """Streaming rational resampler (up by L, down by M) with a linear-phase FIR.

    Output sample n needs inputs up to ``floor(n*M/L)``: each call emits exactly the outputs its
    inputs allow, computed as one gather-multiply-sum, so the result does not depend on how the
    input was cut. The FIR delays the signal by :attr:`delay_in` input samples.
    """

    def __init__(self, up: int, down: int, taps_per_phase: int = 20):
        self.up, self.down = up, down
        self.identity = up == down == 1
        if self.identity:
            self.delay_in = 0.0
            return
        rate = max(up, down)
        n_taps = taps_per_phase * up + 1 if up >= down else 2 * 10 * rate + 1
        h = signal.firwin(n_taps, 1.0 / rate, window=("kaiser", 5.0)) * up
        self.delay_in = (n_taps - 1) / 2 / up
        self.k = -(-n_taps // up)  # taps per phase
        padded = np.zeros(self.k * up)
        padded[:n_taps] = h
        # hpoly[p, k] multiplies x[i0 - k] for output phase p.
        self.hpoly = padded.reshape(self.k, up).T.copy()
        self.hrev = np.ascontiguousarray(self.hpoly[:, ::-1])
        self.reset()

    def reset(self) -> None:
        if self.identity:
            return
        self.history = np.zeros(self.k - 1)
        self.n_in = 0
        self.n_out = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.identity:
            return np.asarray(x, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        buf = np.concatenate([self.history, x])
        n_in_end = self.n_in + len(x)
        # Largest n with floor(n*M/L) <= n_in_end - 1.
        n_last = (n_in_end * self.up - 1) // self.down
        y = np.empty(max(0, n_last + 1 - self.n_out))
        if len(y):
            # Outputs n and n + L share a phase and sit M inputs apart, so each of the L phases
            # is one strided matrix-vector product over a sliding view of the input.
            view = np.lib.stride_tricks.sliding_window_view(buf, self.k)
            base = self.n_in - (self.k - 1)  # global index of buf[0]
            for r in range(min(self.up, len(y))):
                n0 = self.n_out + r
                pos = n0 * self.down
                first = pos // self.up - (self.k - 1) - base  # view row of output n0
                rows = view[first :: self.down][: len(y[r :: self.up])]
                y[r :: self.up] = rows @ self.hrev[pos % self.up]
        self.n_in = n_in_end
        self.n_out = n_last + 1
        self.history = buf[len(buf) - (self.k - 1):] if self.k > 1 else np.zeros(0)
        return y
