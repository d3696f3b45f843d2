"""Causal, streaming filters whose chunked output equals their whole-array output.

numpy only: importing ``scipy.signal`` alone costs ~70 MB of resident memory, most of the device
process's budget on a Raspberry Pi.

Every stage carries its state between calls, so a stream cut into blocks gives the samples of
one call over the whole record: the property that lets training run over whole records with the
very code the device runs live. Precisely:

* :class:`FirFilter` computes each output as the same ``np.convolve`` dot product over the same
  input samples wherever the cuts fall: chunked output is bit-for-bit the whole-array output.
* :class:`PolyphaseResampler` computes each output from the same inputs and taps, but as a row of
  a BLAS matrix-vector product whose row count depends on the cuts, which may round the sum
  differently: the outputs agree to ~1 ulp.
* :class:`SosFilter` (the IIR band-pass) works on blocks that start where a call starts, so the
  cuts decide which samples reach an output through the carried state and which through the
  block's impulse response. Chunked and whole-array outputs agree to rounding, not bit for bit:
  about 1e-15 of the signal's scale (the tests hold them to 1e-12). Both are within ~1e-15 of
  an extended-precision reference, closer than ``scipy.signal.sosfilt`` (~1e-12).

Decisions taken on these samples downstream (R-peak indices, which beats get windows) are
therefore the same for any chunking unless a comparison falls within that rounding; the
windows' values agree to it, and exactly once stored as float32 in all tested cases.

Nothing here looks into the future (no ``filtfilt``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ecg_edge.device.arrays import sliding


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


def _biquad(section: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A well-conditioned state-space form (A, B, C, D) of one biquad (a0 = 1).

    The direct forms that ``sosfilt`` iterates have a nearly defective A at the low edge of a
    band-pass (a pole pair within 0.003 of z = 1 at 1000 Hz): its powers grow before they decay,
    and a block method built on them loses ~1e-9 of the signal's scale. A complex pair
    sigma +- i omega is realised instead as the scaled rotation [[sigma, omega], [-omega, sigma]],
    whose powers never grow; a real pair (l1, l2) as the triangle [[l1, kappa], [0, l2]]. The
    small differences that place the pair (a1^2/4 - a2, the numerator near the poles) are formed
    exactly in rationals and rounded once; B and C get equal norms.
    """
    b0, b1, b2, _, a1, a2 = (Fraction(float(c)) for c in section)
    # Strictly proper part: (beta1 z + beta2) / (z^2 + a1 z + a2), i.e. h[1] = beta1 and
    # h[2] = beta2 - a1 beta1; C = [g, 0] and B = [u, v] / g reproduce both.
    beta1, beta2 = b1 - a1 * b0, b2 - a2 * b0
    sigma = -a1 / 2
    disc = sigma * sigma - a2
    if disc < 0:
        omega = float(-disc) ** 0.5
        A = np.array([[float(sigma), omega], [-omega, float(sigma)]])
        u, v = float(beta1), float(beta2 + sigma * beta1) / omega
    else:
        root = float(disc) ** 0.5
        l1, l2 = float(sigma) + root, float(sigma) - root
        kappa = max(l1 - l2, 1e-3)
        A = np.array([[l1, kappa], [0.0, l2]])
        u, v = float(beta1), float(beta2 + Fraction(l2) * beta1) / kappa
    g = (u * u + v * v) ** 0.25 or 1.0
    return A, np.array([u, v]) / g, np.array([g, 0.0]), float(b0)


