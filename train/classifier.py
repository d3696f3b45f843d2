"""A compact supervised beat classifier (N/S/V/F) on wearer-relative windows and RR features.

Why supervised: an autoencoder trained on normal beats of other patients ranked new patients'
beats worse than the plain template distance; DS1 carries 50 000 labelled beats of 22 patients
(bundle-branch blocks, escape rhythms, VT runs, fusion), which a small CNN can learn from when
its inputs are relative to the wearer (beat − template, template, in the wearer's amplitude
units, and RR ratios against the wearer's local RR) rather than absolute shapes.

Protocol: record-grouped folds over DS1 give out-of-fold probabilities for every DS1 beat; the
class thresholds are chosen on those (never on a model's own training beats), the held-out fold
of the DS1 figures gets thresholds chosen on the *other* records' out-of-fold beats, and the
shipped model is trained on all of DS1 with the thresholds of all out-of-fold beats.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from ecg_edge.device import features
from ecg_edge.device.classes import (
    LABELS,
    RR_FEATURES,
    ClassSpec,
    PWaveTrend,
    RRTrend,
    VBaseline,
    baseline_valid,
    calls_for_inputs,
    ectopic_match,
    p_wave_evidence,
    s_p_wave,
    s_rule_rr,
    s_run_rr,
    s_run_rr_needed,
    s_runs_on,
    v_logit,
    v_reversed_corr,
    v_width,
)
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import EC57_START_S

#: The inter-patient training set (de Chazal 2004); the only records anything is fitted on.
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
#: The six DS2 records in the shared data: a visible test, never trained or tuned on.
DS2_VISIBLE = ("100", "103", "105", "111", "113", "117")
INPUTS = "wearer+rr"
ARCH = "beat_cnn"
#: The ``wearer+rr`` input channel holding the template distance (after beat and template).
TEMPLATE_DISTANCE_CHANNEL = 2 + RR_FEATURES.index("template_distance")


@dataclass(frozen=True)
class ClassifierConfig:
    filters: tuple[int, ...] = (16, 24, 32)  # stride-2 Conv1D stages
    kernel: int = 5
    dense: int = 32
    dropout: float = 0.3  # before each dense layer (training only; not in the TFLite graph)
    # The window's channel means (= the RR and shape features, constant along the window) go
    # straight to the dense layer as well: a rhythm call needs no convolution.
    feature_skip: bool = True
    # Fusion beats (AAMI F, part normal and part ventricular; 405 in DS1, most in record 208)
    # are learnt as this class. As their own class they took probability from N and V on
    # other patients (DS1 leave-one-out, int8: N flagged in AF 7.7 % vs 1.2 % as N, AUC N-V
    # 0.9865 vs 0.9895) while hardly one was called F correctly.
    fusion_as: str = "N"
    epochs: int = 6
    batch_size: int = 256
    learning_rate: float = 2e-3
    class_weight_power: float = 0.5  # weight_c ∝ (n / n_c) ** power
    max_shift: int = 2  # samples of fiducial jitter added per epoch (shift tolerance)
    amplitude_jitter: float = 0.25  # ± relative gain of the beat against its template
    # Real recorded noise (MIT-BIH NST's muscle 'ma' and baseline 'bw' records, through the
    # device's band-pass and resampler) added to this fraction of the beats per epoch, at an SNR
    # drawn from noise_snr_db (EC57's definition, the wearer's QRS amplitude as peak-to-peak);
    # only where a noise folder is given (train/classifier.noise_segments).
    noise_fraction: float = 0.5
    noise_snr_db: tuple[float, float] = (12.0, 24.0)
    # This fraction of the beats per epoch sees a template moved towards the beat by a share
    # drawn up to template_mix_max (and the template distance shrunk with it): a wearer with
    # frequent PVCs, VT or an escape rhythm has them in the running template, which then looks
    # less unlike them; the model must know a PVC by its own shape as well. 0: off.
    template_mix_fraction: float = 0.0
    template_mix_max: float = 0.5
    # Within each class, a record's beats weigh (its count of that class) ** -power, the class
    # keeping its total: DS1's PVCs are mostly 208's, 106's, 119's, 223's and 203's, and a model
    # that learns their shapes best meets other wearers' PVCs worse. 0: every beat alike. At
    # 0.5, DS1 by record, three seeds: VEB Se 82.4 / 87.2 / 82.2 -> 86.3 / 87.1 / 87.0, +P
    # 91.6 / 90.7 / 87.7 -> 92.0 / 90.1 / 90.2, SVEB Se -1.5 / -2.5 / +2.1 (RESULTS.md, 12th).
    record_weight_power: float = 0.5
    # Model inputs' RR ratios are neutral (1) where the RR irregularity before a beat is above
    # this (device.classes.rr_features; the bundle's classes.rr_neutral_above, >= 1 never).
    rr_neutral_above: float = 1.0
    # RR intervals of the long-term RR the model sees and the S rule uses
    # (device.classes.ClassSpec.long_rr_beats; the bundle carries it, training uses the same).
    long_rr_beats: int = 64
    # Members trained with seeds seed, seed+1, ... whose logits are averaged inside one graph
    # (one TFLite model; weights and MACs grow by this factor, the 64 KB int8 budget bounds it):
    # a new patient's beats fall where single models disagree.
    ensemble: int = 1
    # Model input (device.features.model_inputs): "wearer+rr", "wearer+rr+shape" with the
    # shape features against the wearer's template (device.morphology) as well, or
    # "wearer+rr+atrial" with the supraventricular features (device.classes.atrial_features).
    inputs: str = INPUTS
    # This fraction of the beats per epoch is seen on an inverted lead (device.features.
    # inverted_lead): DS1's MLII mostly points up, and the shipped model finds 21 points fewer
    # PVCs on the 28 records inverted (README, "Inverted leads"). Measured, off: at 0.5 it cost
    # 5 points of DS1 VEB Se on the lead as recorded; the "+upright" inputs do better (0: off,
    # the training bit for bit the one before the option existed).
    polarity_flip: float = 0.0
    # Beat and template stretched together in time about the fiducial by a factor drawn up to
    # 1 ± time_stretch: wearers differ in QRS and T width and in heart rate, and DS1 has 22 of
    # them. The difference between beat and template keeps its meaning. 0: off. Measured, off:
    # at 0.15, DS1 by record, int8, seeds 0 / 1: VEB 84.4 / 92.9, 83.3 / 91.7 -> 83.3 / 90.8,
    # 82.4 / 89.1; SVEB +P -3.7 / -3.2 (benchmarks/results/session62.md).
    time_stretch: float = 0.0
    # The model's weights are the mean of those at the end of each of the last this many
    # epochs (0 or 1: the last epoch's; a poor man's stochastic weight averaging at the
    # constant learning rate): a flatter optimum, less seed luck on patients never seen. At 5,
    # DS1 by record, int8, mean of 6 paired seeds: VEB Se 83.2 -> 84.8 and SVEB Se 69.7 -> 70.8
    # (each up on 5 of 6), +P, N flagged and AUC level; shipped in session 64 (at 3: nothing;
    # benchmarks/results/session63.md, session64.md).
    average_last: int = 5
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def build_classifier(length: int, channels: int, cfg: ClassifierConfig, name: str = ARCH):
    """Conv1D stages (stride 2) -> flatten (keeps where in the beat a difference is) -> dense ->
    logits of :data:`LABELS`. Only int8-friendly TFLite ops (CONV_2D, RESHAPE,
    FULLY_CONNECTED)."""
    import keras
    from keras import layers

    inp = keras.Input((length, channels))
    x = inp
    for f in cfg.filters:
        x = layers.Conv1D(f, cfg.kernel, strides=2, padding="same", activation="relu")(x)
    x = layers.Dropout(cfg.dropout)(layers.Flatten()(x))
    if cfg.feature_skip:
        x = layers.Concatenate()([x, layers.GlobalAveragePooling1D()(inp)])
    x = layers.Dropout(cfg.dropout)(layers.Dense(cfg.dense, activation="relu")(x))
    out = layers.Dense(len(LABELS))(x)  # logits (device.classes.softmax: int8 keeps ranking)
    return keras.Model(inp, out, name=name)


def labelled(d: dict) -> np.ndarray:
    """Beats a classifier learns from: matched to an N/S/V/F annotation, past the learning
    period (the wearer's template exists)."""
    return np.isin(d["cls"], LABELS) & ~d["learning"]


def record_inputs(d: dict, cfg: ClassifierConfig | None = None) -> np.ndarray:
    from ecg_edge.train.protocols import as_beats

    cfg = cfg or ClassifierConfig()
    return features.model_inputs(as_beats(d), cfg.inputs, classes=input_spec(cfg),
                                 signal=SignalConfig())


def input_spec(cfg: ClassifierConfig) -> ClassSpec:
    """The ClassSpec settings that shape the model's inputs (the bundle carries the same)."""
    return ClassSpec(rr_neutral_above=cfg.rr_neutral_above, long_rr_beats=cfg.long_rr_beats)


def noise_segments(folder: str | Path, cfg: SignalConfig | None = None,
                   records: tuple[str, ...] = ("ma", "bw")) -> np.ndarray:
    """Every lead of the NST noise ``records`` in ``folder`` through the device's input filter and
    resampler (:class:`device.signal_path`'s own filters), at the model rate, each scaled to unit
    RMS and joined: crops of it are the training noise (:func:`augment`)."""
    from ecg_edge.device.dsp import PolyphaseResampler, SosFilter, rational_ratio
    from ecg_edge.device.signal_path import input_filter_sos
    from ecg_edge.firmware_bridge.errors import UserError
    from ecg_edge.firmware_bridge.records import read_record

    cfg = cfg or SignalConfig()
    parts = []
    for name in records:
        path = Path(folder) / name
        if not path.with_suffix(".hea").exists():
            raise UserError(f"{path}.hea: no NST noise record {name!r} in {folder}; give the "
                            "folder of MIT-BIH NST's noise records (ma, bw)")
        rec = read_record(path)
        for lead in range(len(rec.channels)):
            x = SosFilter(input_filter_sos(cfg, rec.fs))(rec.lead_mv(lead).astype(np.float64))
            x = PolyphaseResampler(*rational_ratio(cfg.fs, rec.fs))(x)[int(cfg.fs):]  # settled
            parts.append(x / max(float(np.sqrt(np.mean(x**2))), 1e-9))
    return np.concatenate(parts).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, cfg: ClassifierConfig,
            noise: np.ndarray | None = None) -> np.ndarray:
    """Shift the beat against its template by up to ``max_shift`` samples and scale it by up to
    ± ``amplitude_jitter``: the detector's fiducial jitters and gains drift. With ``noise``
    (:func:`noise_segments`), a random crop of real noise is added to ``noise_fraction`` of the
    beats at an SNR in ``noise_snr_db``: a new wearer's recording is not as clean as DS1's best
    records. Last, ``polarity_flip`` of the beats are seen on an inverted lead."""
    x = x.copy()
    if cfg.template_mix_fraction > 0:
        pick = np.flatnonzero(rng.random(len(x)) < cfg.template_mix_fraction)
        a = rng.uniform(0.0, cfg.template_mix_max, len(pick)).astype(np.float32)
        x[pick, :, 1] += a[:, None] * x[pick, :, 0]  # the template, part of the beat in it
        x[pick, :, 0] *= (1.0 - a)[:, None]  # the beat's difference from it
        if x.shape[2] > TEMPLATE_DISTANCE_CHANNEL:
            x[pick, :, TEMPLATE_DISTANCE_CHANNEL] *= (1.0 - a)[:, None]
    beat = x[..., 0] + x[..., 1]
    if cfg.time_stretch > 0:
        beat, x[..., 1] = _stretched(rng, cfg.time_stretch, beat, x[..., 1])
    shifts = rng.integers(-cfg.max_shift, cfg.max_shift + 1, len(x))
    gain = 1.0 + rng.uniform(-cfg.amplitude_jitter, cfg.amplitude_jitter, len(x))
    for s in range(-cfg.max_shift, cfg.max_shift + 1):
        m = shifts == s
        if s and m.any():
            beat[m] = np.roll(beat[m], s, axis=1)
    beat = beat * gain[:, None].astype(np.float32)
    if noise is not None and len(noise) > x.shape[1] and cfg.noise_fraction > 0:
        pick = np.flatnonzero(rng.random(len(x)) < cfg.noise_fraction)
        start = rng.integers(0, len(noise) - x.shape[1], len(pick))
        crops = noise[start[:, None] + np.arange(x.shape[1])[None, :]]
        snr = rng.uniform(*cfg.noise_snr_db, len(pick))
        # EC57: S = (peak-to-peak QRS)^2 / 8; the wearer's amplitude is 1 in these units.
        rms = np.sqrt(1.0 / 8.0) * 10.0 ** (-snr / 20.0)
        beat[pick] += (crops * rms[:, None]).astype(np.float32)
    x[..., 0] = beat - x[..., 1]
    if cfg.polarity_flip > 0:
        pick = rng.random(len(x)) < cfg.polarity_flip
        x[pick] = features.inverted_lead(x[pick], cfg.inputs)
    return x


