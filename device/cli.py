"""ecg-device: the TensorFlow-free command line of the device side."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path

import click

from device import reference
from device.bundle import load_bundle
from device.config import SignalConfig
from device.evaluation import EC57_START_S, evaluate_record, summarize, to_jsonable
from device.events import EpisodeConfig, EventWriter, read_beat_events
from device.install import install_bundle
from device.interpreter import EDGETPU_LIBS, available_runtimes
from device.monitor import Monitor, record_blocks, run_blocks
from device.records import evaluate_folder, read_rhythm
from device.report import beat_table
from device.scoring import ModelScorer, reference_scorer
from device.selftest import selftest
from firmware_bridge.errors import UserError, run_cli
from firmware_bridge.records import list_wfdb_records, read_record
from firmware_bridge.transport import open_stream


@click.group()
def cli() -> None:
    """ECG anomaly detection on the device: signal path, reference detectors, evaluation."""


@cli.command("reference")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--detector", type=click.Choice(reference.DETECTORS), default="combined",
              show_default=True)
@click.option("--threshold", type=float, default=None,
              help="Flag threshold (default: the detector's stated one).")
@click.option("--start", "start_s", type=float, default=EC57_START_S, show_default=True,
              help="Seconds of each record left out as learning period (EC57: 300).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def reference_cmd(folder: str, detector: str, threshold: float | None, start_s: float,
                  as_json: bool) -> None:
    """Run a non-learned reference detector over a folder of annotated WFDB records."""
    threshold = reference.THRESHOLDS[detector] if threshold is None else threshold
    tables = evaluate_folder(folder, SignalConfig(), reference_scorer(detector), threshold,
                             start_s)
    summary = summarize(tables)
    summary.update(detector=detector, threshold=threshold, start_s=start_s)
    if as_json:
        click.echo(json.dumps(to_jsonable(summary), indent=2))
    else:
        click.echo(f"reference detector '{detector}', threshold {threshold}, "
                   f"beats after {start_s:g} s\n")
        click.echo(beat_table(summary))


@contextlib.contextmanager
def _event_sink(path: str | None, quiet: bool):
    """Events to stdout (unless quiet) and/or a file, closed however the stream ends."""
    with contextlib.ExitStack() as stack:
        streams = [] if quiet else [sys.stdout]
        if path:
            streams.append(stack.enter_context(open(path, "w")))  # noqa: SIM115
        yield EventWriter(*streams)


#: The DS1-trained beat classifier shipped with the package (``ecg-bench ds1-cv --ship``).
SHIPPED_BUNDLE = Path(__file__).resolve().parent / "bundles" / "ds1"


def _scorer_and_threshold(bundle_path, variant, ref, threshold, threads, edgetpu):
    """(scorer, threshold, signal config, episode config, info) from a bundle or a reference:
    the shipped DS1 bundle unless a bundle or a reference detector is named."""
    if bundle_path is not None and ref is not None:
        raise UserError("give either --bundle or --reference, not both")
    if bundle_path is None and ref is None:
        bundle_path = SHIPPED_BUNDLE
    if bundle_path is None:
        stated = reference.THRESHOLDS[ref]
        cfg, episodes, info = SignalConfig(), EpisodeConfig(), {"scorer": f"reference:{ref}"}
        scorer = reference_scorer(ref)
    else:
        bundle = load_bundle(bundle_path)
        scorer = ModelScorer(bundle, variant, threads=threads, edgetpu=edgetpu)
        stated = bundle.threshold(variant).value
        cfg = bundle.manifest.signal
        episodes = EpisodeConfig(**bundle.manifest.episodes)
        info = {"scorer": f"model:{bundle.manifest.architecture}:{variant}",
                "bundle_sha256": bundle.manifest.model.sha256[:12],
                "runtime": scorer.info.runtime, "delegate": scorer.info.delegate}
    if threshold is not None and threshold != stated:
        click.echo(f"warning: threshold {threshold} overrides the calibrated {stated}", err=True)
    return scorer, stated if threshold is None else threshold, cfg, episodes, info


def scoring_options(f):
    """Options shared by replay and run: what scores the beats."""
    for opt in reversed([
        click.option("--bundle", "bundle_path", type=click.Path(), default=None,
                     help="Model bundle (folder or .tar.gz); default: the shipped DS1 beat "
                          "classifier (device/bundles/ds1)."),
        click.option("--variant", type=click.Choice(["int8", "float32"]), default="int8",
                     show_default=True, help="Which of the bundle's models to run."),
        click.option("--reference", "ref", type=click.Choice(reference.DETECTORS),
                     default=None,
                     help="Score with this non-learned reference detector instead of a bundle."),
        click.option("--threshold", type=float, default=None,
                     help="Override the flag threshold (warns: the bundle's is calibrated)."),
        click.option("--threads", type=int, default=1, show_default=True),
        click.option("--edgetpu", is_flag=True, help="Use a Coral Edge TPU (CPU if absent)."),
        click.option("--events", "events_path", type=click.Path(dir_okay=False), default=None,
                     help="Also write the events (JSON lines) to this file."),
        click.option("--quiet", is_flag=True, help="No events on stdout, only the summary."),
    ]):
        f = opt(f)
    return f


@cli.command("replay")
@click.argument("record", type=click.Path())
@scoring_options
@click.option("--lead", default=None, help="Lead name or index (default: MLII or the first).")
@click.option("--fs", type=float, default=None, help="Sample rate for CSV/NPY records (Hz).")
@click.option("--uv-per-count", type=float, default=1.0, show_default=True,
              help="Gain of integer CSV/NPY samples.")
@click.option("--block-s", type=float, default=10.0, show_default=True,
              help="Seconds of signal per block fed to the monitor.")
@click.option("--duration", type=float, default=None,
              help="Replay only the first this many seconds.")
def replay_cmd(record, bundle_path, variant, ref, threshold, threads, edgetpu, events_path,
               quiet, lead, fs, uv_per_count, block_s, duration):
    """Replay a record (WFDB, CSV, NPY) through the streaming monitor as fast as possible."""
    rec = read_record(record, fs=fs, uv_per_count=uv_per_count)
    if duration is not None:
        rec.counts = rec.counts[: int(round(duration * rec.fs))]
    scorer, thr, cfg, episodes, info = _scorer_and_threshold(
        bundle_path, variant, ref, threshold, threads, edgetpu)
    with _event_sink(events_path, quiet) as writer:
        monitor = Monitor(cfg, scorer, thr, writer, episodes, info={"source": rec.name, **info})
        summary = run_blocks(monitor, record_blocks(rec, lead, block_s))
    if quiet:
        click.echo(json.dumps(to_jsonable(summary)))


@cli.command("run")
@click.argument("port")
@scoring_options
@click.option("--ascii-fs", type=float, default=None,
              help="The front-end prints ASCII lines at this rate (Hz); default: binary v1.")
@click.option("--ascii-uv-per-count", type=float, default=1.0, show_default=True)
@click.option("--baudrate", type=int, default=115200, show_default=True)
@click.option("--channel", type=int, default=0, show_default=True,
              help="Which front-end channel carries the ECG lead.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--no-reconnect", is_flag=True, help="End when the port goes away.")
def run_cmd(port, bundle_path, variant, ref, threshold, threads, edgetpu, events_path, quiet,
            ascii_fs, ascii_uv_per_count, baudrate, channel, duration, no_reconnect):
    """Monitor a serial front-end until stopped (SIGINT/SIGTERM end it with a summary)."""
    scorer, thr, cfg, episodes, info = _scorer_and_threshold(
        bundle_path, variant, ref, threshold, threads, edgetpu)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with _event_sink(events_path, quiet) as writer:
        monitor = Monitor(cfg, scorer, thr, writer, episodes, channel=channel,
                          info={"source": port, **info})
        t_end = None if duration is None else time.monotonic() + duration
        with open_stream(port, ascii_fs=ascii_fs, ascii_uv_per_count=ascii_uv_per_count,
                         baudrate=baudrate, reconnect=not no_reconnect) as stream:
            for item in stream.items(heartbeat_s=0.2):
                if stop.is_set() or (t_end is not None and time.monotonic() > t_end):
                    break
                if item is not None:
                    monitor.feed(item)
            link = stream.stats().as_dict()
        monitor.info["link"] = {k: link[k] for k in ("bytes_in", "crc_errors", "bytes_skipped",
                                                     "samples_lost", "gaps", "reconnects")}
        summary = monitor.finish()
    if quiet:
        click.echo(json.dumps(to_jsonable(summary)))


@cli.command("evaluate-folder")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--bundle", "bundle_path", type=click.Path(), required=True)
@click.option("--variant", "variants", type=click.Choice(["int8", "float32"]), multiple=True,
              default=("int8", "float32"), show_default=True)
@click.option("--records", default=None,
              help="Comma-separated record names (default: all annotated, unpaced).")
@click.option("--exclude-trained", is_flag=True,
              help="Leave out the records the bundle's model was trained on.")
@click.option("--start", "start_s", type=float, default=EC57_START_S, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate_folder_cmd(folder, bundle_path, variants, records, exclude_trained, start_s,
                        threads, as_json):
    """Beat-level EC57 table of a bundle's models on a folder of records, side by side."""
    bundle = load_bundle(bundle_path)
    names = records.split(",") if records else None
    if exclude_trained:
        m = bundle.manifest
        trained = set(m.calibration.get("records") or m.provenance.get("records") or [])
        if not trained:
            raise UserError(f"{bundle_path}: the manifest does not say which records the model "
                            "was trained on; give --records instead")
        names = [p.name for p in list_wfdb_records(folder)
                 if p.name not in trained and (names is None or p.name in names)]
    out = {}
    for variant in variants:
        scorer = ModelScorer(bundle, variant, threads=threads)
        tables = evaluate_folder(folder, bundle.manifest.signal, scorer,
                                 bundle.threshold(variant).value, start_s, names)
        out[variant] = summarize(tables)
        out[variant].update(threshold=bundle.threshold(variant).value, start_s=start_s)
    if as_json:
        click.echo(json.dumps(to_jsonable(out), indent=2))
        return
    for variant, summary in out.items():
        click.echo(f"\n{bundle.manifest.architecture} {variant}, threshold "
                   f"{summary['threshold']:.4g}, beats after {start_s:g} s\n")
        click.echo(beat_table(summary))


