"""ecg-train: train and evaluate the anomaly models (thin click layer over train/).

TensorFlow is imported only by the commands that train or load a model, so ``--help`` and
argument errors stay fast.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from ecg_edge.device.evaluation import to_jsonable
from ecg_edge.device.features import COMBINE
from ecg_edge.firmware_bridge.errors import BoundaryGroup, UserError, run_cli
from ecg_edge.train import quiet
from ecg_edge.train.thresholds import METHODS

ARCH_CHOICES = ("cnn_ae", "tcn", "lstm_ae")
# TensorFlow's C++ start-up chatter (no CUDA, oneDNN) is noise on a CPU-only box.


def parse_seeds(text: str) -> list[int]:
    """'0..4' -> [0, 1, 2, 3, 4]; '1,3,5' -> [1, 3, 5]."""
    try:
        if ".." in text:
            a, b = text.split("..")
            seeds = list(range(int(a), int(b) + 1))
        else:
            seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: use a range like 0..4 or a list like 0,1,2") from None
    if not seeds:
        raise UserError(f"--seeds {text!r} names no seed")
    return seeds


def _log(as_json: bool):
    """Progress goes to stderr when stdout carries JSON, so the JSON stays parseable."""
    return lambda msg: click.echo(msg, err=as_json)


def _model_options(f):
    f = click.option("--filters", default=None, metavar="W,W,...",
                     help="CNN-AE encoder widths, one per stage (each halves the length); "
                     "default: ModelConfig's.")(f)
    return click.option("--horizon", type=click.IntRange(1), default=8, show_default=True,
                        help="TCN: samples ahead it forecasts.")(f)


def _model_config(arch: str, horizon: int, filters: str | None):
    widths: tuple[int, ...] = ()
    if filters is not None:  # checked before Keras is imported: a typo fails at once
        with contextlib.suppress(ValueError):
            widths = tuple(int(v) for v in filters.split(",") if v.strip())
        if not widths or min(widths) < 1:
            raise UserError(f"--filters {filters!r}: give positive widths like 24,24")
    from ecg_edge.train.models import ModelConfig

    return ModelConfig(arch=arch, horizon=horizon, **({"filters": widths} if widths else {}))


def _fit_options(f):
    f = _model_options(f)
    f = click.option("--epochs", type=click.IntRange(1), default=60, show_default=True)(f)
    f = click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)(f)
    f = click.option("--patience", type=click.IntRange(1), default=6, show_default=True)(f)
    f = click.option("--lr", type=float, default=3e-3, show_default=True)(f)
    return f


def _score_options(f):
    """The local baseline of the score (device.features.ScoreSpec), as the device computes it."""
    f = click.option("--spread-floor", type=click.FloatRange(0), default=0.02,
                     show_default=True, help="Divide that difference by the K beats' spread "
                     "(MAD) where it exceeds this floor: noise damping (0: off).")(f)
    f = click.option("--baseline-beats", type=click.IntRange(0), default=16, show_default=True,
                     help="Subtract the median shape score of the wearer's previous K beats "
                     "(0: off).")(f)
    return f


@click.group(cls=BoundaryGroup)
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Train compact anomaly models on normal beats and evaluate them."""
    quiet.configure(verbose)
    if not verbose and ctx.invoked_subcommand is not None:
        quiet.preload()


@cli.command("ecg5000")
@click.option("--data", "data", type=click.Path(file_okay=False), default="data/ecg5000",
              show_default=True, help="Folder with ECG5000_TRAIN.tsv and ECG5000_TEST.tsv.")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default="cnn_ae", show_default=True)
@click.option("--seeds", default="0..4", show_default=True, help="e.g. 0..4 or 0,1,2")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder.")
@click.option("--limit", type=click.IntRange(1), default=None, hidden=True)
@_fit_options
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def ecg5000_cmd(data, arch, seeds, out, limit, epochs, batch_size, patience, lr, horizon,
                filters, as_json):
    """ECG5000 anomaly protocol: train on 80 % of normals, test on the rest + all abnormal."""
    seed_list = parse_seeds(seeds)
    from ecg_edge.train.fit import FitConfig
    from ecg_edge.train.protocols import run_ecg5000

    fit = FitConfig(epochs=epochs, batch_size=batch_size, patience=patience, learning_rate=lr)
    m = run_ecg5000(data, arch, seed_list, out, fit, _model_config(arch, horizon, filters),
                    log=_log(as_json), limit=limit)
    if as_json:
        click.echo(json.dumps(to_jsonable({k: v for k, v in m.items() if k != "seeds"} | {
            "seeds": [{k: v for k, v in s.items() if k != "report"} for s in m["seeds"]]}),
            indent=2))
    else:
        click.echo(_ecg5000_text(m))


