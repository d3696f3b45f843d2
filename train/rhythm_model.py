"""The learned AF model: a compact MLP over the device's per-window rhythm features.

Protocol: cinc2017 strips split into record-grouped folds (the same split as ``rhythm-strips``)
and DS1 records into record-grouped folds beside them; each fold's model is trained on the other
folds' strips and records, so every strip and every DS1 beat gets an out-of-fold probability.
The out-of-fold probabilities then go through the device's own :class:`RhythmAnalyzer` (strip
call; onset/offset hysteresis on the long records), and the thresholds are chosen by
cross-validation on them: each cinc2017 fold / DS1 record gets settings chosen on the others.
The shipped model is trained on everything, with settings chosen on all out-of-fold data, then
converted to int8 by the same converter as the beat model and checked against the float model
(parity) before it is attached to a bundle. DS2 records are never used here.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ecg_edge.device.rhythm import SHORT_WINDOW, RhythmConfig, analyze_beats
from ecg_edge.device.rhythm_eval import (
    _af_score,
    evaluate_record,
    folds_by_record,
    read_reference,
    read_strip_labels,
    strip_metrics,
    summarize,
)
from ecg_edge.device.rhythm_features import FEATURES, missing_atrial, window_features
from ecg_edge.device.rhythm_model import RhythmModelSpec
from ecg_edge.train.classifier import DS1
from ecg_edge.train.rhythm_data import BeatSeries, series_of, window_labels

ARCH = "af_mlp"
#: Long-record settings searched on DS1 (leave one record out over out-of-fold
#: probabilities): the model driving episodes (enter, exit, onset, offset) ...
HOLTER_GRID = {"enter": (0.5, 0.6, 0.7, 0.8, 0.9), "exit": (0.2, 0.35, 0.5),
               "onset_beats": (8, 16, 24, 32), "offset_beats": (8, 16)}
#: ... or the reference (COSEn + P-wave gate; its own grid) with the model's veto.
REFERENCE_GRID = {"af_enter": (-0.9, -0.7, -0.5), "af_onset_beats": (8, 16, 24),
                  "af_p_wave_max": (0.6, 2.0), "af_max_odd_qrs": (1.0, 0.6, 0.5),
                  "veto": (0.0, 0.1, 0.2), "af_skip_odd_beats": (False, True)}
STRIP_GRID = tuple(np.round(np.arange(0.2, 0.81, 0.05), 2))
#: The rhythm settings this recipe chooses (the reference grid's, and the exit that moves
#: with the enter); every other setting of a bundle's ``rhythm`` section is not its to write.
AF_SETTINGS = (*(k for k in REFERENCE_GRID if k.startswith("af_")), "af_exit")


@dataclass(frozen=True)
class RhythmModelConfig:
    hidden: tuple[int, ...] = (32, 16)
    dropout: float = 0.1
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 2e-3
    positive_weight: float = 2.0  # AF rows weigh this much more (AF is 14 % of cinc windows)
    ds1_step: int = 2  # every n-th DS1 window (neighbouring windows share 15 of 16 intervals)
    atrial_dropout: float = 0.2  # share of rows shown as RR-only (atrial evidence missing)
    folds: int = 5
    seed: int = 0
    ecg: bool = True  # also the ECG model (train/rhythm_ecg.py), combined for the strip call
    ecg_epochs: int = 30

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Rows:
    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray


def short_row(b: BeatSeries, cfg: RhythmConfig, rng: np.random.Generator) -> np.ndarray | None:
    """A row as the analyzer computes it for a strip too short for one window: the first
    8-15 intervals (what a 10 s strip has)."""
    rr = np.where(b.usable, b.rr_s, np.nan)[1:]
    a = b.atrial[1:]
    run = min(len(rr), int(rng.integers(SHORT_WINDOW, cfg.af_window_beats)))
    if run < SHORT_WINDOW or not np.isfinite(rr[:run]).all():
        return None
    return window_features(rr[:run], a[:run], run, cfg.af_tolerance_s)[-1]


def assemble(cinc: dict[str, BeatSeries], labels: dict[str, str], mit: dict[str, BeatSeries],
             refs: dict, cfg: RhythmConfig, mcfg: RhythmModelConfig) -> tuple[Rows, dict, dict]:
    """Training rows of every strip and DS1 record, with their fold; (rows, strip fold, record
    fold)."""
    rng = np.random.default_rng(mcfg.seed)
    names = sorted(cinc)
    strip_fold = {n: k for k, f in enumerate(folds_by_record(names, mcfg.folds, mcfg.seed))
                  for n in f}
    rec_fold = {n: k % mcfg.folds for k, n in enumerate(sorted(mit))}
    xs, ys, fs = [], [], []
    for n in names:
        f = cinc[n].features
        f = f[np.isfinite(f).all(axis=1)]
        extra = short_row(cinc[n], cfg, rng)
        if extra is not None:
            f = np.vstack([f, extra[None]])
        xs.append(f)
        ys.append(np.full(len(f), labels[n] == "A", np.float32))
        fs.append(np.full(len(f), strip_fold[n]))
    for n in sorted(mit):
        b, ref = mit[n], refs[n]
        lab = window_labels(b.time_s, cfg.af_window_beats, ref.rhythms.get("AF", []),
                            ref.rhythms.get("AFL", []))
        idx = np.flatnonzero(np.isfinite(b.features).all(axis=1) & (lab >= 0))[::mcfg.ds1_step]
        xs.append(b.features[idx])
        ys.append(lab[idx].astype(np.float32))
        fs.append(np.full(len(idx), rec_fold[n]))
    return Rows(np.concatenate(xs), np.concatenate(ys), np.concatenate(fs)), strip_fold, rec_fold


class MLP:
    """The trained network as numpy (float32, exact to Keras): fast to run over every strip
    and record in the analyzer, with the thresholds of a :class:`RhythmModelSpec`."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], mean, std, spec):
        self.layers, self.mean, self.std, self.spec = layers, mean, std, spec

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(x, np.float32) - self.mean) / self.std, -6, 6)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        out = np.full(len(x), np.nan, np.float32)
        ok = np.isfinite(x).all(axis=1)
        h = self.standardise(x[ok])
        for k, (w, b) in enumerate(self.layers):
            h = h @ w + b
            h = np.maximum(h, 0) if k < len(self.layers) - 1 else 1 / (1 + np.exp(-h))
        out[ok] = h.reshape(-1)
        return out

    def with_spec(self, spec) -> MLP:
        return MLP(self.layers, self.mean, self.std, spec)