@cli.command("selftest")
@click.argument("bundle_path", type=click.Path())
@click.option("--variant", type=click.Choice(["int8", "float32"]), default="int8",
              show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--edgetpu", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def selftest_cmd(bundle_path, variant, threads, edgetpu, as_json):
    """Check a bundle on this machine: hashes, schema, quantization, golden vectors."""
    report = selftest(load_bundle(bundle_path), variant, threads, edgetpu)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{'PASS' if report['ok'] else 'FAIL'}: {report['vectors']} golden vectors "
                   f"on {report['runtime']}"
                   + (f" + {report['delegate']}" if report["delegate"] else "")
                   + f", max error {report['max_abs_error']:.3g} "
                   f"(tolerance {report['tolerance']:.3g})")
    if not report["ok"]:
        raise SystemExit(1)


@cli.command("info")
@click.argument("bundle_path", type=click.Path(), required=False)
@click.option("--json", "as_json", is_flag=True)
def info_cmd(bundle_path, as_json):
    """Runtimes available here and, given a bundle, what it holds."""
    out: dict = {"runtimes": available_runtimes(), "edgetpu_libraries": EDGETPU_LIBS}
    if bundle_path:
        b = load_bundle(bundle_path)
        m = b.manifest
        out["bundle"] = {
            "architecture": m.architecture, "model": m.model.file, "bytes": m.model.bytes,
            "sha256": m.model.sha256, "variant": m.model.variant,
            "input": m.model.input.__dict__, "output": m.model.output.__dict__,
            "fs": m.signal.fs, "window_s": [m.signal.window_before_s, m.signal.window_after_s],
            "score": m.score, "thresholds": {k: v.__dict__ for k, v in m.thresholds.items()},
            "params": m.params, "macs": m.macs, "targets": m.targets,
            "float_model": m.float_model.file if m.float_model else None,
        }
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo("runtimes: " + (", ".join(out["runtimes"]) or "none (pip install ai-edge-litert)"))
    for k, v in out.get("bundle", {}).items():
        click.echo(f"{k}: {v}")


