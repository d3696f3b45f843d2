"""ecg-convert: TFLite export, parity report, gate, diagnosis, target checks and the bundle.

A thin click layer over :mod:`convert.pipeline`. TensorFlow is imported only inside commands,
so ``--help`` stays fast. Progress goes to stderr when ``--json`` puts the result on stdout.
A failed gate exits with status 1 and one line per failed check; bad input exits with 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ecg_edge.device.evaluation import to_jsonable
from ecg_edge.firmware_bridge.errors import BoundaryGroup, run_cli
from ecg_edge.train import quiet


def _log(as_json: bool):
    return lambda msg: click.echo(msg, err=as_json)


def _run_options(f):
    for opt in reversed([
        click.argument("run", type=click.Path(exists=True, file_okay=False)),
        click.option("--seed", type=int, default=None,
                     help="ECG5000 runs: model seed (default: the best test ROC-AUC)."),
        click.option("--data", type=click.Path(file_okay=False), default=None,
                     help="Data folder, when the run's is elsewhere."),
        click.option("--calibration-count", type=click.IntRange(1), default=300,
                     show_default=True, help="Representative windows for int8 calibration."),
        click.option("--calibration-seed", type=int, default=0, show_default=True),
        click.option("--static-batch", is_flag=True,
                     help="Fix the batch to 1 (Edge TPU, TFLite-Micro; smaller file)."),
        click.option("--per-tensor", is_flag=True,
                     help="Per-tensor instead of per-channel weight scales (smaller file)."),
        click.option("--int16", "int16", is_flag=True,
                     help="int16 activations with int8 weights instead of full int8."),
        click.option("--keep-float", multiple=True,
                     help="Tensor name whose op stays float (repeat; see 'diagnose')."),
        click.option("--no-strip", is_flag=True, help="Keep tensor names in the files."),
        click.option("--unroll", is_flag=True,
                     help="Unroll recurrent layers before integer quantization."),
        click.option("--cache", type=click.Path(file_okay=False), default=None,
                     help="Beat cache folder for deployable MIT-BIH runs."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]):
        f = opt(f)
    return f


def _tol_options(f):
    for opt in reversed([
        click.option("--max-delta-auc", type=float, default=0.005, show_default=True),
        click.option("--max-delta-pr-auc", type=float, default=0.02, show_default=True),
        click.option("--min-agreement", type=float, default=0.99, show_default=True),
        click.option("--max-size-ratio", type=float, default=0.35, show_default=True,
                     help="int8 bytes / float32 bytes; 0 turns the check off."),
        click.option("--min-spearman", type=float, default=0.98, show_default=True),
    ]):
        f = opt(f)
    return f


def _tolerances(kw):
    from ecg_edge.convert.gate import Tolerances

    return Tolerances(max_delta_auc=kw["max_delta_auc"], max_delta_pr_auc=kw["max_delta_pr_auc"],
                      min_agreement=kw["min_agreement"],
                      max_size_ratio=kw["max_size_ratio"] or None,
                      min_score_spearman=kw["min_spearman"])


def _session(kw):
    from ecg_edge.convert.pipeline import Session

    return Session.open(kw["run"], seed=kw["seed"], data=kw["data"],
                        calibration_count=kw["calibration_count"],
                        calibration_seed=kw["calibration_seed"], cache_dir=kw["cache"],
                        log=_log(kw["as_json"]))


def _base(kw):
    from ecg_edge.convert.export import QuantOptions

    return QuantOptions(variant="int16x8" if kw["int16"] else "int8",
                        static_batch=kw["static_batch"], per_channel=not kw["per_tensor"],
                        keep_float=tuple(kw["keep_float"]), strip=not kw["no_strip"],
                        unroll=kw["unroll"],
                        calibration_count=kw["calibration_count"],
                        calibration_seed=kw["calibration_seed"])


def _convert_all(session, kw, with_dynamic=True):
    """float32 (and dynamic-range) with the same batch/strip settings, then the integer one."""
    from ecg_edge.convert.export import QuantOptions

    base = _base(kw)
    names = ["float32"] + (["dynamic"] if with_dynamic else [])
    for n in names:
        session.convert(n, QuantOptions(**{**base.to_dict(), "variant": n, "keep_float": ()}))
    session.convert("int8", base)
    return names + ["int8"]


def target_checks(session, name: str = "int8", log=print, windows: int = 32) -> dict:
    """Edge TPU report and tflite-micro run of ``session.variants[name]``.

    tflite-micro runs ``windows`` representative (normal) windows and ``windows`` evaluation
    windows; its outputs are compared with LiteRT's reference kernels (the criterion), and
    reported beside LiteRT's optimized builtin kernels and XNNPack (what the device runs); on
    ECG5000 runs (whose window scores stand alone) also the decisions at the variant's
    threshold.
    """
    import numpy as np

    from ecg_edge.convert.export import tflite_predict
    from ecg_edge.convert.targets import edgetpu_report, litert_reference, tflm_check

    v = session.variants[name]
    src = session.source
    x = np.concatenate([session.rep[:windows], src.eval_x[:windows]]).astype(np.float32)
    log(f"target checks: Edge TPU rules, tflite-micro on {len(x)} windows ...")
    scored = src.kind == "ecg5000"
    others = {"litert_builtin": tflite_predict(v.model, x, xnnpack=False),
              "litert_xnnpack": tflite_predict(v.model, x, xnnpack=True)}
    tflm = tflm_check(v.model, x, litert_reference(v.model, x), max_windows=len(x),
                      score=src.scores if scored else None,
                      threshold=v.run.threshold["value"] if scored else None, others=others)
    log(f"  tflite-micro: {'runs' if tflm.get('ok') else 'does not run'}"
        + (f", arena {tflm.get('arena_bytes')} bytes, {tflm.get('max_diff_in_steps')} steps "
           "from LiteRT's reference kernels" if tflm.get("ok") else ""))
    return {"edgetpu": edgetpu_report(v.model), "tflm": tflm}


def _emit(kw, data: dict, text: str) -> None:
    if kw["as_json"]:
        click.echo(json.dumps(to_jsonable(data), indent=2))
    else:
        click.echo(text)


@click.group(cls=BoundaryGroup)
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow's own output (otherwise in the run's tensorflow.log).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Convert trained ecg-edge models to TFLite, check them and bundle them for the device."""
    quiet.configure(verbose)
    if not verbose and ctx.invoked_subcommand is not None:
        quiet.preload()