def _stretched(rng: np.random.Generator, amount: float, *windows: np.ndarray):
    """``windows`` (each n, W) resampled about the fiducial (SignalConfig's R position) by one
    factor per beat in [1 − amount, 1 + amount], linearly; past the window's ends, its edges."""
    n, w = windows[0].shape
    r = SignalConfig().samples().before
    f = rng.uniform(1.0 - amount, 1.0 + amount, n)
    pos = np.clip(r + (np.arange(w)[None, :] - r) / f[:, None], 0, w - 1)
    lo = np.minimum(pos.astype(np.int64), w - 2)
    a = (pos - lo).astype(np.float32)
    rows = np.arange(n)[:, None]
    return tuple(x[rows, lo] * (1 - a) + x[rows, lo + 1] * a for x in windows)


def fit_classifier(x: np.ndarray, y: np.ndarray, cfg: ClassifierConfig, log=print,
                   noise: np.ndarray | None = None, weights: np.ndarray | None = None):
    """Train on windows ``x`` with integer labels ``y`` (index into LABELS); returns the model
    and its per-epoch loss (of each member, one after the other, for an ensemble).
    ``weights``: per beat, beside the class weights (:func:`record_weights`)."""
    if cfg.ensemble <= 1:
        return _fit_one(x, y, cfg, log, noise, weights=weights)
    import keras
    from keras import layers

    members, hists = [], []
    for i in range(cfg.ensemble):
        log(f"  member {i + 1}/{cfg.ensemble}")
        m, h = _fit_one(x, y, replace(cfg, seed=cfg.seed + i, ensemble=1), log, noise,
                        f"{ARCH}_{i}", weights)
        members.append(m)
        hists.append(h)
    inp = keras.Input(x.shape[1:])
    out = layers.Average()([m(inp) for m in members])
    return keras.Model(inp, out, name=ARCH), {
        "loss": [v for h in hists for v in h["loss"]],
        "seconds": round(sum(h["seconds"] for h in hists), 1),
        "class_counts": hists[0]["class_counts"], "class_weights": hists[0]["class_weights"]}