def build(n_features: int, mcfg: RhythmModelConfig):
    import keras

    layers = [keras.Input((n_features,))]
    for k, width in enumerate(mcfg.hidden):
        layers.append(keras.layers.Dense(width, activation="relu"))
        if k == 0 and mcfg.dropout:
            layers.append(keras.layers.Dropout(mcfg.dropout))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers, name=ARCH)


def fit(x: np.ndarray, y: np.ndarray, mcfg: RhythmModelConfig, seed: int):
    """(Keras model, MLP twin) trained on rows ``x`` (raw features)."""
    import keras

    rng = np.random.default_rng(seed)
    x = x.copy()
    drop = rng.random(len(x)) < mcfg.atrial_dropout
    x[drop, 12:17] = missing_atrial(x[drop])  # as RR-only input gives them
    mean, std = x.mean(axis=0).astype(np.float32), (x.std(axis=0) + 1e-6).astype(np.float32)
    keras.utils.set_random_seed(seed)
    model = build(x.shape[1], mcfg)
    model.compile(keras.optimizers.Adam(mcfg.learning_rate), "binary_crossentropy")
    w = np.where(y == 1, mcfg.positive_weight, 1.0)
    z = np.clip((x - mean) / std, -6, 6)
    model.fit(z, y, sample_weight=w, epochs=mcfg.epochs, batch_size=mcfg.batch_size, verbose=0)
    dense = [lay for lay in model.layers if isinstance(lay, keras.layers.Dense)]
    twin = MLP([(np.asarray(d.kernel, np.float32), np.asarray(d.bias, np.float32))
                for d in dense], mean, std, None)
    return model, twin


def _spec(enter=0.5, exit_=0.35, onset=16, offset=8, strip=0.5) -> RhythmModelSpec:
    return RhythmModelSpec(file="rhythm.tflite", sha256="0" * 64, bytes=1,
                           golden="rhythm_golden.npz", golden_sha256="0" * 64,
                           features=list(FEATURES), mean=[], std=[], enter=enter, exit=exit_,
                           onset_beats=onset, offset_beats=offset, strip_threshold=strip)


def strip_probs(model, cinc: dict[str, BeatSeries], cfg: RhythmConfig,
                rr_only: bool = False) -> dict[str, float]:
    """Each strip through the analyzer with ``model``: its mean AF probability (-1: none).
    ``rr_only``: from the beat times alone, as a chest strap's RR file gives them."""
    out = {}
    for n, b in cinc.items():
        _, summary = analyze_beats(b.time_s, b.sample, np.where(b.usable, b.rr_s, np.nan), cfg,
                                   monitored_s=b.duration_s,
                                   p_wave=None if rr_only else b.atrial, af_model=model)
        p = summary["af_probability"]
        out[n] = -1.0 if p is None else p
    return out