@cli.command("install")
@click.argument("bundle_path", type=click.Path())
@click.option("--root", type=click.Path(file_okay=False), default="/var/lib/ecg-edge",
              show_default=True, help="Install root; 'current' there points to the bundle.")
def install_cmd(bundle_path, root):
    """Verify a bundle and make it the current one atomically."""
    b = install_bundle(bundle_path, root)
    click.echo(f"installed {b.manifest.architecture} ({b.manifest.model.sha256[:12]}) as "
               f"{Path(root) / 'current'}")


@cli.command("evaluate")
@click.argument("events_path", type=click.Path(dir_okay=False))
@click.argument("record", type=click.Path())
@click.option("--start", "start_s", type=float, default=EC57_START_S, show_default=True)
@click.option("--end", "end_s", type=float, default=None,
              help="Compare only up to this second (a replay with --duration).")
@click.option("--json", "as_json", is_flag=True)
def evaluate_cmd(events_path: str, record: str, start_s: float, end_s: float | None,
                 as_json: bool) -> None:
    """Compare a replay's beat events with the record's reference annotations (EC57 style)."""
    rec = read_record(record)
    if not rec.has_annotations:
        raise UserError(f"{record}: no reference annotations (.atr) to compare with")
    beats = read_beat_events(events_path)
    table = evaluate_record(beats["sample"], beats["score"], beats["flag"], rec.ann_samples,
                            rec.ann_symbols, rec.fs, start_s=start_s, end_s=end_s,
                            calls=beats["class"], rhythm=read_rhythm(record))
    summary = summarize({rec.name: table})
    if as_json:
        click.echo(json.dumps(to_jsonable(summary), indent=2))
    else:
        click.echo(beat_table(summary))


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
