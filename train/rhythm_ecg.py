"""The ECG AF model: a compact 1-D CNN over windows of the signal path's band-passed output.

Protocol as for the RR model (train/rhythm_model.py): the same record-grouped cinc2017 folds and
DS1 record folds; each fold's CNN is trained on the other folds' windows, so every strip gets an
out-of-fold ECG probability (the mean over its windows). The strip call combines it with the RR
model's out-of-fold strip probability, ``weight * ecg + (1 - weight) * rr``, weight and
threshold chosen on the other folds. The windows come from :mod:`device.rhythm_ecg`, the code
the device runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ecg_edge.device.arrays import sliding
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.rhythm_ecg import ECGModelSpec, decimate, factor, run_windows, scale, windows
from ecg_edge.train.rhythm_data import BeatSeries

ARCH = "af_ecg_cnn"
#: A window's training label: its strip's CinC class (DS1 windows: N or A). A = 1, so
#: ``label == AF`` is the AF-against-the-rest target whatever the number of classes.
CLASS_CODES = {"N": 0, "A": 1, "O": 2, "~": 3}
AF = CLASS_CODES["A"]


@dataclass(frozen=True)
class ECGModelConfig:
    # Seven stride-2 layers: the receptive field (8.7 s) spans the whole 8 s window, so the
    # net sees the irregular RR of several beats beside the missing P waves; with five (2.3 s,
    # 1.5 x the first model's widths) it saw two beats at most. With random crops, out of fold:
    # ECG alone 0.773 / 0.770 -> 0.829 / 0.816 F1(AF) (seeds 0 / 1), the strip call 0.840 /
    # 0.830 -> 0.845 / 0.840-0.847 (benchmarks/results/session54.md).
    filters: tuple[int, ...] = (12, 24, 24, 48, 48, 64, 64)
    kernels: tuple[int, ...] = (7, 7, 7, 5, 5, 5, 5)
    dense: int = 24
    dropout: float = 0.2
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 3e-3
    positive_weight: float = 2.0
    ds1_hop: int = 2  # every n-th DS1 window (neighbours overlap by half)
    seed: int = 0
    polarity_average: bool = True  # see device.rhythm_ecg.ECGModelSpec.polarity_average
    # Each epoch a strip's training windows start at random offsets inside the strip instead
    # of on the fixed hop grid (as many as its grid has). With the five-layer net it raised the
    # ECG model alone but not the strip call (pass7.md); the deeper net is trained with it.
    random_crops: bool = True
    # Nets averaged in one graph (seeds seed, seed + 1, ...): the shipped model is their mean
    # probability, one int8 file, so the device runs it as it ran one net. Out of fold, seeds 0
    # and 1 without stretch: ECG alone 0.829 / 0.819 -> 0.843, the strip call 0.845 / 0.840
    # -> 0.854; over four seeds a pair beats its members' mean by +0.011 alone, +0.003 in the strip
    # call (benchmarks/results/session55.md).
    members: int = 2
    # Random time stretch of the training crops, up to this relative change of length either way
    # (0: off): AF at rates the strips rarely show (slow AF is where both models miss, pass7.md).
    # 0.2 raised the strip call by +0.010 on average over six pairs of four seeds (11 of 12; the
    # ECG model alone +0.011), though not the recipe's own pair 0 + 1 (0.854 -> 0.849): shipped
    # for the expected gain, not the seeds' (benchmarks/results/session55.md). With four
    # classes (below) 0.3 beat 0.2 on the GPU: strip call +0.004 (9 of 12 cells, six seeds),
    # the ECG model alone +0.007 (benchmarks/results/session57.md). 0.5 in TensorFlow, four
    # seeds: the ECG model alone up in 5 of 6 cells, the strip call level (session58.md).
    stretch: float = 0.3
    # Classes the nets learn: 1, AF against the rest (a sigmoid); 4, CinC's own N / A / O / ~
    # (a softmax; DS1 windows are N or A), of which the shipped model outputs A's probability,
    # so the device runs it as before. The "other" rhythms and noise are told apart from AF
    # by name instead of being one "rest". On the lent GPU (PyTorch, session 57):
    # single nets +0.009 strip F1(AF) over six seeds (10 of 12 cells), the ECG model alone
    # +0.004; with stretch 0.3, pairs of nets +0.011 over the binary pairs (27 of 30 cells;
    # 0.852 -> 0.862). In TensorFlow (this code) level with classes=1, stretch=0.2 over 7 paired
    # cells, the ECG model alone -0.006; four classes alone (stretch 0.2) -0.003 over 6; fewer
    # false AF calls in the shipping run (benchmarks/results/session57.md).
    classes: int = 4

    def __post_init__(self) -> None:
        if self.classes not in (1, len(CLASS_CODES)):
            raise ValueError(f"ECGModelConfig.classes must be 1 or {len(CLASS_CODES)}, "
                             f"not {self.classes}")

    def to_dict(self) -> dict:
        return asdict(self)


def default_spec(polarity_average: bool = True) -> ECGModelSpec:
    return ECGModelSpec(file="rhythm_ecg.tflite", sha256="0" * 64, bytes=1,
                        golden="rhythm_ecg_golden.npz", golden_sha256="0" * 64,
                        polarity_average=polarity_average)


def series_windows(b: BeatSeries, spec: ECGModelSpec, fs_signal: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(scaled windows, each window's (start, end) time in s) of one record's kept signal."""
    fs_signal = fs_signal or SignalConfig().fs
    x = decimate(b.signal, factor(fs_signal, spec.fs))
    length, hop = spec.lengths()
    w, ends = windows(x, length, hop, spec.clip)
    t1 = ends / spec.fs
    return w, np.stack([t1 - spec.window_s, t1], axis=1)