def holter_keys() -> list[tuple]:
    model = [("model", e, x, o, f) for e in HOLTER_GRID["enter"] for x in HOLTER_GRID["exit"]
             for o in HOLTER_GRID["onset_beats"] for f in HOLTER_GRID["offset_beats"] if x <= e]
    g = REFERENCE_GRID
    ref = [("reference", e, o, p, q, v, k) for e in g["af_enter"] for o in g["af_onset_beats"]
           for p in g["af_p_wave_max"] for q in g["af_max_odd_qrs"] for v in g["veto"]
           for k in g["af_skip_odd_beats"]]
    return model + ref


def setting(key: tuple, cfg: RhythmConfig, strip: float = 0.5) -> tuple[RhythmConfig, object]:
    """(rhythm config, model spec) of a grid key."""
    if key[0] == "model":
        return cfg, _spec(*key[1:], strip=strip)
    _, e, o, p, q, v, k = key
    c = replace(cfg, af_enter=e, af_exit=e - (cfg.af_enter - cfg.af_exit), af_onset_beats=o,
                af_p_wave_max=p, af_max_odd_qrs=q, af_skip_odd_beats=bool(k))
    return c, replace(_spec(strip=strip), episodes="reference", veto=v)


def holter_counts(models: dict[str, MLP], mit: dict[str, BeatSeries], refs: dict,
                  cfg: RhythmConfig) -> dict[tuple, dict[str, dict]]:
    """Per grid setting and record: epicmp counts of the analyzer with the record's model."""
    out: dict[tuple, dict[str, dict]] = {}
    # The model's probabilities do not depend on the setting: compute them once per record.
    cache = {}
    for n, b in mit.items():
        rr = np.where(b.usable, b.rr_s, np.nan)
        cache[n] = (rr, _Fixed(models[n](b.features)))
    for key in holter_keys():
        out[key] = {}
        c, spec = setting(key, cfg)
        for n, b in mit.items():
            rr, fixed = cache[n]
            events, _ = analyze_beats(b.time_s, b.sample, rr, c, monitored_s=b.duration_s,
                                      p_wave=b.atrial, af_model=fixed.at(spec))
            out[key][n] = evaluate_record(refs[n], events, b.duration_s)
    return out


class _Fixed:
    """Precomputed per-beat probabilities served to the analyzer block by block (the analyzer
    asks for each block's rows in stream order)."""

    def __init__(self, probs: np.ndarray, spec=None):
        self.probs, self.spec, self.pos = probs, spec, 0

    def at(self, spec) -> _Fixed:
        return _Fixed(self.probs, spec)

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        p = self.probs[self.pos:self.pos + len(feats)]
        self.pos += len(feats)
        return np.where(np.isfinite(feats).all(axis=1), p, np.nan)


def choose_holter(counts: dict[tuple, dict[str, dict]], names: list[str],
                  keys: list[tuple] | None = None) -> tuple:
    def summed(key):
        fields = ("ref_episodes", "det_episodes", "ref_detected", "det_true", "ref_s", "det_s",
                  "overlap_s")
        c = {f: sum(counts[key][r]["AF"][f] for r in names) for f in fields}
        # False AF episodes on records without AF count against a setting too.
        c["false_episodes"] = sum(counts[key][r]["AF"]["det_episodes"] for r in names
                                  if counts[key][r]["AF"]["ref_s"] == 0)
        return c

    def score(key):
        c = summed(key)
        return _af_score(c) - 0.01 * c["false_episodes"]

    return max(keys or counts, key=score)


def choose_strip(probs: dict[str, float], labels: dict[str, str], names: list[str]) -> float:
    best = None
    for thr in STRIP_GRID:
        f1 = strip_metrics({n: probs[n] >= thr for n in names}, labels)["all"]["f1_af"] or 0.0
        if best is None or f1 > best[0]:
            best = (f1, float(thr))
    return best[1]