def _ecg5000_text(m: dict) -> str:
    s = m["model"]
    lines = [f"{m['arch']}: {s['params']} params, {s['macs']} MACs/window"
             + (f", receptive field {s['receptive_field']}" if "receptive_field" in s else ""),
             f"ROC-AUC {m['roc_auc_mean']:.4f} ± {m['roc_auc_std']:.4f} over "
             f"{len(m['seeds'])} seeds; mean training time {m['train_seconds_mean']:.1f} s"]
    for e in m["seeds"]:
        lines.append(f"  seed {e['seed']}: ROC-AUC {e['roc_auc']:.4f}  PR-AUC {e['pr_auc']:.4f}"
                     f"  F1@p99 {e['report']['f1']:.3f}  {e['train_seconds']:.1f} s")
    return "\n".join(lines)


@cli.command("mitdb")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default="cnn_ae", show_default=True)
@click.option("--inputs", type=click.Choice(("wearer", "absolute")), default="wearer",
              show_default=True, help="wearer: beat − template and template in wearer units; "
              "absolute: the robust-scaled beat alone (a global model).")
@click.option("--combine", type=click.Choice(("model", "model+rr")), default="model+rr",
              show_default=True, help="Score: model error alone or plus RR prematurity.")
@_score_options
@click.option("--folds", default="all", show_default=True,
              help="'all' (one fold per record) or comma-separated records to hold out.")
@click.option("--max-train-per-record", type=click.IntRange(10), default=1200,
              show_default=True)
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the per-record beat cache (default: the run folder).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder.")
@_fit_options
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def mitdb_cmd(folder, arch, inputs, combine, baseline_beats, spread_floor, folds,
              max_train_per_record, cache_dir, seed, out, epochs, batch_size, patience, lr,
              horizon, filters, as_json):
    """MIT-BIH leave-records-out: model beside the reference detectors on unseen patients."""
    from ecg_edge.train.fit import FitConfig
    from ecg_edge.train.protocols import MitdbConfig, run_mitdb

    fold_list = [] if folds == "all" else [f.strip() for f in folds.split(",") if f.strip()]
    mcfg = MitdbConfig(inputs=inputs, combine=combine, baseline_beats=baseline_beats,
                       spread_floor=spread_floor, max_train_per_record=max_train_per_record,
                       folds=fold_list)
    fit = FitConfig(epochs=epochs, batch_size=batch_size, patience=patience, learning_rate=lr,
                    seed=seed)
    m = run_mitdb(folder, arch, out, mcfg, fit, _model_config(arch, horizon, filters),
                  cache_dir=cache_dir, log=_log(as_json))
    if as_json:
        click.echo(json.dumps(to_jsonable({k: v for k, v in m.items() if k != "folds"}),
                              indent=2))
    else:
        click.echo(_mitdb_text(m))


def _mitdb_text(m: dict) -> str:
    lines = [f"{m['arch']} ({m['inputs']} inputs, score {m['combine']}): "
             f"{m['model']['params']} params, {m['model']['macs']} MACs/window",
             f"{'scorer':18s} {'N-vs-V':>8s} {'N-vs-abn':>9s}   (gross; mean per record)"]
    for name, auc in m["gross_auc"].items():
        mr = m["mean_record_auc"][name]
        lines.append(f"{name:18s} {_n(auc['N_vs_V']):>8s} {_n(auc['N_vs_abnormal']):>9s}   "
                     f"({_n(mr['N_vs_V'])}; {_n(mr['N_vs_abnormal'])})")
    return "\n".join(lines)


def _deploy_text(m: dict) -> str:
    s, auc = m["model"], m["in_sample_auc"]
    lines = [f"deploy {m['arch']}: {s['params']} params, {s['macs']} MACs/window; "
             f"{m['epochs']} epochs (best {m['best_epoch']}) in {m['train_seconds']:.1f} s",
             f"score {m['score']['inputs']} / {m['score']['combine']}; in-sample AUC N-vs-V "
             f"{_n(auc['N_vs_V'])}, N-vs-abnormal {_n(auc['N_vs_abnormal'])} (not a test)"]
    for k, v in m["thresholds"].items():
        lines.append(f"  threshold {k:10s} {v:.4f}" + ("  (default)" if k == m["default"] else ""))
    return "\n".join(lines)


def _n(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.4f}"


@cli.command("fit")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default="cnn_ae", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder.")
@click.option("--records", default="all", show_default=True,
              help="'all' or comma-separated record names of FOLDER to train on.")
@click.option("--inputs", type=click.Choice(("wearer", "absolute")), default="wearer",
              show_default=True)
@_score_options
@click.option("--combine", type=click.Choice(COMBINE), default="model+rr",
              show_default=True, help="Score the device computes (device.features.ScoreSpec).")