@cli.command()
@_run_options
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--c-array", is_flag=True, help="Also write the int8 model as a C array.")
def export(**kw):
    """float32, dynamic-range and int8 TFLite files of a run, with calibration.json."""
    from ecg_edge.convert.pipeline import write_models
    from ecg_edge.convert.targets import write_c_array

    s = _session(kw)
    _convert_all(s, kw)
    files = write_models(s, Path(kw["out"]))
    if kw["c_array"]:
        for p in write_c_array(s.variants["int8"].model, Path(kw["out"]) / "c", "ecg_model"):
            files[p.name] = p
    sizes = {n: p.stat().st_size for n, p in files.items()}
    _emit(kw, {"files": {n: str(p) for n, p in files.items()}, "bytes": sizes},
          "\n".join(f"{p}  {sizes[n]} bytes" for n, p in files.items()))


@cli.command()
@_run_options
@click.option("--out", type=click.Path(file_okay=False), required=True)
def parity(**kw):
    """Keras float vs TFLite float32 / dynamic / int8 on the run's evaluation data."""
    from ecg_edge.convert.parity import markdown, write_report

    s = _session(kw)
    names = _convert_all(s, kw)
    rep = s.report(names)
    files = write_report(Path(kw["out"]), rep, s.runs(names), s.source.eval_positive)
    _emit(kw, rep, markdown(rep) + "\n" + "\n".join(str(p) for p in files.values()))


@cli.command()
@_run_options
@_tol_options
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Also write the parity report here.")
def gate(**kw):
    """Parity, then fail (exit 1) when the int8 model is outside tolerance."""
    from ecg_edge.convert import gate as gate_mod
    from ecg_edge.convert.export import ConversionError
    from ecg_edge.convert.parity import write_report

    s = _session(kw)
    try:
        names = _convert_all(s, kw, with_dynamic=False)
    except ConversionError as exc:
        click.echo(f"gate failed: no int8 model: {exc}", err=True)
        sys.exit(1)
    rep = s.report(names)
    checks = gate_mod.evaluate(rep, _tolerances(kw), "int8")
    if kw["out"]:
        write_report(Path(kw["out"]), rep, s.runs(names), s.source.eval_positive)
    failed = [c for c in checks if not c.ok]
    _emit(kw, {"passed": not failed, "checks": [c.to_dict() for c in checks]},
          "\n".join(("ok    " if c.ok else "FAIL  ") + c.message for c in checks))
    if failed:
        click.echo(f"gate failed: {len(failed)} of {len(checks)} checks: "
                   + "; ".join(c.message for c in failed), err=True)
        sys.exit(1)


@cli.command()
@_run_options
@_tol_options
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--layers", type=click.IntRange(1), default=10, show_default=True,
              help="Worst layers to list.")