def interval_labels(spans: np.ndarray, af: list[tuple[float, float]],
                    excluded: list[tuple[float, float]]) -> np.ndarray:
    """Per window: 1 inside one AF interval, 0 touching none, -1 mixed or touching flutter."""
    out = np.full(len(spans), -1, np.int8)
    for k, (a, b) in enumerate(spans):
        touches = any(a < y and b > x for x, y in af)
        if any(a < y and b > x for x, y in excluded):
            continue
        if not touches:
            out[k] = 0
        elif any(x <= a and b <= y for x, y in af):
            out[k] = 1
    return out


def build(length: int, mcfg: ECGModelConfig, name: str = ARCH):
    import keras

    inp = keras.Input((length,))
    x = keras.layers.Reshape((length, 1))(inp)
    for f, k in zip(mcfg.filters, mcfg.kernels):
        x = keras.layers.Conv1D(f, k, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(mcfg.dropout)(x)
    x = keras.layers.Dense(mcfg.dense, activation="relu")(x)
    out = keras.layers.Dense(mcfg.classes,
                             activation="sigmoid" if mcfg.classes == 1 else "softmax")(x)
    return keras.Model(inp, out, name=name)


def average(members: list):
    """One model whose output is the members' mean probability (one file, one call)."""
    import keras

    if len(members) == 1:
        return members[0]
    inp = keras.Input((members[0].inputs[0].shape[1],))
    return keras.Model(inp, keras.layers.Average()([m(inp) for m in members]), name=ARCH)


@dataclass
class StripCrops:
    """The training strips' decimated signals (unscaled, end to end) for windows at random
    offsets: each epoch, as many windows per strip as its fixed grid has."""

    signal: np.ndarray
    start: np.ndarray  # each strip's first sample in ``signal``
    length: np.ndarray  # each strip's samples
    count: np.ndarray  # windows per epoch
    y: np.ndarray
    fold: np.ndarray
    window: int  # samples
    clip: float

    def select(self, keep: np.ndarray) -> StripCrops:
        return replace(self, start=self.start[keep], length=self.length[keep],
                       count=self.count[keep], y=self.y[keep], fold=self.fold[keep])

    def sample(self, rng: np.random.Generator, stretch: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scaled windows, labels) at uniform random offsets; with ``stretch`` each window
        is cut from a span up to (1 + stretch) times longer or shorter, linearly resampled."""
        idx = np.repeat(np.arange(len(self.start)), self.count)
        if stretch <= 0:
            span = np.full(len(idx), self.window, dtype=np.int64)
        else:
            f = np.exp(rng.uniform(-np.log1p(stretch), np.log1p(stretch), len(idx)))
            span = np.minimum(np.round(self.window * f).astype(np.int64), self.length[idx])
        room = self.length[idx] - span + 1
        first = self.start[idx] + (rng.random(len(idx)) * room).astype(np.int64)
        if stretch <= 0:
            return (scale(sliding(self.signal, self.window)[first], self.clip),
                    self.y[idx])
        pos = (first[:, None] + np.arange(self.window, dtype=np.float32)[None]
               * ((span - 1) / (self.window - 1)).astype(np.float32)[:, None])
        i0 = np.minimum(pos.astype(np.int64), len(self.signal) - 2)
        frac = pos - i0
        x = self.signal[i0] * (1 - frac) + self.signal[i0 + 1] * frac
        return scale(x.astype(np.float32), self.clip), self.y[idx]


def fit(x: np.ndarray, y: np.ndarray, mcfg: ECGModelConfig, seed: int, log=None,
        crops: StripCrops | None = None):
    """``mcfg.members`` nets (seeds ``seed``, ``seed + 1``, ...) averaged in one model."""
    return average([fit_member(x, y, mcfg, seed + i, log, crops,
                               f"{ARCH}_{i}" if mcfg.members > 1 else ARCH)
                    for i in range(mcfg.members)])


def fit_member(x: np.ndarray, y: np.ndarray, mcfg: ECGModelConfig, seed: int, log=None,
               crops: StripCrops | None = None, name: str = ARCH):
    """A Keras CNN trained on scaled windows ``x`` (m, length) and, each epoch, fresh random
    windows of ``crops``; polarity flipped at random (electrode placement differs between
    wearers and devices)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build(x.shape[1], mcfg, name)
    binary = mcfg.classes == 1
    model.compile(keras.optimizers.Adam(mcfg.learning_rate),
                  "binary_crossentropy" if binary else "sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    fixed_x, fixed_y = x, y
    for epoch in range(mcfg.epochs):
        if crops is not None and len(crops.start):
            cx, cy = crops.sample(rng, mcfg.stretch)
            x, y = np.concatenate([fixed_x, cx]), np.concatenate([fixed_y, cy])
        w = np.where(y == AF, mcfg.positive_weight, 1.0).astype(np.float32)
        sign = np.where(rng.random(len(x)) < 0.5, -1.0, 1.0).astype(np.float32)
        lr = mcfg.learning_rate * (0.5 * (1 + np.cos(np.pi * epoch / mcfg.epochs)))
        model.optimizer.learning_rate.assign(lr)
        target = (y == AF).astype(np.float32) if binary else y.astype(np.int32)
        h = model.fit(x * sign[:, None], target, sample_weight=w, epochs=1,
                      batch_size=mcfg.batch_size, verbose=0, shuffle=True)
        if log:
            log(f"  epoch {epoch + 1}: loss {h.history['loss'][-1]:.4f}")
    # the device's model answers one probability, AF's: a slice of the softmax (int8 too)
    return model if binary else keras.Model(model.inputs[0], model.outputs[0][:, AF : AF + 1],
                                            name=name)


def predict(model, x: np.ndarray, polarity_average: bool = False) -> np.ndarray:
    """The Keras model's window probabilities, as the device computes them
    (:func:`device.rhythm_ecg.run_windows`)."""
    if not len(x):
        return np.zeros(0, np.float32)
    return run_windows(lambda w: model.predict(w, batch_size=1024, verbose=0), x,
                       polarity_average)


@dataclass
class WindowSet:
    """Every training window, its label (:data:`CLASS_CODES`), its fold and whose it is (strip
    or ``mit<record>``)."""

    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray
    owner: np.ndarray
    crops: StripCrops | None = None  # the strips' signals, for random windows in training

    def train_on(self, fold: int | None, random_crops: bool
                 ) -> tuple[np.ndarray, np.ndarray, StripCrops | None]:
        """(fixed windows, labels, crop source) to train on: every fold but ``fold`` (None:
        all); with ``random_crops`` the strips come as crops, not as their grid windows."""
        keep = self.fold != fold
        if not (random_crops and self.crops is not None):
            return self.x[keep], self.y[keep], None
        keep &= np.array([str(o).startswith("mit") for o in self.owner], dtype=bool)
        return self.x[keep], self.y[keep], self.crops.select(self.crops.fold != fold)


def window_set(cinc: dict[str, BeatSeries], labels: dict[str, str], strip_fold: dict[str, int],
               mit: dict[str, BeatSeries], refs: dict, rec_fold: dict[str, int],
               spec: ECGModelSpec, mcfg: ECGModelConfig) -> WindowSet:
    """Windows of every strip (its label) and DS1 record (AF inside one reference AF
    episode, not AF touching none; flutter and edges left out), with their folds."""
    xs, ys, fs, os_ = [], [], [], []
    length = spec.lengths()[0]
    raw, count = [], []
    k = factor(SignalConfig().fs, spec.fs)
    for n in sorted(cinc):
        w, _ = series_windows(cinc[n], spec)
        raw.append(decimate(cinc[n].signal, k))
        count.append(len(w))
        xs.append(w)
        ys.append(np.full(len(w), CLASS_CODES[labels[n]], np.float32))
        fs.append(np.full(len(w), strip_fold[n]))
        os_.append(np.full(len(w), n, dtype=object))
    for n in sorted(mit):
        w, spans = series_windows(mit[n], spec)
        lab = interval_labels(spans, refs[n].rhythms.get("AF", []),
                              refs[n].rhythms.get("AFL", []))
        idx = np.flatnonzero(lab >= 0)[::mcfg.ds1_hop]
        xs.append(w[idx])
        ys.append(lab[idx].astype(np.float32))
        fs.append(np.full(len(idx), rec_fold[n]))
        os_.append(np.full(len(idx), "mit" + n, dtype=object))
    names = sorted(cinc)
    lengths = np.array([len(r) for r in raw], dtype=np.int64)
    crops = StripCrops(np.concatenate(raw) if raw else np.zeros(0, np.float32),
                       np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64), lengths,
                       np.array(count, dtype=np.int64),
                       np.array([CLASS_CODES[labels[n]] for n in names], np.float32),
                       np.array([strip_fold[n] for n in names]), length, spec.clip)
    return WindowSet(np.concatenate(xs) if xs else np.zeros((0, length), np.float32),
                     np.concatenate(ys), np.concatenate(fs), np.concatenate(os_), crops)


def strip_means(owner: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Mean window probability per owner."""
    out: dict[str, float] = {}
    for n in np.unique(owner):
        out[str(n)] = float(p[owner == n].mean())
    return out


def cross_validate(ws: WindowSet, folds: int, mcfg: ECGModelConfig, names: list[str],
                   log=print) -> dict[str, float]:
    """Out-of-fold ECG probability of each strip (-1: shorter than one window)."""
    import time

    probs: dict[str, float] = {}
    is_strip = np.array([not str(o).startswith("mit") for o in ws.owner], dtype=bool)
    for k in range(folds):
        t0 = time.perf_counter()
        x, y, crops = ws.train_on(k, mcfg.random_crops)
        model = fit(x, y, mcfg, mcfg.seed + k, crops=crops)
        test = (ws.fold == k) & is_strip
        probs.update(strip_means(ws.owner[test], predict(model, ws.x[test],
                                                         mcfg.polarity_average)))
        log(f"ECG fold {k + 1}/{folds}: {int((ws.fold != k).sum())} windows, "
            f"{time.perf_counter() - t0:.0f} s")
    return {n: probs.get(n, -1.0) for n in names}


#: Weights of the ECG probability in the strip call (0: the RR model alone) searched by CV.
WEIGHTS = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)


def combine(rr: float, ecg: float, weight: float) -> float:
    """The strip probability the device computes (-1: neither model saw a window)."""
    if ecg < 0:
        return rr
    if rr < 0:
        return ecg
    return weight * ecg + (1 - weight) * rr


def convert_int8(model, ws: WindowSet, threshold: float, rr: dict[str, float], weight: float,
                 count: int = 2000, seed: int = 0, polarity_average: bool = False):
    """int8 TFLite through convert/'s converter (representative windows from training) and its
    parity with the float model. (tflite bytes, report.)

    The device never acts on one window: it thresholds the strip probability, the mean over
    the strip's windows combined with the RR model's (``rr``: each strip's, -1 for none). So
    the gate's figures (``max_abs_error``, ``decision_agreement``) are on that probability, per
    training strip; the ECG mean alone and the per-window errors (a few windows sit where an
    int8 step of a saturated unit moves them by up to ~0.4) are reported beside them."""
    from ecg_edge.convert.export import QuantOptions, to_tflite
    from ecg_edge.device.interpreter import ModelRunner, make_interpreter

    rng = np.random.default_rng(seed)
    rep = ws.x[rng.choice(len(ws.x), min(count, len(ws.x)), replace=False)]
    data = to_tflite(model, QuantOptions(variant="int8", calibration_count=count), rep)
    runner = ModelRunner(make_interpreter(data)[0])
    got = np.concatenate([run_windows(runner, ws.x[a:a + 4096], polarity_average)
                          for a in range(0, len(ws.x), 4096)])
    ref = predict(model, ws.x, polarity_average)
    err = np.abs(got - ref)
    strips = np.array([not str(o).startswith("mit") for o in ws.owner], dtype=bool)
    g, r = strip_means(ws.owner[strips], got[strips]), strip_means(ws.owner[strips], ref[strips])
    names = sorted(g)
    sg, sr = np.array([g[n] for n in names]), np.array([r[n] for n in names])
    cg = np.array([combine(rr.get(n, -1.0), g[n], weight) for n in names])
    cr = np.array([combine(rr.get(n, -1.0), r[n], weight) for n in names])
    return data, {"windows": int(len(ws.x)), "window_max_abs_error": float(err.max()),
                  "window_mean_abs_error": float(err.mean()),
                  "window_decision_agreement": float(np.mean((got >= threshold)
                                                             == (ref >= threshold))),
                  "strips": len(names), "ecg_mean_max_abs_error": float(np.abs(sg - sr).max()),
                  "max_abs_error": float(np.abs(cg - cr).max()),
                  "mean_abs_error": float(np.abs(cg - cr).mean()),
                  "decision_agreement": float(np.mean((cg >= threshold) == (cr >= threshold)))}
