"""The deployable model: train on every given record, calibrate thresholds, write the run folder.

Unlike the protocols there is no held-out *test* record here (every patient given is used), so
nothing in this folder says how well the model generalises: the leave-records-out protocol does.
Validation is split **by record** (whole patients), which early stopping and the normal-score
thresholds use; with a single record it falls back to a seeded slice of that record's beats and
says so in ``config.json``.

The run folder is what ``convert/`` reads::

    RUN/model.keras        float Keras model
    RUN/config.json        protocol "deploy", data, records, signal, score (ScoreSpec), model,
                           fit, deploy, input_shape, validation, provenance
    RUN/thresholds.json    {"default": method, "default_reason": ..., "methods": {name: Threshold}}
    RUN/history.json       loss per epoch
    RUN/metrics.json       in-sample summary (sizes, per-class score statistics, training AUCs)
    RUN/scores.npz         every beat's float score, class, record, and whether it trained
    RUN/loss.png, scores.png, roc_pr.png, reconstructions.png, strip.png
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ecg_edge.device import features
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import ABNORMAL, roc_auc
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.train import thresholds

#: Threshold used when nothing else is asked: the highest that flags 95 % of the training
#: records' V beats (the monitor's stated operating point, with a margin over the 90 % it
#: must keep on new patients); without V beats best F1, without any labelled ectopy the 99th
#: percentile of the validation records' normal scores.
DEFAULT_METHOD = "v_sensitivity"
FALLBACKS = ("best_f1", "percentile")


@dataclass(frozen=True)
class DeployConfig:
    inputs: str = "wearer"
    combine: str = "model+rr"
    baseline_beats: int = 16  # local baseline of the shape term (device.features); 0 = off
    spread_floor: float = 0.02  # noise damping of that baseline's difference; 0 = off
    max_normals_per_record: int = 600  # bounds fit time (the demo calls this on 4 records)
    validation_records: float = 0.25  # fraction of records (at least one) held out for stopping
    k: float = 3.0  # mean_std: mean + k·std
    z: float = 3.0  # zscore: median + z·1.4826·MAD
    q: float = 99.0  # percentile
    v_rate: float = 0.95  # v_sensitivity: share of labelled V beats flagged
    default: str = DEFAULT_METHOD

    def __post_init__(self) -> None:
        features.ScoreSpec(inputs=self.inputs, combine=self.combine,
                           baseline_beats=self.baseline_beats)  # validates all three
        if self.spread_floor < 0:
            raise ValueError(f"spread_floor must be >= 0, got {self.spread_floor}")
        if self.default not in thresholds.METHODS:
            raise ValueError(f"unknown threshold method {self.default!r}; use one of "
                             f"{', '.join(thresholds.METHODS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def score_spec(model_cfg, inputs: str, combine: str, baseline_beats: int = 0,
               spread_floor: float = 0.0) -> features.ScoreSpec:
    """The bundle's score definition for an architecture (TCN: forecast horizon and warm-up)."""
    from ecg_edge.train.models import SCORING, receptive_field

    tcn = model_cfg.arch == "tcn"
    return features.ScoreSpec(inputs=inputs, combine=combine, scoring=SCORING[model_cfg.arch],
                              horizon=model_cfg.horizon if tcn else 1,
                              skip=receptive_field(model_cfg) // 4 if tcn else 0,
                              baseline_beats=baseline_beats,
                              spread_floor=spread_floor if baseline_beats else 0.0)


def predict(model, x: np.ndarray, chunk: int = 2048) -> np.ndarray:
    parts = [np.asarray(model.predict_on_batch(x[i : i + chunk])) for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0,) + x.shape[1:2] + (1,), np.float32)