def _state_space(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(A, B, C, D) of the cascade; the state stacks the sections' states, two each."""
    d = 2 * len(sos)
    A, B, C, D = np.zeros((d, d)), np.zeros(d), np.zeros(d), 1.0  # C, D: cascade output so far
    for i, section in enumerate(sos):
        Ai, Bi, Ci, Di = _biquad(section)
        j = slice(2 * i, 2 * i + 2)
        A[j] += np.outer(Bi, C)  # this section's input is the cascade's output so far
        A[j, j] += Ai
        B[j] = Bi * D
        C = Di * C
        C[j] += Ci
        D *= Di
    return A, B, C, D


#: Multiply-adds per matrix product. OpenBLAS hands larger products to its thread pool, whose
#: threads keep the CPUs they started on (pinning the caller does not move them) and so compete
#: with whatever else runs there; below this size a product runs on the calling thread, as
#: ``sosfilt`` did. Whole records are cut into products of this size.
_PRODUCT_MACS = 1 << 18


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` in row slices of at most :data:`_PRODUCT_MACS` multiply-adds each."""
    rows = max(1, _PRODUCT_MACS // max(1, a.shape[1] * b.shape[1]))
    if len(a) <= rows:
        return np.matmul(a, b, out=out)
    out = np.empty((len(a), b.shape[1])) if out is None else out
    for i in range(0, len(a), rows):
        np.matmul(a[i : i + rows], b, out=out[i : i + rows])
    return out


def _powers(m: np.ndarray, n: int) -> np.ndarray:
    """m^0 .. m^n stacked, shape (n + 1, d, d)."""
    out = np.empty((n + 1, *m.shape))
    out[0] = np.eye(len(m))
    for k in range(n):
        out[k + 1] = m @ out[k]
    return out


class _LinearScan:
    """Every state of s[k+1] = P s[k] + u[k] at once, without a Python step per k.

    Groups of K steps are one matmul: the inputs' contributions within the group, plus the
    group's start state times P^m; fewer than K steps use the leading submatrices. The group
    start states obey the same recurrence with P^K and are solved by the next level, so n steps
    take about log_K(n) levels of matmuls and no loop.
    """

    def __init__(self, p: np.ndarray, k: int = 16):
        d = len(p)
        self.k = k
        pw = _powers(p, k)
        m = np.zeros((k, d, k, d))  # block (j-1, i): P^(j-1-i) for i < j, j = 1..k
        for j in range(1, k + 1):
            for i in range(j):
                m[j - 1, :, i, :] = pw[j - 1 - i]
        self.mt = np.ascontiguousarray(m.reshape(k * d, k * d).T)
        self.pwt = np.ascontiguousarray(pw[1:].reshape(k * d, d).T)  # block j-1: (P^j).T
        self.pk = pw[k]
        self._next: _LinearScan | None = None

    def __call__(self, u: np.ndarray, s0: np.ndarray) -> np.ndarray:
        """States s[0] = s0 .. s[n] for inputs u of shape (n, d); shape (n + 1, d)."""
        n, d = u.shape
        k = self.k
        out = np.empty((n + 1, d))
        out[0] = s0
        groups, rem = divmod(n, k)
        if groups == 1 and not rem:  # exactly one group (a 3 s block at 360 Hz): it starts at
            # s0, so no second level is needed
            groups, rem = 0, k
        if groups:
            z = _matmul(u[: groups * k].reshape(groups, k * d), self.mt)
            if self._next is None:
                self._next = _LinearScan(self.pk, k)
            starts = self._next(z[:, (k - 1) * d :], s0)
            z += _matmul(starts[:groups], self.pwt)
            out[1 : groups * k + 1] = z.reshape(-1, d)
        if rem:
            w = rem * d
            tail = u[groups * k :].reshape(1, w) @ self.mt[:w, :w]
            tail += out[groups * k] @ self.pwt[:, :w]
            out[groups * k + 1 :] = tail.reshape(rem, d)
        return out


class SosFilter:
    """Causal IIR (second-order sections) with carried state, in numpy.

    A per-sample recursion would be a Python loop, so the cascade runs as a block state-space
    system: an output block of L samples is T x (T the lower-triangular Toeplitz matrix of the
    impulse response) plus O s (the free response of the state s at the block's start, rows
    C A^r); the block-start states come from :class:`_LinearScan`. A whole record is a few
    passes of small matmuls, a 1 s block a handful of them; a partial last block uses the
    leading submatrices. Faster than ``scipy.signal.sosfilt`` on both; agrees with it to ~1e-12
    of the signal's scale, most of that sosfilt's own rounding.

    With ``parallel``, ``sos`` is a list of cascades that filter the same input (the R-peak
    detector's band and the QRS-energy detector's, both fed the path's output): their states
    stacked into one, one call for all, an (m, n) output. A live block's cost is the dozen numpy
    calls, not the multiply-adds, so two filters in one call cost little more than one.
    """

    def __init__(self, sos: np.ndarray | list[np.ndarray], block: int = 64,
                 parallel: bool = False):
        cascades = [np.atleast_2d(np.asarray(c, dtype=np.float64))
                    for c in (sos if parallel else [sos])]
        self.sos = cascades if parallel else cascades[0]
        self.outputs = len(cascades) if parallel else 0  # 0: one cascade, 1-D output
        parts = [_state_space(c / c[:, 3:4]) for c in cascades]
        d = sum(len(p[1]) for p in parts)
        a, b = np.zeros((d, d)), np.zeros(d)
        cs, ds = np.zeros((len(parts), d)), [p[3] for p in parts]
        at = 0
        for i, (ai, bi, ci, _) in enumerate(parts):  # block-diagonal: the cascades stacked
            j = slice(at, at + len(bi))
            a[j, j], b[j], cs[i, j] = ai, bi, ci
            at += len(bi)
        self.block = n = block
        self._pw = _powers(a, n)  # A^0 .. A^L: state after r samples of free response
        ab = self._pw[:n] @ b  # row r: A^r B
        lag = np.subtract.outer(np.arange(n), np.arange(n))
        tt, ot = [], []
        for c, dd in zip(cs, ds):
            h = np.concatenate([[dd], ab[: n - 1] @ c])  # impulse response h[0..L-1]
            tt.append(np.where(lag >= 0, h[np.maximum(lag, 0)], 0.0).T)
            ot.append((self._pw[:n].transpose(0, 2, 1) @ c).T)  # (d, L)
        # one output's L columns after another: (L, m L) and (d, m L)
        self._tt = np.ascontiguousarray(np.concatenate(tt, axis=1))
        self._ot = np.ascontiguousarray(np.concatenate(ot, axis=1))
        self._gt = np.ascontiguousarray(ab[::-1])  # x_block @ gt: the block's input -> state
        self._scan = _LinearScan(self._pw[n])
        self.state = np.zeros(d)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        n, size, m = self.block, len(x), max(1, self.outputs)
        full, rem = divmod(size, n)
        y = np.empty((m, size))
        s = self.state
        if full:
            xb = x[: full * n].reshape(full, n)
            yb = y[:, : full * n].reshape(m, full, n)
            states = self._scan(_matmul(xb, self._gt), s)
            rows = max(1, _PRODUCT_MACS // (n * n * m))
            for i in range(0, full, rows):  # output blocks: T x + O s, in cache-sized slices
                yi = np.matmul(xb[i : i + rows], self._tt, out=yb[0, i : i + rows]) if (
                    m == 1) else xb[i : i + rows] @ self._tt
                yi += states[i : i + len(yi)] @ self._ot
                if m > 1:  # (rows, m L) -> each output's rows
                    yb[:, i : i + len(yi)] = yi.reshape(len(yi), m, n).transpose(1, 0, 2)
            s = states[full]
        if rem:
            xr = x[full * n :]
            if m == 1:
                y[0, full * n :] = xr @ self._tt[:rem, :rem] + s @ self._ot[:, :rem]
            else:
                tail = xr @ self._tt[:rem] + s @ self._ot
                y[:, full * n :] = tail.reshape(m, n)[:, :rem]
            s = self._pw[rem] @ s + xr @ self._gt[n - rem :]
        self.state = s
        return y if self.outputs else y[0]

    def reset(self) -> None:
        self.state = np.zeros_like(self.state)


class FirFilter:
    """Causal FIR with carried state (derivatives, moving averages).

    ``np.convolve`` over the last ``len(b) - 1`` inputs and the new ones: every output is the
    same dot product wherever the block boundaries fall.
    """

    def __init__(self, b: np.ndarray):
        self.b = np.asarray(b, dtype=np.float64)
        self.reset()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        buf = np.concatenate([self.history, np.asarray(x, dtype=np.float64)])
        self.history = buf[len(buf) - len(self.history) :].copy()
        return np.convolve(buf, self.b, mode="valid")

    def reset(self) -> None:
        self.history = np.zeros(len(self.b) - 1)


class MovingMean:
    """Causal mean of the last ``n`` inputs (zeros before the first, as a FIR of ``n`` taps
    ``1/n`` would give), at a cost that does not grow with ``n``.

    The QRS-energy detector's 10 s mean is 1200 taps at the model rate: as a convolution it
    was its costliest filter. One running sum would be cheap but grows without bound over
    hours, and its rounding would depend on where blocks were cut. Here the sums restart
    every ``n`` inputs instead (segments counted from the stream's start): a window is its
    own segment's running sum plus what the previous segment added after the window began.
    Each value depends only on the inputs and its index, so any cut of the stream into blocks
    gives the same bits; it agrees with the convolution to rounding (~1e-15 of the mean). A
    NaN input spoils the rest of its segment and the next, not only one window.
    """

    def __init__(self, n: int):
        if int(n) < 1:
            raise ValueError(f"a moving mean needs n >= 1 inputs, got {n}")
        self.n = int(n)
        self.reset()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        m, n, pos = len(x), self.n, self.pos
        if not m:
            return np.zeros(0)
        p = np.empty(n + m)  # running sums within segments: the last n inputs', then x's
        p[:n] = self.sums
        carry = self.sums[-1] if pos % n else 0.0
        a = 0
        while a < m:  # each piece up to the next segment start, summed in input order
            b = min(m, a + n - (pos + a) % n)
            p[n + a : n + b] = np.add.accumulate(np.concatenate([[carry], x[a:b]]))[1:]
            carry, a = 0.0, b
        c = np.arange(pos, pos + m)
        before = p[(c // n) * n - 1 - pos + n]  # the previous segment's total
        self.sums = p[m:].copy()
        self.pos = pos + m
        return (p[n:] + (before - p[:m])) / n

    def reset(self) -> None:
        self.pos = 0  # inputs since the start (segment boundaries are multiples of n)
        self.sums = np.zeros(self.n)  # running sums of the last n inputs (0 before any)


def butter_bandpass_sos(order: int, low_hz: float, high_hz: float, fs: float) -> np.ndarray:
    """Digital Butterworth band-pass in second-order sections, designed as ``scipy.signal.butter``.

    Analog prototype poles, band edges pre-warped for the bilinear transform, low-pass to
    band-pass, bilinear transform (scipy's steps, at its internal fs = 2). Each section gets one
    of the N zeros at z = 1 and one of the N at z = -1; the sections are ordered with the poles
    nearest the unit circle last, and the gain sits in the first, as in scipy's ``sos``.
    """
    n = int(order)
    wl, wh = 4.0 * np.tan(np.pi * np.array([low_hz, high_hz], dtype=np.float64) / fs)
    bw, wo = wh - wl, np.sqrt(wl * wh)
    lowpass = -np.exp(1j * np.pi * np.arange(-n + 1, n, 2) / (2 * n)) * bw / 2
    root = np.sqrt(lowpass**2 - wo**2)
    analog = np.concatenate([lowpass + root, lowpass - root])
    gain = bw**n * np.real(4.0**n / np.prod(4.0 - analog))
    poles = (4.0 + analog) / (4.0 - analog)
    real = np.abs(poles.imag) <= 100 * np.finfo(float).eps * np.abs(poles)
    pairs = [(abs(p), [1.0, -2.0 * p.real, abs(p) ** 2]) for p in poles[~real & (poles.imag > 0)]]
    r = np.sort(poles[real].real)
    pairs += [(max(abs(r[i]), abs(r[i + 1])), [1.0, -(r[i] + r[i + 1]), r[i] * r[i + 1]])
              for i in range(0, len(r), 2)]
    sos = np.array([[1.0, 0.0, -1.0, *a] for _, a in sorted(pairs, key=lambda q: q[0])])
    sos[0, :3] *= gain
    return sos


def bandpass_sos(low_hz: float, high_hz: float, order: int, fs: float) -> np.ndarray:
    """Butterworth band-pass; the upper edge is clipped below Nyquist for low-rate front-ends."""
    high = min(high_hz, 0.45 * fs)
    if not 0 < low_hz < high:
        raise ValueError(f"band-pass {low_hz}-{high_hz} Hz does not fit a {fs} Hz signal")
    return butter_bandpass_sos(order, low_hz, high, fs)


def notch_sos(freqs_hz: tuple[float, ...], width_hz: float, fs: float) -> np.ndarray:
    """Second-order IIR notches (``scipy.signal.iirnotch`` at Q = f / width), one section each,
    (k, 6); a notch that does not fit below Nyquist (f + width / 2 >= fs / 2) is left out: a
    front-end that slow cannot carry that frequency."""
    rows = []
    for f in freqs_hz:
        if not 0 < f + width_hz / 2 < fs / 2:
            continue
        w0, bw = 2 * np.pi * f / fs, 2 * np.pi * width_hz / fs
        gain = 1.0 / (1.0 + np.tan(bw / 2))
        c = np.cos(w0)
        rows.append([gain, -2.0 * gain * c, gain, 1.0, -2.0 * gain * c, 2.0 * gain - 1.0])
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def sos_group_delay_s(sos: np.ndarray, freq_hz: float, fs: float) -> float:
    """Group delay of an IIR at one frequency: how late the QRS comes out of the filter.

    Summed over the sections (a cascade's phase is the sum of theirs); for one polynomial
    c(z^-1) the delay is Re(sum k c_k z^-k / sum c_k z^-k) at z = exp(i w).
    """
    z = np.exp(-1j * 2 * np.pi * freq_hz / fs * np.arange(3))
    k = np.arange(3)

    def delay(c: np.ndarray) -> float:
        return float(np.real((k * c) @ z / (c @ z)))

    samples = sum(delay(s[:3]) - delay(s[3:]) for s in np.atleast_2d(sos))
    return samples / fs


def kaiser_lowpass(n_taps: int, cutoff: float, beta: float = 5.0) -> np.ndarray:
    """Windowed-sinc low-pass, as ``scipy.signal.firwin(n_taps, cutoff, window=("kaiser", beta))``.

    ``cutoff`` is relative to Nyquist; the taps sum to 1 (unit gain at DC).
    """
    m = np.arange(n_taps) - (n_taps - 1) / 2
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(n_taps, beta)
    return h / h.sum()


def rational_ratio(fs_out: float, fs_in: float, max_denominator: int = 1000) -> tuple[int, int]:
    """(up, down) with up/down = fs_out/fs_in, exactly when the rates allow.

    A front-end far faster than the model (120 Hz from 250 kHz is 12/25000) is beyond the
    first approximation's denominator: the exact ratio of the two rates is used instead.
    """
    ratio = fs_out / fs_in
    frac = Fraction(ratio).limit_denominator(max_denominator)
    if frac == 0 or abs(float(frac) - ratio) > 1e-6 * ratio:
        frac = Fraction(fs_out).limit_denominator(1000) / Fraction(fs_in).limit_denominator(1000)
    return frac.numerator, frac.denominator


class PolyphaseResampler:
    """Streaming rational resampler (up by L, down by M) with a linear-phase FIR.

    Output sample n needs inputs up to ``floor(n*M/L)``: each call emits exactly the outputs its
    inputs allow, computed as one gather-multiply-sum, so the result does not depend on how the
    input was cut (up to the rounding of the matrix-vector product, ~1 ulp).
    The FIR delays the signal by :attr:`delay_in` input samples.
    """

    def __init__(self, up: int, down: int, taps_per_phase: int = 20):
        self.up, self.down = up, down
        self.identity = up == down == 1
        if self.identity:
            self.delay_in = 0.0
            return
        rate = max(up, down)
        n_taps = taps_per_phase * up + 1 if up >= down else 2 * 10 * rate + 1
        h = kaiser_lowpass(n_taps, 1.0 / rate) * up
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
            view = sliding(buf, self.k)
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