def cross_validate(cinc_folder: str | Path, mitdb_folder: str | Path,
                   mcfg: RhythmModelConfig | None = None, limit: int | None = None,
                   log=print) -> dict:
    """Out-of-fold figures of the learned model and of the reference detector, same folds."""
    mcfg, cfg = mcfg or RhythmModelConfig(), RhythmConfig()
    labels = read_strip_labels(cinc_folder)
    names = sorted(labels)[:limit] if limit else sorted(labels)
    cinc = series_of(cinc_folder, names, "strip", cfg, keep_signal=mcfg.ecg)
    # DS1 only (never DS2); a folder with part of DS1 (the repository's data/) uses what it has.
    names_ds1 = [n for n in DS1 if (Path(mitdb_folder) / f"{n}.hea").exists()]
    if len(names) < 2 * mcfg.folds or not names_ds1:
        from ecg_edge.firmware_bridge.errors import UserError

        raise UserError(f"{cinc_folder} has {len(names)} labelled strips and {mitdb_folder} "
                        f"{len(names_ds1)} DS1 records; need at least {2 * mcfg.folds} strips "
                        "and one DS1 record (MIT-BIH 101 ... 230)")
    mit = series_of(mitdb_folder, names_ds1, "record", cfg, keep_signal=mcfg.ecg)
    refs = {n: read_reference(Path(mitdb_folder) / n) for n in names_ds1}
    rows, strip_fold, rec_fold = assemble(cinc, labels, mit, refs, cfg, mcfg)
    twins = {}
    for k in range(mcfg.folds):
        t0 = time.perf_counter()
        train = rows.fold != k
        _, twins[k] = fit(rows.x[train], rows.y[train], mcfg, mcfg.seed + k)
        log(f"fold {k + 1}/{mcfg.folds}: {int(train.sum())} rows, "
            f"{time.perf_counter() - t0:.0f} s")
    probs: dict[str, float] = {}
    probs_rr: dict[str, float] = {}  # the same strips from their beat times alone
    for k in range(mcfg.folds):
        part = {n: cinc[n] for n in names if strip_fold[n] == k}
        probs.update(strip_probs(twins[k].with_spec(_spec()), part, cfg))
        probs_rr.update(strip_probs(twins[k].with_spec(_spec()), part, cfg, rr_only=True))

    def held_out_strips(p: dict[str, float]) -> dict:
        """Each fold's threshold chosen on the other folds' out-of-fold probabilities of the
        ECG path (``probs``: the one threshold the device applies to either input)."""
        calls, chosen = {}, []
        for k in range(mcfg.folds):
            other = [n for n in names if strip_fold[n] != k]
            thr = choose_strip(probs, labels, other)
            chosen.append(thr)
            calls.update({n: p[n] >= thr for n in names if strip_fold[n] == k})
        return {"strips": len(names), "thresholds": chosen, **strip_metrics(calls, labels)}

    strips = held_out_strips(probs)
    ecg = None
    if mcfg.ecg:  # the ECG model's out-of-fold strip probabilities, combined with the RR one
        ecg = ecg_strips(cinc, labels, names, strip_fold, mit, refs, rec_fold, probs, mcfg, log)
    # Long records: each DS1 record's setting chosen on the other DS1 records, for each way
    # of deciding AF episodes (the model; the non-learned reference; the reference with the
    # model's veto), on the same held-out records. The way that scores best held out is
    # adopted, its setting then chosen on all of DS1.
    counts = holter_counts({n: twins[rec_fold[n]] for n in names_ds1}, mit, refs, cfg)
    ways = {"reference": [k for k in counts if k[0] == "reference" and k[5] == 0.0],
            "reference+veto": [k for k in counts if k[0] == "reference"],
            "model": [k for k in counts if k[0] == "model"]}
    holter = {}
    for way, keys in ways.items():
        held, picked = [], []
        for n in names_ds1:
            key = choose_holter(counts, [r for r in names_ds1 if r != n], keys)
            picked.append({"record": n, "setting": list(key)})
            held.append(counts[key][n])
        holter[way] = {**summarize(held), "chosen": picked}

    def held_score(way):
        h = holter[way]
        return _af_score(h["gross"]["AF"]) - 0.01 * h["false_af"]["episodes"]

    adopted = max(ways, key=held_score)  # ties: the first, i.e. the simpler way
    out = {"config": mcfg.to_dict(), "strips": strips, "reference_strips": reference_strips(
               cinc, labels, names, strip_fold),
           # what a strap's beat times alone give (``ecg-device rhythm``): no P-wave evidence
           "strips_rr_only": held_out_strips(probs_rr),
           "reference_strips_rr_only": reference_strips(cinc, labels, names, strip_fold,
                                                        rr_only=True),
           "holter": holter, "holter_adopted": adopted,
           "strip_threshold_all": choose_strip(probs, labels, names),
           "holter_setting_all": list(choose_holter(counts, names_ds1, ways[adopted])),
           "_state": (cinc, labels, mit, refs, rows, probs)}
    if ecg is not None:  # the RR model alone stays in the figures, for comparison
        out.update({"strips_rr": strips, "strips": ecg["strips"], "ecg": ecg["summary"],
                    "strip_threshold_all": ecg["threshold_all"], "_ecg": ecg["windows"]})
    return out