def split_records(names: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training, validation) record names; validation is empty with a single record."""
    if len(names) < 2:
        return list(names), []
    n_val = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:n_val])
    return [n for n in names if n not in val], val


def run_deploy(folder: str | Path, arch: str, out: str | Path, records: list[str] | None = None,
               dcfg: DeployConfig | None = None, fit_cfg=None, model_cfg=None,
               cfg: SignalConfig | None = None, cache_dir: str | Path | None = None,
               log=print) -> dict:
    """Train the deployable model on the normal beats of ``records`` and write ``out``."""
    from ecg_edge.train.fit import FitConfig, RunFolder, fit_normals
    from ecg_edge.train.models import ModelConfig
    from ecg_edge.train.protocols import _train_rows, as_beats, load_folder_beats, settled

    t_start = time.perf_counter()
    dcfg = dcfg or DeployConfig()
    model_cfg = model_cfg or ModelConfig(arch=arch)
    fit_cfg = fit_cfg or FitConfig()
    cfg = cfg or SignalConfig()
    spec = score_spec(model_cfg, dcfg.inputs, dcfg.combine, dcfg.baseline_beats,
                      dcfg.spread_floor)
    data = load_folder_beats(folder, cfg, cache_dir, log=log)
    names = sorted(data)
    if records:
        unknown = sorted(set(records) - set(names))
        if unknown:
            raise UserError(f"records {', '.join(unknown)} are not in {folder} "
                            f"(it has {', '.join(names)})")
        names = sorted(set(records))
    train_names, val_names = split_records(names, dcfg.validation_records, fit_cfg.seed)
    rng = np.random.default_rng(fit_cfg.seed)
    inputs = {n: features.model_inputs(as_beats(data[n]), spec.inputs) for n in names}
    rows = {n: _train_rows(data[n], dcfg.max_normals_per_record, rng) for n in names}
    x_train = np.concatenate([inputs[n][rows[n]] for n in train_names])
    x_val = np.concatenate([inputs[n][rows[n]] for n in val_names]) if val_names else None
    log(f"[deploy {arch}] {len(x_train)} normal beats from {', '.join(train_names)}; "
        f"validation: {', '.join(val_names) or 'a slice of the training beats'}")
    run = RunFolder(out)
    res = fit_normals(x_train, model_cfg, fit_cfg, x_val=x_val)
    run.save_model(res.model)

    # Every beat's float score, exactly as the device computes it (ScoreSpec.score).
    per: dict[str, dict] = {}
    for n in names:
        d = data[n]
        pred = predict(res.model, inputs[n])
        trained = np.zeros(len(d["cls"]), bool)
        if n in train_names:
            trained[rows[n]] = True
        per[n] = {"score": spec.score(as_beats(d), inputs[n], pred),
                  "cls": d["cls"], "learning": d["learning"], "settled": settled(d),
                  "trained": trained}
    thr, default, reason, val_normals = _calibrate(per, val_names, dcfg)
    run.write_json("thresholds.json", {
        "default": default, "default_reason": reason, "score": spec.to_dict(),
        "variant": "float (Keras); calibrate int8 scores separately",
        "methods": {k: v.to_dict() for k, v in thr.items()}})
    run.write_config({
        "protocol": "deploy", "data": str(folder), "records": names, "arch": arch,
        "signal": cfg.to_dict(), "score": spec.to_dict(), "model": model_cfg.to_dict(),
        "fit": fit_cfg.to_dict(), "deploy": dcfg.to_dict(),
        "input_shape": [int(s) for s in x_train.shape[1:]],
        "validation": {"records": val_names, "train_records": train_names,
                       "by_record": bool(val_names), "n_train": len(x_train),
                       "n_val": 0 if x_val is None else len(x_val)}})
    run.write_json("history.json", res.history)
    all_s = np.concatenate([p["score"] for p in per.values()])
    all_c = np.concatenate([p["cls"] for p in per.values()])
    post = np.concatenate([~p["learning"] for p in per.values()])
    keep = post & np.isin(all_c, ("N",) + ABNORMAL)
    metrics = {"protocol": "deploy", "arch": arch, "model": res.summary, "score": spec.to_dict(),
               "train_seconds": round(res.seconds, 2), "epochs": len(res.history["loss"]),
               "best_epoch": res.best_epoch, "n_val_normals": int(len(val_normals)),
               "in_sample_auc": {"N_vs_V": roc_auc(all_s[keep & (all_c == "N")],
                                                   all_s[keep & (all_c == "V")]),
                                 "N_vs_abnormal": roc_auc(all_s[keep & (all_c == "N")],
                                                          all_s[keep & np.isin(all_c, ABNORMAL)])},
               "note": "in-sample (the model saw these patients); see the mitdb protocol for "
                       "unseen-patient figures",
               "thresholds": {k: v.value for k, v in thr.items()}, "default": default}
    np.savez_compressed(run.path / "scores.npz", score=all_s, cls=all_c,
                        record=np.concatenate([[n] * len(per[n]["score"]) for n in names]),
                        learning=~post,
                        trained=np.concatenate([p["trained"] for p in per.values()]))
    try:
        from ecg_edge.train import plots

        plots.deploy_figures(run.path, res.history, res.model, data, inputs, per, thr[default],
                             names, cfg)
    except ImportError as exc:
        log(f"plots skipped: {exc}")
    metrics["total_seconds"] = round(time.perf_counter() - t_start, 1)
    run.write_json("metrics.json", metrics)
    log(f"[deploy {arch}] {res.summary['params']} params, {metrics['epochs']} epochs in "
        f"{res.seconds:.1f} s; default threshold {default} = {thr[default].value:.4f}; "
        f"{metrics['total_seconds']} s in all")
    return metrics


def _calibrate(per: dict, val_names: list[str], dcfg: DeployConfig):
    """Every method the beats allow; normal-score ones on validation records' normals (beats no
    fit saw)."""
    src = val_names or list(per)
    normals = []
    for n in src:
        p = per[n]
        ok = (p["cls"] == "N") & p["settled"] & ~p["trained"]
        normals.append(p["score"][ok])
    normals = np.concatenate(normals)
    normals = normals[np.isfinite(normals)]
    thr = {"mean_std": thresholds.mean_std(normals, dcfg.k),
           "zscore": thresholds.zscore(normals, dcfg.z),
           "percentile": thresholds.percentile(normals, dcfg.q)}
    s = np.concatenate([p["score"][p["settled"]] for p in per.values()])
    c = np.concatenate([p["cls"][p["settled"]] for p in per.values()])
    lab = np.isin(c, ("N",) + ABNORMAL)
    pos = np.isin(c[lab], ABNORMAL)
    if pos.any() and not pos.all():
        thr["best_f1"] = thresholds.best_f1(s[lab], pos)
    with contextlib.suppress(ValueError):  # fewer than 10 V beats: not offered
        thr["v_sensitivity"] = thresholds.sensitivity(s, c == "V", dcfg.v_rate)
    default = dcfg.default
    reason = "the default" if default == DEFAULT_METHOD else "asked for"
    if default not in thr:
        default = next(m for m in FALLBACKS if m in thr)
        reason = f"{dcfg.default} impossible (too few labelled beats); {default} instead"
    reason += ("; labelled methods use all given records' beats after the EC57 learning "
               "period (300 s)")
    return thr, default, reason, normals


__all__ = ["DeployConfig", "run_deploy", "score_spec", "split_records", "DEFAULT_METHOD"]
