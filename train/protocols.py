"""The two evaluation protocols: ECG5000 anomaly split, MIT-BIH leave-records-out.

ECG5000: all 5000 beats; the normals split 80/20 with a fixed seed; models train on the 80 %
(10 % of it stops training early) and are tested on the other 20 % of normals plus every
abnormal beat.

MIT-BIH: one fold per record; the model never sees the test record's beats. Inputs are in the
wearer's units (``Scaling('wearer')``): the beat minus the wearer's running template and the
template itself, so the model learns how *normal* beats differ from their wearer's template
rather than what normal beats of other people look like. A "global" variant on absolute
(robust-scaled) beats shows what ignoring the wearer costs. Scores are evaluated through the
shared EC57 code (:mod:`device.evaluation`) beside the non-learned reference detectors.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ecg_edge.device import features, reference
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import (
    ABNORMAL,
    EC57_START_S,
    aami_class,
    evaluate_record,
    match_beats,
    roc_auc,
    summarize,
)
from ecg_edge.device.signal_path import Beats
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.progress import progress
from ecg_edge.train import thresholds
from ecg_edge.train.metrics import binary_report
from ecg_edge.train.scoring import beat_scores_ext

#: Arrays of a Beats kept in the per-record cache.
BEAT_FIELDS = ("sample", "time_s", "peak", "window", "template", "amplitude", "beat_amplitude",
               "rr_prev", "rr_next", "rr_local", "learning", "segment", "quality", "usable")
INPUTS = features.INPUTS


# -- ECG5000 -------------------------------------------------------------------------------------
@dataclass
class Ecg5000Split:
    x_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray  # ECG5000 labels 1..5 (1 = normal)


def split_ecg5000(x: np.ndarray, y: np.ndarray, seed: int = 0, train_fraction: float = 0.8
                  ) -> Ecg5000Split:
    """Normals split 80/20 (seeded); the test set is the rest of the normals + all abnormal."""
    normal = np.flatnonzero(y == 1)
    if len(normal) < 10:
        raise UserError(f"only {len(normal)} normal (label 1) beats; is this ECG5000?")
    order = np.random.default_rng(seed).permutation(normal)
    n_train = int(round(train_fraction * len(normal)))
    train_idx = np.sort(order[:n_train])
    test_mask = np.ones(len(y), dtype=bool)
    test_mask[train_idx] = False
    return Ecg5000Split(x[train_idx], x[test_mask], y[test_mask])


def ecg5000_class_names(y: np.ndarray) -> np.ndarray:
    from ecg_edge.train.datasets import ECG5000_CLASSES

    return np.array([ECG5000_CLASSES.get(int(v), str(v)) for v in y])


def run_ecg5000(folder: str | Path, arch: str, seeds: list[int], out: str | Path,
                fit_cfg=None, model_cfg=None, split_seed: int = 0, log=print,
                limit: int | None = None) -> dict:
    """Train ``arch`` once per seed on the fixed split; ROC-AUC mean ± std and the run folder.

    ``limit`` keeps only the first beats of each set (tests); protocol figures use all.
    """
    from ecg_edge.train.datasets import load_ecg5000
    from ecg_edge.train.fit import FitConfig, RunFolder, fit_normals, score_windows
    from ecg_edge.train.models import ModelConfig, receptive_field

    model_cfg = model_cfg or ModelConfig(arch=arch)
    fit_cfg = fit_cfg or FitConfig()
    data = load_ecg5000(folder)
    split = split_ecg5000(data.x, data.y, split_seed)
    x_train, x_test, y_test = split.x_train, split.x_test, split.y_test
    if limit:
        x_train, x_test, y_test = x_train[:limit], x_test[:limit], y_test[:limit]
    run = RunFolder(out)
    run.write_config({"protocol": "ecg5000", "data": str(folder), "split_seed": split_seed,
                      "seeds": seeds, "model": model_cfg.to_dict(), "fit": fit_cfg.to_dict(),
                      "n_train": len(x_train), "n_test": len(x_test), "limit": limit})
    names = ecg5000_class_names(y_test)
    skip = receptive_field(model_cfg) // 4 if arch == "tcn" else 0
    hz = model_cfg.horizon
    per_seed, histories = [], {}
    for seed in progress(seeds, "seed"):
        cfg = FitConfig(**{**fit_cfg.to_dict(), "seed": seed})
        log(f"[{arch}] seed {seed}: training on {len(x_train)} normal beats")
        res = fit_normals(x_train, model_cfg, cfg, log=log if fit_cfg.verbose == 0 else None)
        # Thresholds from the validation normals the fit held out (same seeded slice).
        rng = np.random.default_rng(seed)
        n_val = max(1, int(round(cfg.validation_fraction * len(x_train))))
        x_val = x_train[rng.permutation(len(x_train))[:n_val]]
        val_scores = score_windows(res.model, x_val, arch, skip=skip, horizon=hz)
        scores = score_windows(res.model, x_test, arch, skip=skip, horizon=hz)
        thr = {"percentile": thresholds.percentile(val_scores, 99.0),
               "mean_std": thresholds.mean_std(val_scores, 3.0),
               "zscore": thresholds.zscore(val_scores, 3.0)}
        report = binary_report(scores, names, "N", thr["percentile"].value)
        seed_dir = RunFolder(run.path / f"seed{seed}")
        seed_dir.save_model(res.model)
        np.savez_compressed(seed_dir.path / "scores.npz", scores=scores, labels=y_test,
                            val_scores=val_scores)
        entry = {"seed": seed, "roc_auc": report["roc_auc"], "pr_auc": report["pr_auc"],
                 "train_seconds": round(res.seconds, 2), "epochs": len(res.history["loss"]),
                 "best_epoch": res.best_epoch, "report": report,
                 "thresholds": {k: v.to_dict() for k, v in thr.items()}}
        per_seed.append(entry)
        histories[f"seed{seed}"] = res.history
        log(f"[{arch}] seed {seed}: ROC-AUC {report['roc_auc']:.4f}  PR-AUC "
            f"{report['pr_auc']:.4f}  {res.seconds:.1f} s, {entry['epochs']} epochs")
    aucs = np.array([e["roc_auc"] for e in per_seed])
    metrics = {"protocol": "ecg5000", "arch": arch, "model": res.summary,
               "roc_auc_mean": float(aucs.mean()), "roc_auc_std": float(aucs.std()),
               "train_seconds_mean": float(np.mean([e["train_seconds"] for e in per_seed])),
               "seeds": per_seed}
    run.write_json("history.json", histories)
    run.write_json("metrics.json", metrics)
    try:
        from ecg_edge.train import plots

        first = per_seed[0]["seed"]
        plots.ecg5000_figures(run.path, histories[f"seed{first}"], run.path / f"seed{first}",
                              x_test, arch, skip)
    except ImportError as exc:  # matplotlib is optional for the metrics themselves
        log(f"plots skipped: {exc}")
    return metrics


# -- MIT-BIH: per-record beats, cached -------------------------------------------------------------
def beat_classes(beats: Beats, ann_samples: np.ndarray, ann_symbols: list[str], fs: float
                 ) -> np.ndarray:
    """AAMI class of each detected beat ('' when it matches no annotated beat)."""
    is_beat, cls = aami_class(ann_symbols)
    ref = np.asarray(ann_samples, dtype=np.int64)[is_beat]
    match = match_beats(beats.sample, ref, int(round(0.15 * fs)))
    out = np.full(len(beats), "", dtype="<U1")
    ok = match >= 0
    out[match[ok]] = cls[is_beat][ok]
    return out


#: The device modules whose code makes the beats: a change to any of them makes cached beats stale.
SIGNAL_PATH_MODULES = ("dsp", "rpeaks", "qrs_energy", "quality", "context", "signal_path",
                       "records", "config")


def _cache_key(folder: Path, cfg: SignalConfig, lead: str | None = None) -> str:
    import importlib

    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    if lead is not None:  # the preferred lead keeps the keys its caches always had
        h.update(f"lead:{lead}".encode())
    for name in SIGNAL_PATH_MODULES:
        h.update(Path(importlib.import_module(f"ecg_edge.device.{name}").__file__).read_bytes())
    for p in sorted(folder.glob("*.dat")):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:12]


def beats_cache_path(folder: str | Path, cfg: SignalConfig, cache_dir: str | Path,
                     lead: str | None = None) -> Path:
    """Where :func:`load_folder_beats` caches ``folder``'s beats under ``cfg``."""
    return Path(cache_dir) / f"beats-{_cache_key(Path(folder), cfg, lead)}.npz"