def ecg_strips(cinc, labels, names, strip_fold, mit, refs, rec_fold, rr_probs, mcfg, log):
    """Out-of-fold ECG strip probabilities on the same folds; each fold's weight and threshold
    of the combination chosen on the other folds (weight 0 = the RR model alone)."""
    from ecg_edge.train import rhythm_ecg

    ecfg = replace(rhythm_ecg.ECGModelConfig(), epochs=mcfg.ecg_epochs, seed=mcfg.seed)
    spec = rhythm_ecg.default_spec(ecfg.polarity_average)
    ws = rhythm_ecg.window_set(cinc, labels, strip_fold, mit, refs, rec_fold, spec, ecfg)
    ecg = rhythm_ecg.cross_validate(ws, mcfg.folds, ecfg, names, log)
    grid = [(w, float(t)) for w in rhythm_ecg.WEIGHTS for t in STRIP_GRID]

    def best(subset):
        def f1(g):
            calls = {n: rhythm_ecg.combine(rr_probs[n], ecg[n], g[0]) >= g[1] for n in subset}
            return strip_metrics(calls, labels)["all"]["f1_af"] or 0.0
        return max(grid, key=f1)

    calls, chosen = {}, []
    for k in range(mcfg.folds):
        w, thr = best([n for n in names if strip_fold[n] != k])
        chosen.append({"weight": w, "threshold": thr})
        calls.update({n: rhythm_ecg.combine(rr_probs[n], ecg[n], w) >= thr
                      for n in names if strip_fold[n] == k})
    ecg_only = {}
    for k in range(mcfg.folds):  # the ECG model alone, its threshold chosen the same way
        other = [n for n in names if strip_fold[n] != k]
        thr = choose_strip({n: rhythm_ecg.combine(-1.0, ecg[n], 1.0) for n in names},
                           labels, other)
        ecg_only.update({n: ecg[n] >= thr for n in names if strip_fold[n] == k})
    w_all, thr_all = best(names)
    return {"strips": {"strips": len(names), "thresholds": [c["threshold"] for c in chosen],
                       "chosen": chosen, **strip_metrics(calls, labels)},
            "summary": {"config": ecfg.to_dict(), "spec": spec.to_dict(), "weight_all": w_all,
                        "windows": int(len(ws.x)), "ecg_alone": strip_metrics(ecg_only, labels)},
            "threshold_all": thr_all, "windows": (ws, ecfg, spec, w_all)}


def reference_strips(cinc: dict[str, BeatSeries], labels: dict[str, str], names: list[str],
                     strip_fold: dict[str, int], rr_only: bool = False) -> dict:
    """The reference detector's strip calls on the same folds (its settings chosen on the
    other folds, as ``rhythm-strips`` does); ``rr_only``: without the P-wave gate."""
    from ecg_edge.device.rhythm_eval import STRIP_GRID as REF_GRID
    from ecg_edge.device.rhythm_eval import strip_irregularity

    cfg = RhythmConfig()
    beats = {n: (b.time_s, b.sample, np.where(b.usable, b.rr_s, np.nan), b.duration_s,
                 None if rr_only else b.atrial[:, 0])
             for n, b in cinc.items() if n in names}
    irr = {(e, p): strip_irregularity(beats, replace(cfg, strip_af_enter=e, strip_p_wave_max=p))
           for e in REF_GRID["strip_af_enter"] for p in REF_GRID["strip_p_wave_max"]}
    calls = {}
    for k in sorted(set(strip_fold.values())):
        train = [n for n in names if strip_fold[n] != k]
        best = max(((key, pct) for key in irr for pct in REF_GRID["strip_af_windows_pct"]),
                   key=lambda kp: strip_metrics({n: irr[kp[0]][n] >= kp[1] for n in train},
                                                labels)["all"]["f1_af"] or 0.0)
        calls.update({n: irr[best[0]][n] >= best[1] for n in names if strip_fold[n] == k})
    return strip_metrics(calls, labels)