def _fit_one(x: np.ndarray, y: np.ndarray, cfg: ClassifierConfig, log=print,
             noise: np.ndarray | None = None, name: str = ARCH,
             weights: np.ndarray | None = None):
    import keras

    from ecg_edge.train.fit import set_seed

    set_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    counts = np.bincount(y, minlength=len(LABELS)).astype(float)
    w = np.where(counts > 0, (len(y) / np.maximum(counts, 1)) ** cfg.class_weight_power, 0.0)
    w = w / w[0]
    model = build_classifier(x.shape[1], x.shape[2], cfg, name)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # per-beat weights carry the class weights with them (Keras takes one or the other)
    weighting = ({"class_weight": dict(enumerate(w.tolist()))} if weights is None else
                 {"sample_weight": (w[y] * weights).astype(np.float32)})
    losses, snapshots = [], []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        h = model.fit(augment(x, rng, cfg, noise), y, batch_size=cfg.batch_size, epochs=1,
                      shuffle=True, verbose=0, **weighting)
        losses.append(float(h.history["loss"][0]))
        log(f"  epoch {epoch + 1}/{cfg.epochs}: loss {losses[-1]:.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
        if cfg.average_last > 1 and epoch >= cfg.epochs - cfg.average_last:
            snapshots.append(model.get_weights())
    if len(snapshots) > 1:
        model.set_weights([np.mean(ws, axis=0) for ws in zip(*snapshots)])
    return model, {"loss": losses, "seconds": round(time.perf_counter() - t0, 1),
                   "class_counts": counts.astype(int).tolist(), "class_weights": w.tolist()}


def label_index(cls: np.ndarray) -> np.ndarray:
    """Index into :data:`LABELS` of each AAMI class letter (N, S, V, F)."""
    index = {c: i for i, c in enumerate(LABELS)}
    return np.array([index[c] for c in np.asarray(cls).tolist()], dtype=np.int64)


def training_set(data: dict[str, dict], names: list[str], inputs: dict[str, np.ndarray],
                 fusion_as: str = "F") -> tuple[np.ndarray, np.ndarray]:
    """Windows and label indices of the labelled beats of ``names``; F beats learnt as
    ``fusion_as``."""
    xs, ys = [], []
    for n in names:
        keep = labelled(data[n])
        xs.append(inputs[n][keep])
        cls = data[n]["cls"][keep]
        ys.append(label_index(np.where(cls == "F", fusion_as, cls)))
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def record_weights(data: dict[str, dict], names: list[str], y: np.ndarray,
                   power: float) -> np.ndarray:
    """Per beat of :func:`training_set` (same records, same order, its labels ``y``): within
    each class, (the beat's record's count of that class) ** -``power``, scaled so the class
    keeps its total weight (:attr:`ClassifierConfig.record_weight_power`)."""
    rec = np.concatenate([np.full(int(labelled(data[n]).sum()), i) for i, n in enumerate(names)])
    if len(rec) != len(y):
        raise ValueError("record_weights: y is not training_set's labels of these records")
    out = np.ones(len(y))
    for c in np.unique(y):
        m = y == c
        _, inverse, counts = np.unique(rec[m], return_inverse=True, return_counts=True)
        raw = counts[inverse].astype(np.float64) ** -power
        out[m] = raw * m.sum() / raw.sum()
    return out


# -- operating points ---------------------------------------------------------------------------
GRID = np.round(np.arange(0.05, 0.96, 0.025), 3)
#: V's candidates also reach far up (logits 3 to 8.75): taken relative to the wearer's baseline
#: (ClassSpec.v_baseline_weight) the V evidence of a normal beat sits near 0.05 and a PVC's
#: near 1, and the best cut lies above 0.95.
V_GRID = np.unique(np.concatenate([GRID, np.round(1.0 / (1.0 + np.exp(-np.arange(3.0, 9.0, 0.25))),
                                                  6)]))
#: Weights of the wearer's V baseline searched with V's threshold (when the base ClassSpec
#: keeps a baseline: v_baseline_beats > 0).
V_BASELINE_WEIGHTS = (0.25, 0.4, 0.5, 0.6)


def _f_beta(se: float, ppv: float, beta: float) -> float:
    if not se or not ppv or se != se or ppv != ppv:
        return 0.0
    return (1 + beta**2) * se * ppv / (beta**2 * ppv + se)


#: What each class threshold maximises on out-of-fold beats: the F-score of its EC57 statistic
#: (beta 1 weighs Se and +P alike). The targets ask for both Se and +P; on DS1 leave-one-out
#: (int8) the former rule (lowest threshold keeping +P >= 92 / 60 %) gave VEB 76.5 / 86.2 and
#: SVEB 40.4 / 38.7 %, this one 84.6 / 80.9 and 36.9 / 54.9 % (train/RESULTS.md).
F_BETA = {"v_threshold": ("veb", 1.0), "s_threshold": ("sveb", 1.0)}
#: The prematurity an S call needs (ClassSpec.s_max_rr_ratio), searched with the S threshold.
#: The irregularity rule (no S call in an irregular rhythm) is not searched: letting it loosen
#: raised SVEB Se on DS1 by calling N beats in AF S (N flagged in AF 12 -> 17 %).
S_MAX_RR_RATIOS = (0.8, 0.85, 0.9)
MIN_F_THRESHOLD = 0.5
#: Below this out-of-fold F1 no F call is made at all (fusion beats are rare: 405 in DS1, most
#: of them in record 208, so other patients' fusion beats are barely learnable).
MIN_F_F1 = 0.2


def record_v_baseline(d: dict, probs: np.ndarray, spec: ClassSpec) -> np.ndarray | None:
    """The wearer's V baseline (:class:`device.classes.VBaseline`) over one whole record's
    beats, as the device computes it beat by beat; None when the spec keeps none."""
    from ecg_edge.train.protocols import as_beats

    if not spec.v_baseline_beats:
        return None
    return VBaseline(spec.v_baseline_beats, spec.v_baseline_quantile)(
        v_logit(np.asarray(probs)[:, 2]), baseline_valid(as_beats(d), spec.v_baseline_good_only))


def record_rr_long_s(d: dict, spec: ClassSpec, own: np.ndarray | None = None
                     ) -> np.ndarray | None:
    """RR before each beat over the median of the ``spec.s_long_rr_beats`` RR before it, over
    one whole record, as the device computes it (:class:`device.classes.RRTrend`); None when
    the spec has no long-term S rule. ``own``: :func:`_record_p_own`, if the caller has it."""
    if not spec.s_long_rr_beats:
        return None
    rr = np.asarray(d["rr_prev"], np.float64)
    own = _record_p_own(d, spec) if own is None else own
    return s_rule_rr(rr, RRTrend.for_spec(spec)(rr, own), spec)


def record_p_wave(d: dict, spec: ClassSpec, own: np.ndarray | None = None
                  ) -> np.ndarray | None:
    """(n, 2) per beat of one whole record, as the device computes them: its P-wave
    correlation with the wearer's template and the median of the previous beats'
    (:func:`device.classes.p_wave_evidence`), and with the aberrancy rule on a third column,
    the QRS-onset correlation; None when the spec's rules read none of them. ``own``:
    :func:`_record_p_own`, if the caller has it."""
    own = _record_p_own(d, spec) if own is None else own
    if own is None:
        return None
    from ecg_edge.device.aberrancy import onset_similarity

    beats, fs, before_s = _cached_beats(d)
    onset = onset_similarity(beats, spec, fs, before_s)
    return p_wave_evidence(own, PWaveTrend(spec.s_sinus_p_beats), onset)


def record_width(d: dict, spec: ClassSpec) -> np.ndarray | None:
    """:func:`device.classes.v_width` of one whole record's cached beats (QRS width over the
    wearer's); None when the spec's wide-QRS rule is off."""
    beats, fs, before_s = _cached_beats(d)
    return v_width(beats, spec, fs, before_s)


def record_qrs_corr(d: dict, spec: ClassSpec) -> np.ndarray | None:
    """:func:`device.classes.v_reversed_corr` of one whole record's cached beats (QRS
    correlation with the template); None when the spec's reversed-QRS rule is off."""
    beats, fs, before_s = _cached_beats(d)
    return v_reversed_corr(beats, spec, fs, before_s)


def _record_p_own(d: dict, spec: ClassSpec) -> np.ndarray | None:
    """:func:`device.classes.s_p_wave` of one whole record's cached beats."""
    beats, fs, before_s = _cached_beats(d)
    return s_p_wave(beats, spec, fs, before_s)


def _cached_beats(d: dict):
    """One record's cached beats as :class:`device.signal_path.Beats`, with the model rate and
    the R peak's offset into the window they were cut at (``load_folder_beats``: the default
    :class:`SignalConfig`), as the device's per-beat evidence functions take them."""
    from ecg_edge.train.protocols import as_beats

    sig = SignalConfig()
    return as_beats(d), sig.fs, sig.window_before_s


@dataclass(frozen=True)
class BeatEvidence:
    """What the class rules read per beat beside the model's probabilities, as the device
    computes it beat by beat (each None where the spec's rules read none): the wearer's V
    baseline (:func:`record_v_baseline`), the long-term S rule's RR (:func:`record_rr_long_s`),
    the P-wave evidence (:func:`record_p_wave`) and the QRS width (:func:`record_width`). One
    object, so the threshold search passes it on whole as rules are added."""

    v_baseline: np.ndarray | None = None
    rr_long_s: np.ndarray | None = None
    p_wave: np.ndarray | None = None
    width: np.ndarray | None = None
    ectopic: np.ndarray | None = None
    rr_prev_s: np.ndarray | None = None  # consecutive beats only: not in pooled evidence
    s_run_rr: np.ndarray | None = None  # the same (device.classes.s_run_rr)
    qrs_corr: np.ndarray | None = None  # device.classes.v_reversed_corr

    def kwargs(self) -> dict[str, np.ndarray | None]:
        """The keyword arguments of :func:`device.classes.calls_for_inputs`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def where(self, mask: np.ndarray) -> BeatEvidence:
        return BeatEvidence(**{k: None if v is None else v[mask]
                               for k, v in self.kwargs().items()})


def record_evidence(d: dict, probs: np.ndarray, spec: ClassSpec) -> BeatEvidence:
    """:class:`BeatEvidence` over one whole record's beats."""
    rr = np.asarray(d["rr_prev"], np.float64)
    # the rules' long-term RR only where they read it: RRTrend is a per-beat pass
    runs = s_run_rr(rr, RRTrend.for_spec(spec)(rr), spec) if s_run_rr_needed(spec) else None
    return replace(_record_fixed_evidence(d, spec), v_baseline=record_v_baseline(d, probs, spec),
                   ectopic=record_ectopic(d, probs, spec), s_run_rr=runs,
                   rr_prev_s=rr if spec.v_run_rr_s or s_runs_on(spec) else None)


def record_ectopic(d: dict, probs: np.ndarray, spec: ClassSpec) -> np.ndarray | None:
    """:func:`device.classes.ectopic_match` over one whole record's cached beats, as the
    device computes it beat by beat; None when the spec's rule is off."""
    beats, fs, before_s = _cached_beats(d)
    return ectopic_match(beats, np.asarray(probs)[:, 2], spec, fs, before_s)[0]


def _record_fixed_evidence(d: dict, spec: ClassSpec) -> BeatEvidence:
    """The part of :func:`record_evidence` that does not depend on the model's probabilities
    (the beats' P-wave correlation computed once for the S-rule RR and the P-wave evidence)."""
    own = _record_p_own(d, spec)
    return BeatEvidence(rr_long_s=record_rr_long_s(d, spec, own),
                        p_wave=record_p_wave(d, spec, own), width=record_width(d, spec),
                        qrs_corr=record_qrs_corr(d, spec))


def pooled_evidence(names, data, probs, spec: ClassSpec, cache: dict | None = None
                    ) -> BeatEvidence:
    """:func:`record_evidence` over the same beats as :func:`pooled`. ``cache`` (a dict the
    caller keeps) holds each record's probability-free evidence per spec: a 22-fold CV pools
    each record 21 times, and the P-wave and width evidence cost far more than the search."""
    cache = {} if cache is None else cache
    parts = []
    for n in names:
        keep = settled_labelled(data[n])
        if (n, spec) not in cache:
            cache[n, spec] = _record_fixed_evidence(data[n], spec).where(keep)
        vb = record_v_baseline(data[n], probs[n], spec)
        ec = None
        if spec.v_like_corr > 0:  # the same out-of-fold probabilities are pooled in every fold
            key = (n, spec, hash(np.asarray(probs[n]).tobytes()))
            if key not in cache:
                cache[key] = record_ectopic(data[n], probs[n], spec)
            ec = cache[key]
        parts.append(replace(cache[n, spec], v_baseline=None if vb is None else vb[keep],
                             ectopic=None if ec is None else ec[keep]))
    return BeatEvidence(**{k: None if parts[0].kwargs()[k] is None
                           else np.concatenate([p.kwargs()[k] for p in parts])
                           for k in parts[0].kwargs()})


def choose_thresholds(x: np.ndarray, probs: np.ndarray, cls: np.ndarray, base: ClassSpec,
                      chosen: str, af: np.ndarray | None = None,
                      evidence: BeatEvidence = BeatEvidence()) -> ClassSpec:
    """Class thresholds from out-of-fold beats: V's and S's each maximise their F-score
    (:data:`F_BETA`), S's together with the prematurity an S call needs
    (:data:`S_MAX_RR_RATIOS`); F's threshold maximises F's own F1 at no less than
    :data:`MIN_F_THRESHOLD`, and F is never called when that F1 stays below :data:`MIN_F_F1`.
    Each is searched with the others at their current value, twice round. With ``af`` (beats
    in annotated AF/flutter), V's threshold in AF is then chosen on VEB F1 over those beats alone
    (:func:`choose_af_v_threshold`). The rules read ``evidence`` while the thresholds are
    searched, as they will on the device; with its V baseline and a base that keeps one, the
    baseline's weight is searched with V's threshold (:data:`V_BASELINE_WEIGHTS`)."""
    spec = base
    keep_baseline = evidence.v_baseline is not None and base.v_baseline_beats > 0
    weights = V_BASELINE_WEIGHTS if keep_baseline else (base.v_baseline_weight,)
    ev = evidence if keep_baseline else replace(evidence, v_baseline=None)
    for _ in range(2):
        spec = _best_pair(x, probs, cls, spec, "v_threshold", V_GRID, "v_baseline_weight",
                          weights, ev)
        spec = _best_pair(x, probs, cls, spec, "s_threshold", GRID, "s_max_rr_ratio",
                          S_MAX_RR_RATIOS, ev)
        f1 = {float(t): _f_f1(x, probs, cls, _with(spec, "f_threshold", float(t)), ev)
              for t in GRID[GRID >= MIN_F_THRESHOLD]}
        best_f = max(f1, key=f1.get)
        # F calls that are mostly wrong only add false flags: off (threshold 1 is never passed)
        spec = _with(spec, "f_threshold", best_f if f1[best_f] >= MIN_F_F1 else 1.0)
    if af is not None:
        spec = choose_af_v_threshold(x, probs, cls, np.asarray(af, bool), spec, ev)
    return _with(spec, "chosen", chosen)


def _best_pair(x, probs, cls, spec: ClassSpec, key: str, grid, other: str, others,
               ev: BeatEvidence) -> ClassSpec:
    """``spec`` with the threshold ``key`` and the setting ``other`` that together maximise
    ``key``'s F-score (:data:`F_BETA`) on these beats."""
    stat, beta = F_BETA[key]
    res = {(float(t), o): _se_ppv(x, probs, cls, _with(_with(spec, key, float(t)), other, o),
                                  stat, ev=ev)
           for t in grid for o in others}
    t, o = max(res, key=lambda k: _f_beta(*res[k], beta))
    return _with(_with(spec, key, t), other, o)


#: Candidates of the V threshold in AF (never below the sinus one).
AF_V_GRID = np.unique(np.round(np.concatenate([V_GRID, [0.97, 0.98, 0.99]]), 6))
#: The V threshold in AF is the highest candidate whose VEB F1 over the beats in AF is within
#: this of the best. In AF a lower bar mostly adds N beats typed V, and few records hold AF
#: with PVCs: DS1's fold without 203 had only 201's AF beats, whose F1 was flat down to the
#: sinus bar, and typed 134 of 203's 2077 N beats in AF V at it (session 90; with 0.005 the
#: left-out N flagged in AF 7.8 -> 1.0 %, VEB Se 87.6 -> 87.1 %, the all-DS1 bars unchanged).
AF_V_F1_SLACK = 0.005


def choose_af_v_threshold(x: np.ndarray, probs: np.ndarray, cls: np.ndarray, af: np.ndarray,
                          spec: ClassSpec, evidence: BeatEvidence = BeatEvidence()) -> ClassSpec:
    """V's threshold while AF is open: the highest whose VEB F1 over the beats in AF is within
    :data:`AF_V_F1_SLACK` of the best (the device applies it where its rhythm analysis has AF
    open). Unchanged (None) without V beats in AF: nothing to choose from."""
    if not ((cls[af] == "V").any()):
        return _with(spec, "v_threshold_af", None)
    # never below the sinus threshold, unless the spec lets it go (ClassSpec.v_af_floor)
    floor = spec.v_threshold if spec.v_af_floor else 0.0
    xa, pa, ca, ev = x[af], probs[af], cls[af], evidence.where(af)
    f1 = {float(t): _f_beta(*_se_ppv(xa, pa, ca, _with(spec, "v_threshold_af", float(t)), "veb",
                                     af=np.ones(len(ca), bool), ev=ev), 1.0)
          for t in AF_V_GRID[floor <= AF_V_GRID]}
    best = max(f1.values())
    return _with(spec, "v_threshold_af", max(t for t in f1 if f1[t] >= best - AF_V_F1_SLACK))


def _with(spec: ClassSpec, field_: str, value) -> ClassSpec:
    return ClassSpec(**{**asdict(spec), field_: value})


def _se_ppv(x, probs, cls, spec, stat, af=None, ev: BeatEvidence = BeatEvidence()
            ) -> tuple[float, float]:
    """VEB or SVEB (Se, +P) of the calls under ``spec``, counted as
    :func:`device.evaluation.class_statistics` counts them (lean: called thousands of times)."""
    calls = calls_for_inputs(x, probs, spec, af=af, **ev.kwargs()).classes
    c, ignore = ("V", ("F", "Q")) if stat == "veb" else ("S", ("Q",))
    is_c, called = cls == c, calls == c
    tp, pos = int((is_c & called).sum()), int(is_c.sum())
    n_called = int((called & ~np.isin(cls, ignore)).sum())
    return (tp / pos if pos else float("nan")), (tp / n_called if n_called else float("nan"))


def _f_f1(x, probs, cls, spec, ev: BeatEvidence = BeatEvidence()) -> float:
    calls = calls_for_inputs(x, probs, spec, **ev.kwargs()).classes
    tp = int(((cls == "F") & (calls == "F")).sum())
    return 2 * tp / max(1, int((cls == "F").sum()) + int((calls == "F").sum()))


def settled_labelled(d: dict, start_s: float = EC57_START_S) -> np.ndarray:
    return labelled(d) & (d["time_s"] >= start_s)


def pooled(names, data, probs, inputs):
    """(first window step of the inputs, probabilities, classes) of the settled labelled beats
    of ``names`` (the rhythm features are constant along a window: one step carries them)."""
    keep = {n: settled_labelled(data[n]) for n in names}
    return (np.concatenate([inputs[n][keep[n]][:, :1] for n in names]),
            np.concatenate([probs[n][keep[n]] for n in names]),
            np.concatenate([data[n]["cls"][keep[n]] for n in names]))


def pooled_mask(names, data, key: str) -> np.ndarray:
    """A per-beat boolean of ``data[n][key]`` over the same beats as :func:`pooled`."""
    return np.concatenate([np.asarray(data[n][key], bool)[settled_labelled(data[n])]
                           for n in names])


def folds_by_record(names: list[str], k: int) -> list[list[str]]:
    """Round-robin over sorted names (deterministic; each fold mixes the record range)."""
    names = sorted(names)
    return [names[i::k] for i in range(k)]


__all__ = ["DS1", "DS2_VISIBLE", "ClassifierConfig", "build_classifier", "fit_classifier",
           "record_weights", "choose_thresholds", "choose_af_v_threshold", "pooled_mask",
           "BeatEvidence", "record_evidence", "pooled_evidence", "record_rr_long_s",
           "record_p_wave", "record_width", "record_v_baseline", "training_set",
           "record_inputs", "augment", "pooled", "folds_by_record"]