def read_beats_cache(path: str | Path) -> dict[str, dict]:
    """The per-record arrays :func:`load_folder_beats` cached in ``path`` (as they were made,
    whatever the signal path's code is now: what saved out-of-fold probabilities belong to)."""
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["_records"]]
        return {n: {k[len(n) + 1:]: z[k] for k in z.files if k.startswith(n + "/")}
                for n in names}


def load_folder_beats(folder: str | Path, cfg: SignalConfig, cache_dir: str | Path | None = None,
                      log=print, lead: str | None = None) -> dict[str, dict]:
    """Per record: the Beats arrays, matched AAMI class, annotations; cached with np.savez.
    ``lead``: which lead of each record (:meth:`Record.channel_index`; default MLII or the
    first).

    The cache key covers the signal config, the signal path's code and the folder's files, so
    a changed config or signal path never reads stale beats; folds then reuse one signal-path
    pass per record.
    """
    from ecg_edge.device.records import iter_folder

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of WFDB records")
    cache = None
    if cache_dir is not None:
        cache = beats_cache_path(folder, cfg, cache_dir, lead)
        if cache.exists():
            return read_beats_cache(cache)
    out: dict[str, dict] = {}
    for rb in iter_folder(folder, cfg, lead=lead):
        rec, b = rb.record, rb.beats
        d = {f: getattr(b, f) for f in BEAT_FIELDS}
        d["cls"] = beat_classes(b, rec.ann_samples, rec.ann_symbols, rec.fs)
        d["ann_samples"] = np.asarray(rec.ann_samples, dtype=np.int64)
        d["ann_symbols"] = np.array(rec.ann_symbols, dtype="<U2")
        d["fs"] = np.array(rec.fs)
        out[rec.name] = d
        log(f"{rec.name}: {len(b)} beats")
    if not out:
        raise UserError(f"{folder}: no annotated, unpaced WFDB records found")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        flat = {f"{n}/{k}": v for n, d in out.items() for k, v in d.items()}
        np.savez(cache, _records=np.array(list(out)), **flat)
    return out