def train_final(cv: dict, mcfg: RhythmModelConfig | None = None, log=print):
    """The shipped model: trained on every row, settings from all out-of-fold data; returns
    (keras model, float twin with its spec, rows, rhythm config)."""
    mcfg = mcfg or RhythmModelConfig()
    cinc, labels, mit, refs, rows, _ = cv["_state"]
    model, twin = fit(rows.x, rows.y, mcfg, mcfg.seed + 100)
    cfg, spec = setting(tuple(cv["holter_setting_all"]), RhythmConfig(),
                        cv["strip_threshold_all"])
    spec = replace(spec, mean=twin.mean.tolist(), std=twin.std.tolist())
    return model, twin.with_spec(spec), rows, cfg


def convert_int8(model, twin: MLP, rows: Rows, count: int = 300, seed: int = 0):
    """int8 TFLite through convert/'s converter; representative rows are standardised training
    rows. Returns (tflite bytes, parity report)."""
    from ecg_edge.convert.export import QuantOptions, to_tflite
    from ecg_edge.device.interpreter import ModelRunner, make_interpreter

    rng = np.random.default_rng(seed)
    z = twin.standardise(rows.x)
    rep = z[rng.choice(len(z), min(count, len(z)), replace=False)]
    data = to_tflite(model, QuantOptions(variant="int8", calibration_count=count), rep)
    runner = ModelRunner(make_interpreter(data)[0])
    check = z[rng.choice(len(z), min(5000, len(z)), replace=False)]
    ref = twin(twin.mean + check * twin.std)  # the float model on the same rows
    got = runner(check).reshape(-1)
    err = np.abs(got - ref)
    parity = {"rows": int(len(check)), "max_abs_error": float(err.max()),
              "mean_abs_error": float(err.mean()),
              "decision_agreement": float(np.mean((got >= twin.spec.enter)
                                                  == (ref >= twin.spec.enter)))}
    return data, parity


#: Parity gate of the rhythm model: int8 probabilities against the float model's.
PARITY_MAX_ABS = 0.1
PARITY_MIN_AGREEMENT = 0.99


def attach(bundle_dir: str | Path, tflite: bytes, spec: RhythmModelSpec,
           golden_x: np.ndarray, validation: dict, rhythm: RhythmConfig | None = None,
           ecg: tuple | None = None, keys: tuple[str, ...] | None = None) -> Path:
    """Put the rhythm model into a bundle folder: the model file, its golden vectors, the
    ``rhythm_model`` section and (``rhythm``) the AF settings chosen with it, as the settings
    that differ from the defaults; ``keys``: only these settings of ``rhythm`` (all where
    None), so settings tuned elsewhere (VT rate, P-wave smoothing) are not reset to defaults.
    Only these manifest sections change (the rest is kept as written, so the bundle keeps
    following later defaults); the bundle is loaded again through the one validator. Returns
    the manifest path."""
    from ecg_edge.device.bundle import MANIFEST, describe_file, load_bundle
    from ecg_edge.device.interpreter import make_interpreter
    from ecg_edge.device.rhythm_model import AFModel, load_af_model

    root = Path(bundle_dir)
    load_bundle(root)  # a valid bundle to begin with
    (root / spec.file).write_bytes(tflite)
    out_scale = float(make_interpreter(tflite)[0].get_output_details()[0]["quantization"][0])
    spec = replace(spec, output_scale=out_scale, validation=validation)
    np.savez(root / spec.golden, input=golden_x.astype(np.float32),
             output=AFModel(spec, tflite)(golden_x).astype(np.float32))
    sha, size = describe_file(root, spec.file)
    spec = replace(spec, sha256=sha, bytes=size,
                   golden_sha256=describe_file(root, spec.golden)[0], ecg=None)
    if ecg is not None:  # (tflite bytes, ECGModelSpec, golden windows)
        spec = replace(spec, ecg=_attach_ecg(root, *ecg))
    raw = json.loads((root / MANIFEST).read_text())
    raw["rhythm_model"] = spec.to_dict()
    if rhythm is not None:
        default, chosen = RhythmConfig().to_dict(), rhythm.to_dict()
        old = raw.get("rhythm") or {}
        # A setting chosen now replaces the old one, also where it is back at the default.
        section = {**old, **{k: chosen[k] for k in (keys or chosen)
                             if chosen[k] != default[k] or k in old}}
        raw["rhythm"] = json.loads(json.dumps(section))
    (root / MANIFEST).write_text(json.dumps(raw, indent=2) + "\n")
    load_af_model(load_bundle(root))  # hashes, rules and golden vectors check out here
    return root / MANIFEST