@click.option("--debug-windows", type=click.IntRange(1), default=64, show_default=True)
def diagnose(**kw):
    """Per-layer int8 error (QuantizationDebugger) and every fix-up, each through the gate."""
    from ecg_edge.convert import diagnose as diag
    from ecg_edge.convert.export import QuantOptions, converter, has_lstm
    from ecg_edge.convert.pipeline import fixup_markdown, fixups

    log = _log(kw["as_json"])
    s = _session(kw)
    base = _base(kw)
    s.convert("float32", QuantOptions(**{**base.to_dict(), "variant": "float32",
                                         "keep_float": ()}))
    layers, note = [], ""
    if has_lstm(s.model) and not base.unroll:
        note = ("per-layer statistics skipped: the QuantizationDebugger calibrates through the "
                "same full-integer conversion that crashes on the LSTM while-loop")
    else:
        log("per-layer error (QuantizationDebugger) ...")
        with quiet.tf_output():
            conv = converter(s.model, QuantOptions(**{**base.to_dict(), "keep_float": ()}),
                             s.rep)
            layers = diag.layer_errors(conv, s.rep[: kw["debug_windows"]])
    rows = fixups(s, _tolerances(kw), layers, base=base)
    out = Path(kw["out"])
    out.mkdir(parents=True, exist_ok=True)
    result = {"source": s.source.describe(), "layers": layers[: kw["layers"]],
              "fixups": rows, "note": note}
    (out / "diagnose.json").write_text(json.dumps(to_jsonable(result), indent=2) + "\n")
    text = ("## Worst layers (rmse / quantization step)\n\n"
            + (diag.markdown(layers, kw["layers"]) if layers else note + "\n")
            + "\n## Fix-ups\n\n" + fixup_markdown(rows))
    (out / "diagnose.md").write_text(text)
    _emit(kw, result, text)


@cli.command()
@_run_options
@click.option("--out", type=click.Path(file_okay=False), required=True)
def targets(**kw):
    """Edge TPU compatibility and the TFLite-Micro run (arena size) of the int8 model; C array."""
    from ecg_edge.convert.targets import write_c_array

    log = _log(kw["as_json"])
    s = _session(kw)
    s.convert("int8", _base(kw))
    q = s.variants["int8"].model
    res = target_checks(s, "int8", log)
    out = Path(kw["out"])
    res["c_array"] = [str(p) for p in write_c_array(q, out, "ecg_model")]
    (out / "model_int8.tflite").write_bytes(q)
    (out / "targets.json").write_text(json.dumps(to_jsonable(res), indent=2) + "\n")
    e, t = res["edgetpu"], res["tflm"]
    _emit(kw, res, f"Edge TPU: {'compatible' if e['compatible'] else 'NOT compatible'} "
          f"({e['ops_mapped_before_first_cpu_op']}/{e['ops_total']} ops before the first CPU op;"
          f" ops {e['op_counts']})\n"
          + "".join(f"  op {p['op_index']} {p['op']}: {'; '.join(p['reasons'][:2])}\n"
                    for p in e["problems"][:8])
          + (f"TFLite-Micro: runs, arena {t['arena_bytes']} bytes; vs LiteRT reference kernels "
             f"max {t.get('max_diff_in_steps')} output steps, decisions differing "
             f"{t.get('decisions_differ', 'n/a')} ({'agrees' if t.get('agrees') else 'DIFFERS'}"
             f"); " + "; ".join(f"vs {k}: max {o['max_diff_in_steps']} steps, decisions "
                                f"differing {o.get('decisions_differ', 'n/a')}"
                                for k, o in t.get("others", {}).items())
             if t.get("ok") else
             f"TFLite-Micro: does not run ({t.get('error')}; unsupported ops: "
             f"{t.get('unsupported_ops')})"))


@cli.command()
@_run_options
@_tol_options
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Bundle folder (the archive is written beside it).")
@click.option("--force", is_flag=True, help="Write the bundle even when the gate fails.")
def bundle(**kw):
    """Export, gate, target checks and the self-describing bundle (folder + .tar.gz)."""
    from ecg_edge.convert import gate as gate_mod
    from ecg_edge.convert.bundle_writer import write_bundle
    from ecg_edge.convert.parity import write_report

    log = _log(kw["as_json"])
    s = _session(kw)
    names = _convert_all(s, kw, with_dynamic=False)
    rep = s.report(names)
    checks = gate_mod.evaluate(rep, _tolerances(kw), "int8")
    failed = [c for c in checks if not c.ok]
    out = Path(kw["out"])
    write_report(out.with_name(out.name + "-report"), rep, s.runs(names), s.source.eval_positive)
    if failed and not kw["force"]:
        click.echo("bundle not written, gate failed: " + "; ".join(c.message for c in failed),
                   err=True)
        sys.exit(1)
    tg = target_checks(s, "int8", log)
    tg["tflm"].pop("allocations", None)
    log("writing and verifying the bundle ...")
    res = write_bundle(s, out, report=rep, checks=checks, targets=tg)
    res["gate_passed"] = not failed
    _emit(kw, res, f"bundle {res['folder']} and {res['archive']} written and verified"
          + ("" if not failed else " (gate FAILED, written with --force)"))


@cli.command()
@click.argument("bundle_path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True)
def check(bundle_path, as_json):
    """Load a bundle as the device does: hash, schema, quantization and golden vectors."""
    from ecg_edge.convert.bundle_writer import verify

    res = verify(bundle_path)
    kw = {"as_json": as_json}
    _emit(kw, res, f"{bundle_path}: ok ({res['golden_windows']} golden windows, max |Δ| "
          f"{res['golden_max_abs_diff']:g}, {res['runtime']})")


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