def as_beats(d: dict) -> Beats:
    return Beats(*(d[f] for f in BEAT_FIELDS))


def model_inputs(d: dict, mode: str) -> np.ndarray:
    """Model input of one record's cached beats (:func:`device.features.model_inputs`)."""
    return features.model_inputs(as_beats(d), mode)


def settled(d: dict, start_s: float = EC57_START_S) -> np.ndarray:
    """Beats after the EC57 learning period (the first ``start_s`` seconds; in records too short
    for that, after the context's own learning period).

    Thresholds are calibrated on these: the first minutes' scores come from a template, an RR
    mean and a local baseline of few beats, and no EC57 figure counts them. Calibrated on them
    too, the thresholds came out lower than the settled scores of unseen patients need.
    """
    late = ~d["learning"] & (d["time_s"] >= start_s)
    return late if late.any() else ~d["learning"]


def scores_from_error(mse: np.ndarray, d: dict, combine: str, baseline_beats: int = 0,
                      spread_floor: float = 0.0) -> np.ndarray:
    """Beat scores of one record's cached beats (:func:`device.features.beat_scores`)."""
    return features.beat_scores(mse, as_beats(d), combine, baseline_beats, spread_floor)


@dataclass
class MitdbConfig:
    """Leave-records-out settings: which input, how many training beats per record."""

    inputs: str = "wearer"
    combine: str = "model+rr"
    baseline_beats: int = 16  # as the deploy recipe (train.deploy.DeployConfig)
    spread_floor: float = 0.02
    max_train_per_record: int = 1200  # normal beats per training record (bounds fit time)
    start_s: float = EC57_START_S
    folds: list[str] = field(default_factory=list)  # records to hold out; empty = all

    def to_dict(self) -> dict:
        return asdict(self)


