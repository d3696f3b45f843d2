"""What a conversion starts from: a trained run folder, its data, its score and its threshold.

Two kinds of run folder are read:

``ecg5000`` (``ecg-train ecg5000``): models in ``seedN/model.keras``; the representative set is
drawn from the normal training beats of :func:`train.protocols.split_ecg5000`, evaluation is the
split's test set (normal vs abnormal), a window's score is its reconstruction / forecast MSE and
thresholds are calibrated on the validation normals the fit held out (the run's own rule).

``deploy`` (``ecg-train fit``): one ``model.keras`` with ``signal``, ``score`` and
``thresholds.json``; beats are rebuilt from the run's WFDB folder with the run's signal config,
model inputs come from :func:`device.features.model_inputs` and beat scores from
:meth:`device.features.ScoreSpec.score`, exactly as the device computes them.

No TensorFlow here: the model is only named, :mod:`convert.export` loads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecg_edge.device.evaluation import ABNORMAL
from ecg_edge.device.features import ScoreSpec, window_errors
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.train import thresholds

KINDS = ("ecg5000", "deploy")


@dataclass
class Source:
    """A run ready to convert: model path, data, scoring and threshold rule."""

    run: Path
    kind: str
    config: dict
    model_path: Path
    arch: str
    seed: int | None
    score: dict  # the score definition that goes into the manifest
    threshold_method: str
    threshold_params: dict
    normals: np.ndarray  # pool of normal windows the representative set is drawn from
    normals_origin: str
    eval_x: np.ndarray  # windows fed to every variant
    eval_keep: np.ndarray  # bool per eval window: part of the labelled evaluation
    eval_positive: np.ndarray  # bool per kept window: abnormal
    eval_classes: np.ndarray  # class name per kept window
    cal_x: np.ndarray | None  # windows whose scores calibrate a threshold (None: eval normals)
    _scorer: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    extra: dict = field(default_factory=dict)  # signal config, records, ... (deploy)

    def scores(self, x: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Score of every window of ``x`` given the model output ``pred``."""
        return self._scorer(x, pred)

    def calibrate(self, eval_scores: np.ndarray, cal_scores: np.ndarray | None
                  ) -> thresholds.Threshold:
        """This variant's threshold from its own scores, with the run's method."""
        kept = eval_scores[self.eval_keep]
        normal = cal_scores if cal_scores is not None else kept[~self.eval_positive]
        return thresholds.choose(self.threshold_method, normal, kept, self.eval_positive,
                                 self.eval_classes, **self.threshold_params)

    def describe(self) -> dict:
        return {"run": str(self.run), "kind": self.kind, "arch": self.arch, "seed": self.seed,
                "model": str(self.model_path), "score": self.score,
                "threshold": {"method": self.threshold_method, "params": self.threshold_params},
                "n_eval": int(self.eval_keep.sum()),
                "n_abnormal": int(self.eval_positive.sum()),
                "n_normals_pool": len(self.normals), "normals_origin": self.normals_origin}


def read_config(run: Path) -> dict:
    p = run / "config.json"
    if not p.exists():
        raise UserError(f"{run}: no config.json; give a run folder written by ecg-train")
    return json.loads(p.read_text())


def best_seed(run: Path, config: dict) -> int:
    """The seed with the highest test ROC-AUC in metrics.json (the run's 'best' model)."""
    mpath = run / "metrics.json"
    seeds = config.get("seeds") or [0]
    if not mpath.exists():
        return int(seeds[0])
    per_seed = json.loads(mpath.read_text()).get("seeds", [])
    done = [e for e in per_seed if (run / f"seed{e['seed']}" / "model.keras").exists()]
    if not done:
        raise UserError(f"{run}: no seedN/model.keras found")
    return int(max(done, key=lambda e: e["roc_auc"])["seed"])


