"""The ECG side of the learned AF call: windows of the band-passed signal, as the model sees them.

RR features (device/rhythm_features.py) plateaued near F1(AF) 0.80 on cinc2017: AF strips with
slow, low-entropy ventricular response and "other" rhythms with irregular ectopy look alike in RR
intervals. The atrial activity itself (no P wave, fibrillatory waves) is in the ECG, so a small
1-D CNN looks at the signal path's output tap (the band-passed signal at the model rate),
decimated and cut into overlapping windows of a few seconds; its per-window probability is
combined with the RR model's for the per-strip call.

Cost on the device: the windows are gathered and the model runs on a batch of them every
``batch`` windows (tens of seconds), not per beat. The same :func:`decimate` and :func:`windows`
run in training (over whole records and strips) and here (block by block with a carried tail),
so the model sees on the device what it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ecg_edge.device.arrays import sliding


@dataclass(frozen=True)
class ECGModelSpec:
    """The ``ecg`` part of the bundle's ``rhythm_model`` section."""

    file: str  # int8 model, e.g. "rhythm_ecg.tflite"
    sha256: str
    bytes: int
    golden: str  # npz with "input" (scaled windows) and "output" (probabilities)
    golden_sha256: str
    fs: float = 60.0  # the model's input rate (Hz): the signal path's rate / an integer
    window_s: float = 8.0
    hop_s: float = 4.0
    clip: float = 8.0  # scaled samples are clipped to +- this
    weight: float = 0.5  # strip call: weight * ECG mean probability + (1 - weight) * RR one
    batch: int = 8  # windows per model call on a stream
    output_scale: float = 0.0
    # A window's probability is the mean of the model on it and on its sign-flipped copy:
    # electrode polarity differs between wearers and devices (the model is trained with random
    # flips, yet answers the two polarities differently). False: the window alone (older
    # bundles).
    polarity_average: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ECGModelSpec:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown rhythm_model.ecg settings: {sorted(unknown)}")
        return cls(**d)

    def lengths(self) -> tuple[int, int]:
        """(window, hop) in samples at the model's rate."""
        return int(round(self.window_s * self.fs)), int(round(self.hop_s * self.fs))


def factor(fs_signal: float, fs_model: float) -> int:
    """The integer decimation from the signal path's rate to the model's."""
    k = fs_signal / fs_model
    if k < 1 or abs(k - round(k)) > 1e-9:
        raise ValueError(f"the ECG AF model wants {fs_model:g} Hz, which {fs_signal:g} Hz does "
                         "not reach by an integer decimation; re-attach a matching model")
    return int(round(k))


def decimate(y: np.ndarray, k: int) -> np.ndarray:
    """Mean of each ``k`` consecutive samples (the signal is already band-passed to 40 Hz;
    the mean is its anti-alias filter). A trailing partial group is dropped: callers carry
    it to the next block."""
    y = np.asarray(y, dtype=np.float32)
    m = len(y) // k
    return y[: m * k].reshape(m, k).mean(axis=1) if k > 1 else y


def scale(w: np.ndarray, clip: float) -> np.ndarray:
    """Per window: centred, divided by its standard deviation, clipped: amplitude and gain
    differ between wearers and devices; the shape is the evidence."""
    w = np.asarray(w, dtype=np.float32)
    w = w - np.median(w, axis=-1, keepdims=True)
    sd = w.std(axis=-1, keepdims=True)
    return np.clip(w / np.maximum(sd, 1e-3), -clip, clip).astype(np.float32)