def _attach_ecg(root: Path, tflite: bytes, spec, golden_x: np.ndarray):
    """Write the ECG model and its golden windows into a bundle folder; its spec, filled in."""
    from ecg_edge.device.bundle import describe_file
    from ecg_edge.device.interpreter import make_interpreter
    from ecg_edge.device.rhythm_ecg import ECGAFModel

    (root / spec.file).write_bytes(tflite)
    out_scale = float(make_interpreter(tflite)[0].get_output_details()[0]["quantization"][0])
    spec = replace(spec, output_scale=out_scale)
    np.savez(root / spec.golden, input=golden_x.astype(np.float32),
             output=ECGAFModel(spec, tflite)(golden_x).astype(np.float32))
    sha, size = describe_file(root, spec.file)
    return replace(spec, sha256=sha, bytes=size, golden_sha256=describe_file(root, spec.golden)[0])


def report_text(cv: dict) -> str:
    s, r = cv["strips"], cv["reference_strips"]

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    def holter(name, h):
        g, fa = h["gross"]["AF"], h["false_af"]
        return (f"DS1 held out, {name}: AF duration Se {pct(g['duration_se'])} %, +P "
                f"{pct(g['duration_ppv'])} %; episode Se {pct(g['episode_se'])} %, +P "
                f"{pct(g['episode_ppv'])} %; false AF {fa['episodes']} episodes / "
                f"{fa['seconds']:.0f} s in {fa['hours']:.1f} h")

    return "\n".join([
        f"cinc2017 ({s['strips']} strips, {len(s['thresholds'])}-fold by record): F1(AF) "
        f"{pct(s['all']['f1_af'])} %, Se {pct(s['all']['se'])} %, Sp {pct(s['all']['sp'])} %, "
        f"+P {pct(s['all']['ppv'])} %; without '~' F1 {pct(s['without_noisy']['f1_af'])} %; "
        f"'~' called AF {s['noisy']['called_af']} of {s['noisy']['n']}",
        *([f"RR model alone on the same folds: F1(AF) {pct(cv['strips_rr']['all']['f1_af'])}"
           f" %; ECG model alone {pct(cv['ecg']['ecg_alone']['all']['f1_af'])} %"]
          if "strips_rr" in cv else []),
        f"reference on the same folds: F1(AF) {pct(r['all']['f1_af'])} %, Se "
        f"{pct(r['all']['se'])} %, Sp {pct(r['all']['sp'])} %",
        *([f"beat times alone (RR-only input, same folds): RR model F1(AF) "
           f"{pct(cv['strips_rr_only']['all']['f1_af'])} %, reference "
           f"{pct(cv['reference_strips_rr_only']['all']['f1_af'])} %"]
          if "strips_rr_only" in cv else []),
        *[holter(way, h) for way, h in cv["holter"].items()],
        f"adopted for episodes: {cv['holter_adopted']}, setting on all DS1: "
        f"{cv['holter_setting_all']}",
    ])


def public(cv: dict) -> dict:
    return json.loads(json.dumps({k: v for k, v in cv.items() if not k.startswith("_")},
                                 default=float))