@click.option("--max-normals-per-record", type=click.IntRange(10), default=600,
              show_default=True, help="Caps fit time (the demo runs this on 4 records).")
@click.option("--threshold", "default_method",
              type=click.Choice(METHODS), default="v_sensitivity", show_default=True,
              help="Default threshold method (every one the labelled beats allow is written "
              "to thresholds.json).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the per-record beat cache (default: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@_model_options
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--patience", type=click.IntRange(1), default=4, show_default=True)
@click.option("--lr", type=float, default=3e-3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def fit_cmd(folder, arch, out, records, inputs, baseline_beats, spread_floor, combine,
            max_normals_per_record, default_method, cache_dir, seed, horizon, filters, epochs,
            batch_size, patience, lr, as_json):
    """Train the deployable model on the normal beats of FOLDER's records; calibrate thresholds.

    Writes RUN/model.keras, config.json (protocol "deploy"), thresholds.json, history.json,
    metrics.json, scores.npz and the plots, for convert/ to read. No patient is held out for
    testing here: generalisation figures come from `ecg-train mitdb`.
    """
    from ecg_edge.train.deploy import DeployConfig, run_deploy
    from ecg_edge.train.fit import FitConfig

    rec_list = None if records == "all" else [r.strip() for r in records.split(",") if r.strip()]
    dcfg = DeployConfig(inputs=inputs, combine=combine, baseline_beats=baseline_beats,
                        spread_floor=spread_floor,
                        max_normals_per_record=max_normals_per_record, default=default_method)
    fit = FitConfig(epochs=epochs, batch_size=batch_size, patience=patience, learning_rate=lr,
                    seed=seed)
    m = run_deploy(folder, arch, out, rec_list, dcfg, fit, _model_config(arch, horizon, filters),
                   cache_dir=cache_dir, log=_log(as_json))
    if as_json:
        click.echo(json.dumps(to_jsonable(m), indent=2))
    else:
        click.echo(f"{out}: {m['arch']} {m['model']['params']} params; default threshold "
                   f"{m['default']} = {m['thresholds'][m['default']]:.4f}; "
                   f"{m['total_seconds']} s")


@cli.command("rescore")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--data", "folder", type=click.Path(file_okay=False), required=True,
              help="The WFDB folder the run was made on.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None)
@click.option("--boot", type=click.IntRange(0), default=200, show_default=True,
              help="Paired bootstrap resamples over records (0: none).")
@click.option("--baseline-beats", default="16", show_default=True,
              help="Comma-separated K of the local-baseline variants (median of the previous "
              "K beats' shape term subtracted).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def rescore_cmd(run, folder, cache_dir, boot, baseline_beats, as_json):
    """Compare score combinations of a finished mitdb run beside the reference detectors."""
    from ecg_edge.train.rescore import rescore, rescore_text

    try:
        ks = tuple(int(k) for k in baseline_beats.split(",") if k.strip())
    except ValueError:
        raise UserError(f"--baseline-beats {baseline_beats!r}: use e.g. 16 or 8,16,32") from None
    if any(k < 1 for k in ks):
        raise UserError("--baseline-beats: each K must be at least 1")
    r = rescore(run, folder, cache_dir, n_boot=boot, baselines=ks, log=_log(True))
    if as_json:
        click.echo(json.dumps(to_jsonable(r), indent=2))
    else:
        click.echo(rescore_text(r))


@cli.command("evaluate")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_cmd(run: str, as_json: bool) -> None:
    """Show the metrics of a finished run folder."""
    from ecg_edge.train.fit import RunFolder

    path = Path(run)
    if not path.is_dir():
        raise UserError(f"{run}: no such run folder")
    m = RunFolder(path).read_json("metrics.json")
    if as_json:
        click.echo(json.dumps(m, indent=2))
    elif m.get("protocol") == "ecg5000":
        click.echo(_ecg5000_text(m))
    elif m.get("protocol") == "mitdb":
        click.echo(_mitdb_text(m))
    elif m.get("protocol") == "deploy":
        click.echo(_deploy_text(m))
    else:
        raise UserError(f"{run}/metrics.json: unknown protocol {m.get('protocol')!r}")


@cli.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def compare_cmd(runs: tuple[str, ...], as_json: bool) -> None:
    """One table over several run folders (ECG5000: AUC mean ± std; MIT-BIH: gross AUCs)."""
    from ecg_edge.train.fit import RunFolder

    rows = []
    for run in runs:
        if not Path(run).is_dir():
            raise UserError(f"{run}: no such run folder")
        m = RunFolder(run).read_json("metrics.json")
        row = {"run": run, "protocol": m.get("protocol"), "arch": m.get("arch"),
               "params": m["model"]["params"], "macs": m["model"]["macs"]}
        if m.get("protocol") == "ecg5000":
            row.update(roc_auc_mean=m["roc_auc_mean"], roc_auc_std=m["roc_auc_std"],
                       seeds=len(m["seeds"]), train_seconds_mean=m["train_seconds_mean"])
        elif m.get("protocol") == "deploy":
            row.update(inputs=m["score"]["inputs"], combine=m["score"]["combine"],
                       gross_auc={"in-sample (not a test)": m["in_sample_auc"]})
        else:
            row.update(inputs=m["inputs"], combine=m["combine"], gross_auc=m["gross_auc"])
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        head = f"{r['run']}: {r['arch']} {r['params']} params {r['macs']} MACs"
        if r["protocol"] == "ecg5000":
            click.echo(f"{head}  ROC-AUC {r['roc_auc_mean']:.4f} ± {r['roc_auc_std']:.4f} "
                       f"({r['seeds']} seeds, {r['train_seconds_mean']:.1f} s/fit)")
        else:
            click.echo(f"{head}  ({r['inputs']}, {r['combine']})")
            for name, auc in r["gross_auc"].items():
                click.echo(f"    {name:18s} N-vs-V {_n(auc['N_vs_V'])}  "
                           f"N-vs-abnormal {_n(auc['N_vs_abnormal'])}")


@cli.command("summary")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), multiple=True)
@click.option("--length", type=click.IntRange(8), default=140, show_default=True)
@click.option("--channels", type=click.IntRange(1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def summary_cmd(arch, length, channels, as_json) -> None:
    """Parameters, MACs per window and (TCN) receptive field of each architecture."""
    from ecg_edge.train.models import ModelConfig, build_model, model_summary

    rows = [model_summary(build_model(ModelConfig(arch=a), length, channels), ModelConfig(arch=a))
            for a in (arch or ARCH_CHOICES)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            click.echo(f"{r['arch']:8s} {r['params']:6d} params  {r['macs']:8d} MACs/window  "
                       f"~{r['int8_kb']} KB int8" + (f"  receptive field {r['receptive_field']}"
                                                     if "receptive_field" in r else ""))


@cli.command("rhythm-model")
@click.argument("cinc", type=click.Path(exists=True, file_okay=False))
@click.argument("mitdb", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for rhythm.tflite and rhythm-model.json (figures).")
@click.option("--into", "into", type=click.Path(exists=True, file_okay=False), default=None,
              help="Attach the model to this bundle folder (re-writes its manifest).")
@click.option("--limit", type=click.IntRange(20), default=None,
              help="Only the first N strips (a quick run).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Training epochs.")
@click.option("--ecg/--no-ecg", default=True, show_default=True,
              help="Also the ECG model (1-D CNN over the band-passed signal) for the strip call.")
@click.option("--ecg-epochs", type=click.IntRange(1), default=None,
              help="Training epochs of the ECG model.")
@click.option("--settings", type=click.Choice(["keep", "chosen"]), default="keep",
              show_default=True,
              help="keep: the bundle's AF settings stay as they are (tuned through the device "
                   "path); chosen: this run's AF episode settings replace them.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def rhythm_model_cmd(cinc, mitdb, out, into, limit, epochs, ecg, ecg_epochs, settings,
                     as_json) -> None:
    """Train the AF model on cinc2017 strips and MIT-BIH DS1 (record-grouped CV, out-of-fold
    figures beside the reference detector's), convert it to int8 behind a parity gate and
    attach it to a bundle."""
    from ecg_edge.train.rhythm_model import RhythmModelConfig, make

    given = {"epochs": epochs, "ecg_epochs": ecg_epochs}
    mcfg = RhythmModelConfig(ecg=ecg, **{k: v for k, v in given.items() if v is not None})
    result = make(cinc, mitdb, out, into, limit, mcfg, _log(as_json), settings)
    if as_json:
        click.echo(json.dumps(to_jsonable(result), indent=2))
    else:
        p = result["parity"]
        click.echo(f"int8 {result['tflite_bytes']} bytes, parity max error "
                   f"{p['max_abs_error']:.4f}, decision agreement {p['decision_agreement']:.4f}"
                   + (f"; ECG model int8 {result['ecg_tflite_bytes']} bytes" if
                      "ecg_tflite_bytes" in result else "")
                   + (f"; attached to {result['bundle']}" if "bundle" in result else ""))


@cli.command("rhythm-attach")
@click.argument("source", type=click.Path(exists=True))
@click.argument("into", type=click.Path(exists=True, file_okay=False))
def rhythm_attach_cmd(source, into) -> None:
    """Copy the AF model (and its AF settings) of bundle SOURCE into bundle folder INTO, e.g.
    after the beat model's bundle was re-made; no retraining."""
    from ecg_edge.train.rhythm_model import attach_from

    click.echo(f"rhythm model attached: {attach_from(source, into)}")


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