def windows(x: np.ndarray, length: int, hop: int, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """(scaled windows (m, length), index one past each window's last sample) of a decimated
    signal, windows starting at 0, hop, 2 hop, ..."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < length:
        return np.zeros((0, length), np.float32), np.zeros(0, dtype=np.int64)
    starts = np.arange(0, len(x) - length + 1, hop)
    return scale(sliding(x, length)[starts], clip), starts + length


class ECGAFModel:
    """Callable: (m, window) scaled windows -> (m,) AF probability, through the runtime."""

    def __init__(self, spec: ECGModelSpec, model, runtime: str | None = None,
                 xnnpack: bool = True):
        from ecg_edge.device.interpreter import ModelRunner, make_interpreter

        self.spec = spec
        interp, self.info = make_interpreter(model, runtime=runtime, xnnpack=xnnpack)
        self.runner = ModelRunner(interp)
        if self.runner.window != (spec.lengths()[0],):
            raise ValueError(f"the ECG AF model takes windows of {self.runner.window}, its "
                             f"section says {spec.window_s:g} s at {spec.fs:g} Hz")

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return run_windows(self.runner, w, self.spec.polarity_average)


def run_windows(model, w: np.ndarray, polarity_average: bool) -> np.ndarray:
    """(m,) probabilities of scaled windows through ``model`` (a callable on a batch); with
    ``polarity_average`` the mean over each window and its sign-flipped copy, in one call."""
    w = np.asarray(w, np.float32)
    if not polarity_average:
        return np.asarray(model(w)).reshape(-1)
    p = np.asarray(model(np.concatenate([w, -w]))).reshape(-1)
    return 0.5 * (p[: len(w)] + p[len(w):])


class _Decimating:
    """Signal blocks gathered, then decimated to the model's rate in one call: numpy's
    per-call cost, not the arithmetic, is what a block-by-block decimation would spend."""

    k: int

    def _clear_signal(self) -> None:
        self.raw: list[np.ndarray] = []  # signal blocks not yet decimated
        self.raw_n = 0
        self.rest = np.zeros(0, np.float32)  # signal-rate samples short of one decimated one
        self.buf = np.zeros(0, np.float32)  # decimated samples still needed

    def _add(self, y: np.ndarray) -> None:
        self.raw.append(np.asarray(y, np.float32))
        self.raw_n += len(y)

    def _decimate_raw(self) -> bool:
        """Move the gathered blocks into ``buf``; False where none were gathered."""
        if not self.raw:
            return False
        y = np.concatenate([self.rest, *self.raw])
        self.raw, self.raw_n = [], 0
        m = len(y) // self.k * self.k
        self.rest = y[m:]
        self.buf = np.concatenate([self.buf, decimate(y[:m], self.k)])
        return True


class ECGFeed(_Decimating):
    """Streaming windows of the band-passed signal for the ECG AF model, run in batches.

    ``model``: callable (m, length) scaled windows -> (m,) probability. ``push`` takes the
    signal path's output blocks; windows complete as the signal arrives and wait for a batch.
    ``run`` runs what waits (a summary or a decision asks for it)."""

    def __init__(self, model, spec: ECGModelSpec, fs_signal: float):
        self.model, self.spec = model, spec
        self.k = factor(fs_signal, spec.fs)
        self.length, self.hop = spec.lengths()
        self.prob_sum, self.prob_windows = 0.0, 0
        self.reset()

    def reset(self) -> None:
        """A gap or a new segment: no window spans it."""
        self._clear_signal()
        self.pending: list[np.ndarray] = []

    def push(self, y: np.ndarray) -> None:
        """Gather the block; windows are cut once a batch's worth of signal is in (numpy's
        per-call cost, not the arithmetic, is what a block-by-block cut would spend)."""
        self._add(y)
        if self.raw_n >= self.spec.batch * self.hop * self.k:
            self._cut()
            if sum(len(p) for p in self.pending) >= self.spec.batch:
                self.run()

    def _cut(self) -> None:
        if not self._decimate_raw():
            return
        w, ends = windows(self.buf, self.length, self.hop, self.spec.clip)
        if len(w):
            self.pending.append(w)
            self.buf = self.buf[ends[-1] - self.length + self.hop:]

    def run(self) -> np.ndarray:
        self._cut()
        if not self.pending:
            return np.zeros(0, np.float32)
        w = np.concatenate(self.pending)
        self.pending = []
        p = np.asarray(self.model(w), np.float32).reshape(-1)
        self.prob_sum += float(p.sum())
        self.prob_windows += len(p)
        return p

    def probability(self) -> float | None:
        """Mean probability over every window so far (None: the strip had none)."""
        self.run()
        return self.prob_sum / self.prob_windows if self.prob_windows else None


class ECGEvidence(_Decimating):
    """The ECG model's AF probability of the windows ending before a beat, on demand.

    The AF episode rule asks it only for windows whose RR irregularity is near the bar
    (:attr:`RhythmConfig.af_ecg_prob`), so the model runs on a few windows of a long record,
    not on all of them (the strip models on every window were 9 % of the pipeline's time on a
    30-minute record, session 61). The
    windows are those :func:`windows` cuts from the stream since the last :meth:`reset`
    (starts 0, hop, 2 hop, ... decimated samples): the same whatever the block size, and the
    same as training cuts from a whole record. A window's time is its end's (exclusive), in
    stream seconds. Memory is bounded: signal older than any window a later beat can ask for
    is dropped (:meth:`forget_before`), and at most ``keep_s`` of it is kept in any case."""

    def __init__(self, model, spec: ECGModelSpec, fs_signal: float, count: int,
                 keep_s: float = 600.0):
        self.model, self.spec, self.count = model, spec, count
        self.k = factor(fs_signal, spec.fs)
        self.length, self.hop = spec.lengths()
        self.keep = int(round(keep_s * spec.fs))
        self.windows_run = 0  # model windows computed (its cost)
        self.reset()

    def reset(self) -> None:
        """A gap or a new segment: no window spans it."""
        self.t0: float | None = None  # stream time of the first signal sample since reset
        self._clear_signal()
        self.first = 0  # the decimated index of buf[0]
        self.probs: dict[int, float] = {}  # window number -> probability

    def push(self, y: np.ndarray, t0: float) -> None:
        """Band-passed signal at ``fs_signal`` whose first sample is at stream time ``t0``.
        Gathered, and decimated only when a decision asks or a minute has come in: numpy's
        per-call cost on every block was most of this evidence's cost."""
        if not len(y):
            return
        if self.t0 is None:
            self.t0 = t0
        self._add(y)

    def _gather(self) -> None:
        if self._decimate_raw() and len(self.buf) > self.keep:
            self._drop(len(self.buf) - self.keep)

    def _drop(self, n: int) -> None:
        self.buf, self.first = self.buf[n:], self.first + n
        self.probs = {j: p for j, p in self.probs.items() if j * self.hop >= self.first}

    def forget_before(self, t: float) -> None:
        """No beat before stream time ``t`` will ask again: drop what only such beats need."""
        if self.t0 is None:
            return
        if self.raw_n > 60 * self.k * self.spec.fs:
            self._gather()
        start = max(0, (self._last_window(t) - self.count + 1) * self.hop)
        if start > self.first:
            self._drop(min(start - self.first, len(self.buf)))

    def _last_window(self, t: float) -> int:
        """Number of the last window ending at or before stream time ``t`` (-1: none)."""
        ends_by = int(np.floor((t - self.t0) * self.spec.fs + 1e-9))  # decimated samples
        return (ends_by - self.length) // self.hop if ends_by >= self.length else -1

    def min_probability(self, t: float) -> float:
        """The lowest probability of the ``count`` windows ending last at or before stream
        time ``t`` (NaN while fewer have ended since the reset, or their signal was dropped)."""
        if self.t0 is None:
            return float("nan")
        last = self._last_window(t)
        nums = range(last - self.count + 1, last + 1)
        if nums.start < 0 or nums.start * self.hop < self.first:
            return float("nan")
        todo = [j for j in nums if j not in self.probs]
        if todo:
            self._gather()
            a = np.array([j * self.hop - self.first for j in todo])
            if a[-1] + self.length > len(self.buf):
                return float("nan")  # not all of its signal is in yet
            w = scale(sliding(self.buf, self.length)[a], self.spec.clip)
            p = np.asarray(self.model(w), np.float64).reshape(-1)
            self.probs.update(zip(todo, p.tolist()))
            self.windows_run += len(todo)
        return min(self.probs[j] for j in nums)
