"""The deploy recipe, cross-validated by patient: how a bundle does on wearers it never saw.

A bundle trained on a handful of records says nothing about unseen patients, and its threshold,
calibrated on those same records, is the part that generalises worst. So the whole recipe (train
on normal beats, calibrate the thresholds, int8 conversion with its gate, the bundle) runs once per
fold on the other folds' records, and the held-out records are streamed through the device's own
code path (``device.records.evaluate_folder``: signal path, batched TFLite, scores, the bundle's
thresholds). Every record is scored by a bundle that never saw its patient; the tables of all folds
are pooled, beside the non-learned reference detector on the same records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.main_job import Steps, _stage
from device import reference
from device.bundle import load_bundle
from device.config import SignalConfig
from device.evaluation import EC57_START_S, PACED_RECORDS, BeatTable, summarize, to_jsonable
from device.records import evaluate_folder
from device.report import beat_table
from device.scoring import ModelScorer, reference_scorer
from firmware_bridge.errors import UserError
from firmware_bridge.records import list_wfdb_records

VARIANTS = ("int8", "float32")


@dataclass(frozen=True)
class CvConfig:
    folds: int = 4
    arch: str = "cnn_ae"
    epochs: int = 30
    seed: int = 0
    start_s: float = EC57_START_S
    reference: str = "combined"


def folds_of(names: list[str], k: int) -> list[list[str]]:
    """Round-robin over the sorted names: deterministic, and each fold mixes the record range."""
    if not 2 <= k <= len(names):
        raise UserError(f"{k} folds need between 2 and {len(names)} records; "
                        f"the folder has {len(names)}")
    names = sorted(names)
    return [names[i::k] for i in range(k)]


def recipe_cv(folder: Path, out: Path, cfg: CvConfig, records: list[str] | None = None) -> dict:
    folder, out = Path(folder).resolve(), Path(out).resolve()  # stages run inside out
    names = [p.name for p in list_wfdb_records(folder)
             if p.name not in PACED_RECORDS and (records is None or p.name in records)]
    if not names:
        raise UserError(f"{folder}: no unpaced WFDB records" + (
            f" named {', '.join(records)}" if records else "") + "; give a folder like "
            "/path/to/mitdb")
    folds = folds_of(names, cfg.folds)
    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(cfg.folds + 1)
    tables: dict[str, dict[str, BeatTable]] = {v: {} for v in VARIANTS}
    thresholds: list[dict] = []
    for i, held in enumerate(folds):
        train = sorted(set(names) - set(held))
        d = out / f"fold{i}"
        steps.start(f"fold {i + 1}/{cfg.folds}: recipe on {len(train)} records, "
                    f"held out {', '.join(held)}")
        _stage(["train.cli", "fit", str(folder), "--arch", cfg.arch, "--records",
                ",".join(train), "--epochs", str(cfg.epochs), "--seed", str(cfg.seed),
                "--cache", str(out / "cache"), "--out", str(d / "run")],
               d.with_suffix(".train.log"), f"training fold {i}")
        _stage(["convert.cli", "bundle", str(d / "run"), "--out", str(d / "bundle"),
                "--static-batch", "--per-tensor", "--json"],
               d.with_suffix(".convert.log"), f"conversion of fold {i}")
        bundle = load_bundle(d / "bundle")
        thr = {v: bundle.threshold(v).value for v in VARIANTS}
        for v in VARIANTS:
            tables[v].update(evaluate_folder(folder, bundle.manifest.signal,
                                             ModelScorer(bundle, v), thr[v], cfg.start_s, held))
        thresholds.append({"fold": i, "held_out": held, "train": train, **thr})
        steps.done(", ".join(f"{v} threshold {thresholds[-1][v]:.3f}" for v in VARIANTS))
    steps.start(f"reference detector '{cfg.reference}' on the same records")
    ref_tables = evaluate_folder(folder, SignalConfig(), reference_scorer(cfg.reference),
                          reference.THRESHOLDS[cfg.reference], cfg.start_s, names)
    steps.done()
    result = {"config": asdict(cfg), "folder": str(folder), "folds": thresholds,
              **{v: summarize(tables[v]) for v in VARIANTS},
              "reference": {**summarize(ref_tables), "detector": cfg.reference,
                            "threshold": reference.THRESHOLDS[cfg.reference]}}
    result = to_jsonable(result)
    (out / "cv.json").write_text(json.dumps(result, indent=2))
    (out / "cv.md").write_text(render(result))
    return result


def render(r: dict) -> str:
    c = r["config"]
    lines = [f"# Deploy recipe, {c['folds']}-fold cross-validation by record ({c['arch']})", "",
             f"Records of `{r['folder']}`; each scored by the bundle of the fold that held it "
             f"out; beats after {c['start_s']:g} s (EC57 learning period).", "",
             "| fold | held out | int8 threshold | float32 threshold |", "|---|---|---|---|"]
    lines += [f"| {f['fold']} | {', '.join(f['held_out'])} | {f['int8']:.4f} | "
              f"{f['float32']:.4f} |" for f in r["folds"]]
    for name in (*VARIANTS, "reference"):
        title = (f"reference detector '{r['reference']['detector']}', threshold "
                 f"{r['reference']['threshold']}" if name == "reference" else name)
        lines += ["", f"## {title}", "", beat_table(r[name])]
    return "\n".join(lines) + "\n"