def _train_rows(d: dict, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a training record's normal beats outside the learning period."""
    idx = np.flatnonzero((d["cls"] == "N") & ~d["learning"])
    if len(idx) > limit:
        idx = np.sort(rng.choice(idx, limit, replace=False))
    return idx


def _fold_threshold(scores: np.ndarray, cls: np.ndarray) -> thresholds.Threshold:
    """The deploy recipe's threshold (train.deploy): V sensitivity, else best F1."""
    try:
        return thresholds.sensitivity(scores, cls == "V")
    except ValueError:
        return thresholds.best_f1(scores, np.isin(cls, ABNORMAL))


def run_mitdb(folder: str | Path, arch: str, out: str | Path, mcfg: MitdbConfig | None = None,
              fit_cfg=None, model_cfg=None, cache_dir: str | Path | None = None,
              cfg: SignalConfig | None = None, log=print) -> dict:
    """Leave-one-record-out over the folder; EC57 metrics of the model and the references."""
    from ecg_edge.train.fit import FitConfig, RunFolder, fit_normals, score_windows
    from ecg_edge.train.models import ModelConfig, receptive_field

    mcfg = mcfg or MitdbConfig()
    model_cfg = model_cfg or ModelConfig(arch=arch)
    fit_cfg = fit_cfg or FitConfig()
    cfg = cfg or SignalConfig()
    run = RunFolder(out)
    data = load_folder_beats(folder, cfg, cache_dir if cache_dir is not None else run.path,
                             log=log)
    names = sorted(data)
    folds = mcfg.folds or names
    unknown = sorted(set(folds) - set(names))
    if unknown:
        raise UserError(f"records {', '.join(unknown)} are not in {folder} "
                        f"(it has {', '.join(names)})")
    if len(names) < 2:
        raise UserError("leave-records-out needs at least two records")
    run.write_config({"protocol": "mitdb", "data": str(folder), "records": names,
                      "mitdb": mcfg.to_dict(), "model": model_cfg.to_dict(),
                      "fit": fit_cfg.to_dict(), "signal": cfg.to_dict()})
    skip = receptive_field(model_cfg) // 4 if arch == "tcn" else 0
    score_opts = (mcfg.baseline_beats, mcfg.spread_floor)
    hz = model_cfg.horizon
    inputs = {n: model_inputs(data[n], mcfg.inputs) for n in names}
    tables: dict[str, dict] = {"model": {}, "model_only": {}, "wearer_threshold": {},
                               "model+template+rr": {},
                               **{r: {} for r in reference.DETECTORS}}
    folds_out, histories = {}, {}
    summary = None
    for k, test in enumerate(progress(folds, "fold", lambda t: f"record {t} held out")):
        t0 = time.perf_counter()
        rng = np.random.default_rng(fit_cfg.seed)
        train_names = [n for n in names if n != test]
        rows = {n: _train_rows(data[n], mcfg.max_train_per_record, rng) for n in train_names}
        x_train = np.concatenate([inputs[n][rows[n]] for n in train_names])
        res = fit_normals(x_train, model_cfg, fit_cfg)
        summary = res.summary
        histories[test] = res.history
        # Threshold from the *training* records' labelled beats (other patients).
        tr_scores, tr_cls = [], []
        for n in train_names:
            mse_n = score_windows(res.model, inputs[n], arch, skip=skip, horizon=hz)
            s = scores_from_error(mse_n, data[n], mcfg.combine, *score_opts)
            keep = np.isin(data[n]["cls"], ("N",) + ABNORMAL) & settled(data[n], mcfg.start_s)
            tr_scores.append(s[keep])
            tr_cls.append(data[n]["cls"][keep])
        thr = _fold_threshold(np.concatenate(tr_scores), np.concatenate(tr_cls))
        d = data[test]
        mse = score_windows(res.model, inputs[test], arch, skip=skip, horizon=hz)
        s = scores_from_error(mse, d, mcfg.combine, *score_opts)
        s_model = scores_from_error(mse, d, "model")
        s_mtr = beat_scores_ext(mse, as_beats(d), "model+template+rr")
        learn = d["learning"] | (d["time_s"] < mcfg.start_s)
        wthr = thresholds.adapt_to_wearer(thr, s[learn & np.isfinite(s)])
        ev = dict(ann_samples=d["ann_samples"], ann_symbols=[str(v) for v in d["ann_symbols"]],
                  fs=float(d["fs"]), start_s=mcfg.start_s)
        tables["model"][test] = evaluate_record(d["sample"], s, thr.flags(s), **ev)
        tables["model_only"][test] = evaluate_record(d["sample"], s_model, s_model > np.inf,
                                                     **ev)
        tables["wearer_threshold"][test] = evaluate_record(d["sample"], s, wthr.flags(s), **ev)
        # Shape terms averaged (model error, template distance) + RR: weights fixed a priori.
        tables["model+template+rr"][test] = evaluate_record(d["sample"], s_mtr, s_mtr > np.inf,
                                                            **ev)
        beats = as_beats(d)
        for r in reference.DETECTORS:
            rs = reference.score(beats, r)
            tables[r][test] = evaluate_record(d["sample"], rs, rs > reference.THRESHOLDS[r], **ev)
        m = tables["model"][test].metrics()
        ref_m = tables["combined"][test].metrics()
        folds_out[test] = {"train_records": train_names, "n_train": len(x_train),
                           "threshold": thr.to_dict(), "wearer_threshold": wthr.to_dict(),
                           "epochs": len(res.history["loss"]),
                           "train_seconds": round(res.seconds, 1), "auc": m["auc"],
                           "combined_auc": ref_m["auc"]}
        if k == 0:  # one held-out model kept for the reconstruction figure
            run.save_model(res.model, f"fold_{test}.keras")
        np.savez_compressed(run.path / f"fold_{test}.npz", score=s, mse=mse, cls=d["cls"],
                            sample=d["sample"], time_s=d["time_s"], flags=thr.flags(s))
        log(f"[{arch}/{mcfg.inputs}] fold {k + 1}/{len(folds)} record {test}: "
            f"N-vs-V {_f(m['auc']['N_vs_V'])}  N-vs-abn {_f(m['auc']['N_vs_abnormal'])}  "
            f"(combined ref {_f(ref_m['auc']['N_vs_V'])} / {_f(ref_m['auc']['N_vs_abnormal'])})"
            f"  {time.perf_counter() - t0:.0f} s")
    results = {name: summarize(t) for name, t in tables.items()}
    metrics = {"protocol": "mitdb", "arch": arch, "inputs": mcfg.inputs,
               "combine": mcfg.combine, "model": summary, "start_s": mcfg.start_s,
               "gross_auc": {name: r["gross"]["auc"] for name, r in results.items()},
               "mean_record_auc": {name: _mean_record_auc(r) for name, r in results.items()},
               "gross": {name: {k: r["gross"][k] for k in ("classes", "abnormal", "qrs")}
                         for name, r in results.items()},
               "folds": folds_out}
    run.write_json("history.json", histories)
    run.write_json("metrics.json", metrics)
    try:
        from ecg_edge.train import plots

        plots.mitdb_figures(run.path, histories, data, folds, mcfg.start_s)
    except ImportError as exc:
        log(f"plots skipped: {exc}")
    return metrics


def _mean_record_auc(result: dict) -> dict:
    out = {}
    for key in ("N_vs_V", "N_vs_abnormal"):
        vals = [r["auc"][key] for r in result["records"].values()]
        vals = [v for v in vals if v == v]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out


def _f(v: float) -> str:
    return "  n/a" if v != v else f"{v:.4f}"


__all__ = ["split_ecg5000", "run_ecg5000", "load_folder_beats", "read_beats_cache", "model_inputs",
           "scores_from_error", "settled", "MitdbConfig", "run_mitdb", "beat_classes", "roc_auc"]