def load_source(run: str | Path, seed: int | None = None, data: str | Path | None = None,
                cache_dir: str | Path | None = None, log=print) -> Source:
    """Open a run folder of either kind (``data`` overrides the data folder it names)."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"{run}: not a run folder")
    config = read_config(run)
    protocol = config.get("protocol")
    if protocol == "ecg5000":
        return _ecg5000(run, config, seed, data)
    if protocol == "deploy":
        return _deploy(run, config, data, cache_dir, log)
    raise UserError(f"{run}: protocol {protocol!r} cannot be converted; use an ecg5000 run or "
                    "a deployable run from 'ecg-train fit' (leave-records-out folds are "
                    "evaluations, not models)")


def _data_folder(run: Path, config: dict, data: str | Path | None) -> Path:
    folder = Path(data or config["data"])
    if not folder.is_absolute() and not folder.exists():
        for base in (run, Path(__file__).resolve().parents[1]):
            if (base / folder).exists():
                return base / folder
    if not folder.exists():
        raise UserError(f"{folder}: the run's data folder is missing; pass --data")
    return folder


def _ecg5000(run: Path, config: dict, seed: int | None, data) -> Source:
    from ecg_edge.train.datasets import load_ecg5000
    from ecg_edge.train.protocols import ecg5000_class_names, split_ecg5000

    seed = best_seed(run, config) if seed is None else seed
    model_path = run / f"seed{seed}" / "model.keras"
    if not model_path.exists():
        raise UserError(f"{model_path}: missing (seeds in this run: {config.get('seeds')})")
    mcfg = config["model"]
    arch = mcfg["arch"]
    scoring = "forecast" if arch == "tcn" else "reconstruction"
    horizon = int(mcfg.get("horizon", 1)) if scoring == "forecast" else 1
    skip = 0
    if arch == "tcn":  # the run's rule: a quarter of the receptive field is warm-up
        k, dil = int(mcfg["tcn_kernel"]), mcfg["tcn_dilations"]
        skip = (1 + sum(2 * (k - 1) * d for d in dil)) // 4
    beats = load_ecg5000(_data_folder(run, config, data))
    split = split_ecg5000(beats.x, beats.y, int(config.get("split_seed", 0)))
    x_train, x_test, y_test = split.x_train, split.x_test, split.y_test
    if config.get("limit"):
        lim = int(config["limit"])
        x_train, x_test, y_test = x_train[:lim], x_test[:lim], y_test[:lim]
    x_train, x_test = x_train[..., None], x_test[..., None]
    fit = config.get("fit", {})
    n_val = max(1, int(round(float(fit.get("validation_fraction", 0.1)) * len(x_train))))
    x_val = x_train[np.random.default_rng(seed).permutation(len(x_train))[:n_val]]
    names = ecg5000_class_names(y_test)

    def scorer(x, pred):
        return window_errors(x, pred, scoring, skip, horizon)

    score = {"kind": "window_mse", "scoring": scoring, "horizon": horizon, "skip": skip,
             "inputs": "ecg5000 beat as published (z-normalised per beat)",
             "combine": "not applicable (beats-only model)"}
    return Source(run, "ecg5000", config, model_path, arch, seed, score, "percentile",
                  {"q": 99.0}, x_train,
                  "ECG5000 normal training beats, split_ecg5000(seed="
                  f"{config.get('split_seed', 0)})",
                  x_test, np.ones(len(x_test), bool), y_test != 1, names, x_val, scorer,
                  {"split_seed": config.get("split_seed", 0), "n_val": n_val})


def _deploy(run: Path, config: dict, data, cache_dir, log) -> Source:
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.train.protocols import as_beats, load_folder_beats, settled

    model_path = run / "model.keras"
    if not model_path.exists():
        raise UserError(f"{run}: no model.keras")
    spec = ScoreSpec(**config["score"])
    cfg = SignalConfig.from_dict(config["signal"])
    folder = _data_folder(run, config, data)
    recs = load_folder_beats(folder, cfg, cache_dir, log=log)
    names = [r for r in config.get("records", sorted(recs)) if r in recs]
    if not names:
        raise UserError(f"{folder}: none of the run's records {config.get('records')} found")
    thr_path = run / "thresholds.json"
    method, params = "percentile", {"q": 99.0}
    if thr_path.exists():
        tj = json.loads(thr_path.read_text())
        entry = tj["methods"][tj["default"]]
        method = entry["method"]
        params = {k: v for k, v in entry.get("params", {}).items()
                  if k in ("k", "z", "q")}
        if method == "v_sensitivity":
            params = {"rate": entry["params"]["target"]}
        if method == "fixed":
            params = {"value": float(entry["value"])}
    from ecg_edge.device.features import model_inputs

    cspec = _class_spec(config)
    neutral = {} if cspec is None else {"classes": cspec, "signal": cfg}
    xs, keeps, clss, normals, offsets = [], [], [], [], [0]
    for n in names:
        d = recs[n]
        x = model_inputs(as_beats(d), spec.inputs, **neutral)
        keep = np.isin(d["cls"], ("N",) + ABNORMAL) & settled(d)
        xs.append(x)
        keeps.append(keep)
        clss.append(d["cls"][keep])
        normals.append(x[(d["cls"] == "N") & ~d["learning"]])
        offsets.append(offsets[-1] + len(x))
    eval_x = np.concatenate(xs)
    classes = np.concatenate(clss)

    def scorer(x, pred):
        if cspec is not None:  # a classifier: the device's call score (> 1 = not N)
            return class_calls(x, pred, cspec).score
        if len(x) != offsets[-1]:  # not the whole evaluation set: model error alone
            return np.sqrt(window_errors(x, pred, spec.scoring, spec.skip, spec.horizon))
        out = [spec.score(as_beats(recs[n]), x[a:b], pred[a:b])
               for n, a, b in zip(names, offsets[:-1], offsets[1:])]
        return np.concatenate(out)

    arch = config.get("model", {}).get("arch", "model")
    return Source(run, "deploy", config, model_path, arch, None, spec.to_dict(), method, params,
                  np.concatenate(normals), f"normal beats (AAMI N, after the learning period) "
                  f"of records {', '.join(names)} in {folder}",
                  eval_x, np.concatenate(keeps), np.isin(classes, ABNORMAL), classes, None,
                  scorer, {"signal": cfg, "records": names, "data": str(folder)})


def _class_spec(config: dict):
    from ecg_edge.device.classes import ClassSpec

    return ClassSpec.from_dict(config["classes"]) if config.get("classes") else None


def class_calls(x: np.ndarray, pred: np.ndarray, spec):
    """A classifier's calls as the device makes them, the irregular verdict read from the RR
    irregularity input channel (:func:`device.features.model_inputs`, ``wearer+rr``)."""
    from ecg_edge.device.classes import calls_for_inputs, softmax

    return calls_for_inputs(x, softmax(pred), spec)


def representative(normals: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, dict]:
    """A reproducible sample of normal windows and the record of how it was drawn."""
    n = len(normals)
    if n == 0:
        raise UserError("no normal windows to calibrate int8 quantization with")
    count = min(int(count), n)
    idx = np.sort(np.random.default_rng(seed).choice(n, count, replace=False))
    return normals[idx], {"seed": int(seed), "count": int(count), "pool": int(n),
                          "indices": idx.tolist()}