def make(cinc_folder: str | Path, mitdb_folder: str | Path, out: str | Path,
         into: str | Path | None = None, limit: int | None = None,
         mcfg: RhythmModelConfig | None = None, log=print, settings: str = "keep") -> dict:
    """Cross-validate, train the shipped model, convert it to int8, gate it on parity with the
    float model and (``into``) attach it to a bundle. Writes ``rhythm-model.json`` and
    ``rhythm.tflite`` into ``out``. ``settings``: "keep" leaves a bundle's own AF settings as
    they are (tuned through the device path, e.g. ``rhythm-evaluate --cv``; this recipe's
    search reads the signal path's beats without the device's beat classes, P-wave smoothing
    and QRS alignment), "chosen" writes this run's choice (:data:`AF_SETTINGS` only). A bundle
    without a ``rhythm`` section always takes the choice."""
    from ecg_edge.firmware_bridge.errors import UserError

    if settings not in ("keep", "chosen"):
        raise ValueError(f"settings must be 'keep' or 'chosen', not {settings!r}")
    mcfg = mcfg or RhythmModelConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cv = cross_validate(cinc_folder, mitdb_folder, mcfg, limit, log)
    log(report_text(cv))
    model, twin, rows, rcfg = train_final(cv, mcfg, log)
    data, parity = convert_int8(model, twin, rows)
    parity["passed"] = bool(parity["max_abs_error"] <= PARITY_MAX_ABS
                            and parity["decision_agreement"] >= PARITY_MIN_AGREEMENT)
    result = {**public(cv), "spec": {k: v for k, v in twin.spec.to_dict().items()
                                     if k not in ("mean", "std")},
              "parity": parity, "tflite_bytes": len(data),
              "params": int(model.count_params())}
    (out / "rhythm.tflite").write_bytes(data)
    ecg = None
    if "_ecg" in cv:
        ecg = train_ecg_final(cv, twin.spec.strip_threshold, log)
        (out / ecg[1].file).write_bytes(ecg[0])
        result["ecg_parity"], result["ecg_tflite_bytes"] = ecg[3], len(ecg[0])
        parity["passed"] = bool(parity["passed"] and ecg[3]["passed"])
    (out / "rhythm-model.json").write_text(json.dumps(result, indent=2) + "\n")
    if not parity["passed"]:
        raise UserError("rhythm model parity gate failed (int8 vs float max error above "
                        f"{PARITY_MAX_ABS} or decision agreement below {PARITY_MIN_AGREEMENT}, "
                        "RR or ECG model); not attached; see " + str(out / "rhythm-model.json"))
    if into is not None:
        rng = np.random.default_rng(0)
        golden = rows.x[rng.choice(len(rows.x), 64, replace=False)]
        held = cv["holter"][cv["holter_adopted"]]["gross"]["AF"]
        validation = {"strips_f1_af": cv["strips"]["all"]["f1_af"],
                      "episodes_by": cv["holter_adopted"],
                      "ds1_af_duration_se": held["duration_se"],
                      "ds1_af_duration_ppv": held["duration_ppv"], "parity": parity}
        if ecg is not None:
            validation["ecg_parity"] = ecg[3]
        write = settings_to_write(into, settings, rcfg)
        # The DS1 figures above are of the setting this run chose; say whether it is in use.
        validation["ds1_setting"] = result["holter_setting_all"]
        validation["ds1_setting_in_bundle"] = write is not None
        if write is None:
            log("the bundle's own AF settings kept (--settings chosen writes this run's)")
        result["bundle"] = str(attach(into, data, twin.spec, golden, validation, write,
                                      ecg[:3] if ecg is not None else None, AF_SETTINGS))
    return result


def settings_to_write(bundle_dir: str | Path, settings: str,
                      chosen: RhythmConfig) -> RhythmConfig | None:
    """The AF settings :func:`make` writes into a bundle: None keeps the bundle's own (asked
    to keep, and it has a ``rhythm`` section to keep)."""
    from ecg_edge.device.bundle import load_bundle

    if settings == "keep" and load_bundle(bundle_dir).manifest.rhythm:
        return None
    return chosen


def train_ecg_final(cv: dict, threshold: float, log=print):
    """The shipped ECG model on every window, int8, parity-checked: (tflite bytes, spec with
    the weight chosen on all out-of-fold data, golden windows, parity report)."""
    from ecg_edge.train import rhythm_ecg

    ws, ecfg, spec, weight = cv["_ecg"]
    log(f"ECG model on all {len(ws.x)} windows")
    x, y, crops = ws.train_on(None, ecfg.random_crops)
    model = rhythm_ecg.fit(x, y, ecfg, ecfg.seed + 100, crops=crops)
    data, parity = rhythm_ecg.convert_int8(model, ws, threshold, cv["_state"][5], weight,
                                           polarity_average=spec.polarity_average)
    parity["passed"] = bool(parity["max_abs_error"] <= PARITY_MAX_ABS
                            and parity["decision_agreement"] >= PARITY_MIN_AGREEMENT
                            and parity["window_decision_agreement"] >= PARITY_MIN_AGREEMENT)
    golden = ws.x[np.random.default_rng(1).choice(len(ws.x), 16, replace=False)]
    return data, replace(spec, weight=weight), golden, parity


def attach_from(source_bundle: str | Path, bundle_dir: str | Path) -> Path:
    """Copy the rhythm model of one bundle (file, golden inputs, ``rhythm_model`` section and
    the AF settings chosen with it) into another: after the beat model's bundle is re-made,
    the rhythm model goes back in without retraining."""
    from ecg_edge.device.bundle import BundleError, load_bundle

    src = load_bundle(source_bundle)
    spec = src.manifest.rhythm_model
    if spec is None:
        raise BundleError(f"{source_bundle}: carries no rhythm model to attach")
    with np.load(src.path(spec.golden), allow_pickle=False) as z:
        golden_x = z["input"]
    ecg = None
    if spec.ecg is not None:
        with np.load(src.path(spec.ecg.golden), allow_pickle=False) as z:
            ecg = (src.path(spec.ecg.file).read_bytes(), spec.ecg, z["input"])
    return attach(bundle_dir, src.path(spec.file).read_bytes(), spec, golden_x, spec.validation,
                  RhythmConfig.from_dict(src.manifest.rhythm), ecg)
