"""ecg-device: the TensorFlow-free command line of the device side."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from ecg_edge.device import reference, rhythm_eval
from ecg_edge.device.annotations import (
    AnnotationCollector,
    annotations_of_file,
    write_annotations,
)
from ecg_edge.device.bundle import Bundle, load_bundle
from ecg_edge.device.classes import ClassSpec
from ecg_edge.device.coalesce import BATCH_S, coalesced
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import EC57_START_S, evaluate_record, summarize, to_jsonable
from ecg_edge.device.events import EpisodeConfig, EventWriter, open_events_file, read_beat_events
from ecg_edge.device.install import install_bundle
from ecg_edge.device.interpreter import EDGETPU_LIBS, available_runtimes
from ecg_edge.device.live import Tee, maybe_view
from ecg_edge.device.monitor import (
    REPLAY_BLOCK_S,
    Monitor,
    bundle_settings,
    paced,
    record_blocks,
    run_blocks,
)
from ecg_edge.device.recording import SessionRecorder
from ecg_edge.device.records import (
    evaluate_folder,
    folder_records,
    read_rhythm,
    replay_lead,
    warn_skipped,
)
from ecg_edge.device.report import beat_table
from ecg_edge.device.rhythm import RhythmConfig
from ecg_edge.device.rhythm_input import analyze_file
from ecg_edge.device.rhythm_model import load_af_model
from ecg_edge.device.scoring import ModelScorer, reference_scorer
from ecg_edge.device.selftest import selftest, verified_scorer
from ecg_edge.device.session_report import write_report
from ecg_edge.firmware_bridge.errors import (
    BoundaryGroup,
    UserError,
    nonnegative_number,
    positive_number,
    run_cli,
)
from ecg_edge.firmware_bridge.records import read_record
from ecg_edge.firmware_bridge.transport import open_stream


@click.group(cls=BoundaryGroup)
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
def _event_sink(path: str | None, quiet: bool, append: bool = True):
    """Events to stdout (unless quiet) and/or a file (0600, appended to), closed however the
    stream ends."""
    with contextlib.ExitStack() as stack:
        streams = [] if quiet else [sys.stdout]
        if path:
            streams.append(stack.enter_context(open_events_file(path, append)))
        yield EventWriter(*streams)


#: The DS1-trained beat classifier shipped with the package (``ecg-bench ds1-cv --ship``).
SHIPPED_BUNDLE = Path(__file__).resolve().parent / "bundles" / "ds1"


@dataclass
class Scoring:
    """What scores the beats and with which settings: a bundle (the shipped DS1 one unless
    another is named) or a non-learned reference detector."""

    scorer: Callable
    threshold: float
    signal: SignalConfig
    episodes: EpisodeConfig
    rhythm: RhythmConfig
    classes: ClassSpec | None
    info: dict
    af_model: Callable | None = None  # the bundle's learned AF model (None: reference)

    def monitor(self, emit, source: str, **kw) -> Monitor:
        return Monitor(self.signal, self.scorer, self.threshold, emit, self.episodes,
                       info={"source": source, **self.info}, rhythm=self.rhythm,
                       classes=self.classes, af_model=self.af_model, **kw)


def _scoring(bundle_path, variant, ref, threshold, threads, edgetpu) -> Scoring:
    if bundle_path is not None and ref is not None:
        raise UserError("give either --bundle or --reference, not both")
    if bundle_path is None and ref is None:
        bundle_path = SHIPPED_BUNDLE
    if bundle_path is None:
        stated = reference.THRESHOLDS[ref]
        out = Scoring(reference_scorer(ref), stated, SignalConfig(), EpisodeConfig(),
                      RhythmConfig(), None, {"scorer": f"reference:{ref}"})
    else:
        bundle = load_bundle(bundle_path)
        m = bundle.manifest
        _warn_signal_drift(bundle_path, m)
        # Golden vectors first: a runtime that computes wrongly must not monitor anyone.
        scorer = verified_scorer(bundle, variant, threads, edgetpu, _echo_err)
        stated = bundle.threshold(variant).value
        out = Scoring(scorer, stated, m.signal, info={
            "scorer": f"model:{m.architecture}:{variant}", **_settings_source(bundle),
            "runtime": scorer.info.runtime, "delegate": scorer.info.delegate},
            **bundle_settings(bundle))
    if threshold is not None and not math.isfinite(threshold):
        raise UserError(f"--threshold {threshold}: give a finite number (the bundle's "
                        f"calibrated one is {stated:g})")
    if threshold is not None and threshold != stated:
        click.echo(f"warning: threshold {threshold} overrides the calibrated {stated}", err=True)
        out.threshold = threshold
    return out


def _echo_err(msg: str) -> None:
    click.echo(msg, err=True)


def _warn_signal_drift(bundle_path, manifest) -> None:
    """One stderr line where the manifest's signal is not what its model learnt behind: the
    monitor still runs (the settings are valid), but the bundle's accuracy figures do not
    hold for it."""
    drift = manifest.signal_drift()
    if drift:
        click.echo(f"warning: {bundle_path}: its model learnt behind another signal path "
                   f"({'; '.join(drift)}); its measured accuracy does not hold: restore the "
                   "manifest's signal or re-train behind the new one", err=True)


def rhythm_source_options(f):
    """Options of the rhythm commands: whose rhythm settings and learned AF model."""
    f = click.option("--builtin", is_flag=True,
                     help="The built-in rhythm settings and no learned model (the non-learned "
                          "reference) instead of a bundle's.")(f)
    return click.option("--bundle", "bundle_path", type=click.Path(), default=None,
                        help="Take the rhythm settings and learned AF model from this bundle; "
                             "default: the shipped DS1 bundle (device/bundles/ds1), as replay "
                             "and run use it.")(f)


def _settings_source(bundle: Bundle | None) -> dict:
    """Whose settings a rhythm result comes from, named as replay's start event names them
    (None, None: the built-in ones)."""
    m = bundle.manifest if bundle else None
    return {"bundle_sha256": m.model.sha256[:12] if m else None,
            "rhythm_model": m.rhythm_model.sha256[:12] if m and m.rhythm_model else None}


def _rhythm_bundle(bundle_path, builtin: bool) -> Bundle | None:
    """The bundle a rhythm command takes its settings from: the one named, the shipped one, or
    none with ``--builtin`` (so a strap's RR file gets the analysis the monitor runs)."""
    if builtin and bundle_path:
        raise UserError("give either --bundle or --builtin, not both")
    return None if builtin else load_bundle(bundle_path or SHIPPED_BUNDLE)


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
        click.option("--view", is_flag=True,
                     help="Serve a live page of the stream (strip, beats, rhythm, quality)."),
        click.option("--view-host", default="127.0.0.1", show_default=True,
                     help="Address the live page listens on; anything but loopback exposes "
                          "the ECG to the network."),
        click.option("--view-port", type=click.IntRange(0, 65535), default=8765,
                     show_default=True,
                     help="Port of the live page (0: any free port)."),
    ]):
        f = opt(f)
    return f


@cli.command("replay")
@click.argument("record", type=click.Path())
@scoring_options
@click.option("--lead", default=None,
              help="Lead name, index or 'other' (default: MLII or another named ECG lead; "
                   "where the names say none, the first unless another is clearly more "
                   "readable).")
@click.option("--fs", type=float, default=None, callback=positive_number,
              help="Sample rate for CSV/NPY records (Hz).")
@click.option("--uv-per-count", type=float, default=1.0, show_default=True,
              callback=positive_number, help="Gain of integer CSV/NPY samples.")
@click.option("--block-s", type=float, default=REPLAY_BLOCK_S, show_default=True,
              callback=positive_number, help="Seconds of signal per block fed to the monitor.")
@click.option("--duration", type=float, default=None, callback=positive_number,
              help="Replay only the first this many seconds.")
@click.option("--realtime", is_flag=True,
              help="Pace the replay at the record's own rate (times --speed), e.g. with --view.")
@click.option("--speed", type=float, default=1.0, show_default=True, callback=positive_number,
              help="With --realtime: this many seconds of signal per second.")
@click.option("--annotations", "annotations_path", type=click.Path(dir_okay=False),
              default=None, help="Also write the calls as a WFDB annotation file (e.g. "
              "100.ecg beside 100.hea, for bxb -r 100 -a atr ecg).")
def replay_cmd(record, bundle_path, variant, ref, threshold, threads, edgetpu, events_path,
               quiet, view, view_host, view_port, lead, fs, uv_per_count, block_s, duration,
               realtime, speed, annotations_path):
    """Replay a record (WFDB, CSV, NPY) through the streaming monitor as fast as possible."""
    if annotations_path and not Path(annotations_path).resolve().parent.is_dir():
        raise UserError(f"{Path(annotations_path).parent}: no such folder for --annotations; "
                        "create it first")  # said before the replay, not after it
    rec = read_record(record, fs=fs, uv_per_count=uv_per_count)
    if duration is not None:
        rec.counts = rec.counts[: int(round(duration * rec.fs))]
    rec = replay_lead(rec, lead)
    scoring = _scoring(bundle_path, variant, ref, threshold, threads, edgetpu)
    blocks = record_blocks(rec, lead, min(block_s, 0.25 * speed) if realtime else block_s)
    collect = AnnotationCollector() if annotations_path else None  # not every event: a day
    with _event_sink(events_path, quiet, append=False) as writer, \
            maybe_view(view, view_host, view_port, _echo_err) as live:
        monitor = scoring.monitor(Tee(writer, live, collect), rec.name,
                                  signal_tap=live and live.strip)
        summary = run_blocks(monitor, paced(blocks, speed) if realtime else blocks)
    if quiet:
        click.echo(json.dumps(to_jsonable(summary)))
    if collect is not None:
        write_annotations(annotations_path, collect.annotations())


@cli.command("annotate")
@click.argument("events_path", metavar="EVENTS", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="The annotation file to write, named RECORD.ANNOTATOR (e.g. 100.ecg) so "
                   "WFDB tools find it beside RECORD.hea; readable by you only.")
@click.option("--stream", type=click.IntRange(min=1), default=None,
              help="Which stream of an events file the monitor appended to after restarts.")
@click.option("--json", "as_json", is_flag=True)
def annotate_cmd(events_path, out, stream, as_json):
    """A session's events as a WFDB annotation file: beat classes, rhythm changes, pauses and
    signal quality, for rdann, bxb, epicmp, WAVE and wfdb-python."""
    ann = annotations_of_file(events_path, stream)
    path = write_annotations(out, ann)
    counts = ann.counts()
    if as_json:
        click.echo(json.dumps({"path": str(path), "fs": ann.fs, **counts}))
    else:
        click.echo(f"{path}: {counts['beats']} beats, {counts['rhythm_changes']} rhythm "
                   f"changes, {counts['noise_changes']} quality changes, "
                   f"{counts['comments']} pauses at {ann.fs:g} Hz")


@cli.command("run")
@click.argument("port")
@scoring_options
@click.option("--ascii-fs", type=float, default=None, callback=positive_number,
              help="The front-end prints ASCII lines at this rate (Hz); default: binary v2.")
@click.option("--ascii-uv-per-count", type=float, default=1.0, show_default=True,
              callback=positive_number)
@click.option("--baudrate", type=int, default=115200, show_default=True)
@click.option("--channel", type=int, default=0, show_default=True,
              help="Which front-end channel carries the ECG lead.")
@click.option("--duration", type=float, default=None, callback=positive_number,
              help="Stop after this many seconds.")
@click.option("--no-reconnect", is_flag=True, help="End when the port goes away.")
@click.option("--batch-s", type=float, default=BATCH_S, show_default=True,
              callback=nonnegative_number,
              help="Seconds of signal gathered before the monitor runs (0: every read); "
                   "latency against CPU.")
@click.option("--record", "record_base", type=click.Path(dir_okay=False), default=None,
              help="Also keep the session for review: the samples as a WFDB record "
                   "(BASE.hea, BASE.dat) and the calls as its annotations (BASE.ecg); "
                   "readable by you only.")
def run_cmd(port, bundle_path, variant, ref, threshold, threads, edgetpu, events_path, quiet,
            view, view_host, view_port, ascii_fs, ascii_uv_per_count, baudrate, channel,
            duration, no_reconnect, batch_s, record_base):
    """Monitor a serial front-end until stopped (SIGINT/SIGTERM end it with a summary)."""
    scoring = _scoring(bundle_path, variant, ref, threshold, threads, edgetpu)
    recorder = SessionRecorder(record_base, channel, _echo_err) if record_base else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with _event_sink(events_path, quiet) as writer, \
            maybe_view(view, view_host, view_port, _echo_err) as live:
        monitor = scoring.monitor(Tee(writer, live, recorder and recorder.event), port,
                                  channel=channel, signal_tap=live and live.strip)
        # When the session began, as the wearer's clock says (the report's hour by hour)
        monitor.info["started"] = datetime.datetime.now().astimezone().isoformat("T", "seconds")
        t_end = None if duration is None else time.monotonic() + duration
        try:
            with open_stream(port, ascii_fs=ascii_fs, ascii_uv_per_count=ascii_uv_per_count,
                             baudrate=baudrate, reconnect=not no_reconnect) as stream:
                for item in coalesced(stream.items(heartbeat_s=0.2), batch_s):
                    if stop.is_set() or (t_end is not None and time.monotonic() > t_end):
                        break
                    if item is not None:
                        if recorder is not None:
                            recorder.feed(item)
                        monitor.feed(item)
                link = stream.stats().as_dict()
            monitor.info["link"] = {k: link[k] for k in (
                "bytes_in", "crc_errors", "bytes_skipped", "samples_lost", "gaps",
                "reconnects", "seq_unconfirmed")}
            summary = monitor.finish()
        finally:  # whatever ends the session, the record gets its length and annotations
            kept = recorder.close() if recorder is not None else None
    if kept is not None:
        _echo_err(f"session recorded: {kept}.hea / .dat / .ecg")
    if quiet:
        click.echo(json.dumps(to_jsonable(summary)))


@cli.command("evaluate-folder")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--bundle", "bundle_path", type=click.Path(), default=str(SHIPPED_BUNDLE),
              help="Model bundle; default: the shipped DS1 bundle (device/bundles/ds1).")
@click.option("--variant", "variants", type=click.Choice(["int8", "float32"]), multiple=True,
              default=("int8", "float32"), show_default=True)
@click.option("--records", default=None,
              help="Comma-separated record names (default: all annotated, unpaced).")
@click.option("--exclude-trained", is_flag=True,
              help="Leave out the records the bundle's model was trained on.")
@click.option("--start", "start_s", type=float, default=EC57_START_S, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--resample-to", "resample_hz", type=float, default=None,
              help="Replay each record as a front-end at this rate (Hz) would give it, "
                   "annotations moved with it: does the bundle hold at your front-end's rate?")
@click.option("--invert-lead", is_flag=True,
              help="Replay each record with its lead inverted (electrodes swapped): does the "
                   "bundle hold on a lead whose QRS points the other way?")
@click.option("--lead", default=None,
              help="Which lead of each record: a name, an index, or 'other' (the first lead "
                   "that is not the default: MLII or another named ECG lead; where the names "
                   "say none, the first unless another is clearly more readable): does the "
                   "bundle hold on your lead?")
@click.option("--json", "as_json", is_flag=True)
def evaluate_folder_cmd(folder, bundle_path, variants, records, exclude_trained, start_s,
                        threads, resample_hz, invert_lead, lead, as_json):
    """Beat-level EC57 table of a bundle's models on a folder of records, side by side."""
    bundle = load_bundle(bundle_path)
    _warn_signal_drift(bundle_path, bundle.manifest)
    names = records.split(",") if records else None
    if names is None:  # skipped records are reported once, not once per variant
        paths, skipped = folder_records(folder)
        warn_skipped(skipped)
        names = [p.name for p in paths]
    if exclude_trained:
        m = bundle.manifest
        trained = set(m.calibration.get("records") or m.provenance.get("records") or [])
        if not trained:
            raise UserError(f"{bundle_path}: the manifest does not say which records the model "
                            "was trained on; give --records instead")
        names = [n for n in names if n not in trained]
    out = {}
    for variant in variants:
        scorer = ModelScorer(bundle, variant, threads=threads)
        leads: dict[str, str] = {}
        tables = evaluate_folder(folder, bundle.manifest.signal, scorer,
                                 bundle.threshold(variant).value, start_s, names,
                                 settings=bundle_settings(bundle), resample_hz=resample_hz,
                                 invert_lead=invert_lead, lead=lead, leads=leads)
        out[variant] = summarize(tables)
        out[variant].update(threshold=bundle.threshold(variant).value, start_s=start_s,
                            resampled_to_hz=resample_hz, lead_inverted=invert_lead, lead=lead,
                            leads=leads)
    if as_json:
        click.echo(json.dumps(to_jsonable(out), indent=2))
        return
    for variant, summary in out.items():
        rate = (f", records resampled to {resample_hz:g} Hz" if resample_hz else "") + (
            ", lead inverted" if invert_lead else "") + (f", lead {lead}" if lead else "")
        click.echo(f"\n{bundle.manifest.architecture} {variant}, threshold "
                   f"{summary['threshold']:.4g}, beats after {start_s:g} s{rate}\n")
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
    bundle = load_bundle(bundle_path)
    _warn_signal_drift(bundle_path, bundle.manifest)
    report = selftest(bundle, variant, threads, edgetpu)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{'PASS' if report['ok'] else 'FAIL'}: {report['vectors']} golden vectors "
                   f"on {report['runtime']}"
                   + (f" + {report['delegate']}" if report["delegate"] else "")
                   + f", max error {report['max_abs_error']:.3g} "
                   f"(tolerance {report['tolerance']:.3g})")
        for key, name in (("rhythm_model", "rhythm model"), ("rhythm_ecg_model",
                                                              "rhythm ECG model")):
            if key in report:
                r = report[key]
                click.echo(f"{'PASS' if r['ok'] else 'FAIL'}: {name}, {r['vectors']} golden "
                           f"vectors, max error {r['max_abs_error']:.3g} (tolerance "
                           f"{r['tolerance']:.3g})")
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
            "learnt_signal": _drift_text(m.signal_drift()),
        }
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo("runtimes: " + (", ".join(out["runtimes"]) or "none (pip install ai-edge-litert)"))
    for k, v in out.get("bundle", {}).items():
        click.echo(f"{k}: {v}")


def _drift_text(drift: list[str] | None) -> str:
    if drift is None:
        return "not recorded (a bundle written before session 80)"
    return "the signal it runs behind" if not drift else "differs: " + "; ".join(drift)


@cli.command("install")
@click.argument("bundle_path", type=click.Path())
@click.option("--root", type=click.Path(file_okay=False), default="/var/lib/ecg-edge",
              show_default=True, help="Install root; 'current' there points to the bundle.")
def install_cmd(bundle_path, root):
    """Verify a bundle and make it the current one atomically."""
    b = install_bundle(bundle_path, root)  # validates, runs the golden vectors, then swaps
    click.echo(f"installed {b.manifest.architecture} ({b.manifest.model.sha256[:12]}) as "
               f"{Path(root) / 'current'}")


@cli.command("evaluate")
@click.argument("events_path", type=click.Path(dir_okay=False))
@click.argument("record", type=click.Path())
@click.option("--start", "start_s", type=float, default=EC57_START_S, show_default=True,
              callback=nonnegative_number)
@click.option("--end", "end_s", type=float, default=None, callback=positive_number,
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
                            calls=beats["class"], rhythm=read_rhythm(record),
                            episodes=beats["episodes"], n_samples=rec.n_samples)
    summary = summarize({rec.name: table})
    if as_json:
        click.echo(json.dumps(to_jsonable(summary), indent=2))
    else:
        click.echo(beat_table(summary))


@cli.command("report")
@click.argument("events_path", type=click.Path(dir_okay=False))
@click.argument("record", type=click.Path(), required=False)
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="The HTML file to write (readable by you only: it holds health data).")
@click.option("--lead", default=None, help="Lead of RECORD to draw (default: the monitored one).")
@click.option("--bundle", "bundle_path", type=click.Path(), default=None,
              help="Bundle the session ran with (its signal config draws the strips).")
def report_cmd(events_path, record, out, lead, bundle_path):
    """One self-contained HTML report of a session (summary, HR trend, episodes, strips)."""
    rec = read_record(record) if record else None
    cfg = load_bundle(bundle_path).manifest.signal if bundle_path else SignalConfig()
    path = write_report(events_path, out, rec, cfg, lead)
    click.echo(f"report written to {path}")


@cli.command("rhythm")
@click.argument("beats_path", metavar="FILE", type=click.Path())
@rhythm_source_options
@click.option("--events", "events_path", type=click.Path(dir_okay=False), default=None,
              help="Write the rhythm events (JSON lines) to this file.")
@click.option("--no-classes", is_flag=True,
              help="Ignore the beats' classes (annotations, or a CSV's class column): RR only, "
                   "no VT without them.")
@click.option("--annotator", default=None,
              help="WFDB beat annotation file to read, e.g. qrs (default: the first of atr, "
                   "qrsc, qrs that holds beats).")
@click.option("--json", "as_json", is_flag=True, help="Print events and summary as JSON.")
def rhythm_cmd(beats_path, bundle_path, builtin, events_path, no_classes, annotator, as_json):
    """Rhythm episodes from beat times alone: a WFDB record's beat annotations, or a CSV with a
    t_s (s) or rr_ms (ms) column and optionally a class column (N, S, V, F, Q)."""
    bundle = _rhythm_bundle(bundle_path, builtin)
    cfg = RhythmConfig.from_dict(bundle.manifest.rhythm if bundle else None)
    events, summary = analyze_file(beats_path, cfg, use_classes=not no_classes,
                                   af_model=load_af_model(bundle) if bundle else None,
                                   annotator=annotator)
    summary.update(_settings_source(bundle))
    if events_path:
        with open_events_file(events_path, append=False) as fh:
            writer = EventWriter(fh)
            for ev in [*events, summary]:
                writer(ev)
    if as_json:
        click.echo(json.dumps(to_jsonable({"events": events, "summary": summary}), indent=2))
        return
    for ev in events:
        click.echo(json.dumps(to_jsonable(ev)))
    counts = ", ".join(f"{r} {n}" for r, n in summary["counts"].items() if n) or "none"
    click.echo(f"{summary['source']}: {summary['beats']} beats, {summary['monitored_s']:.0f} s; "
               f"AF burden {summary['af_burden_pct']:.1f} %; episodes: {counts}; "
               + (f"PVC {summary['pvc_burden_pct']:.1f} %, PAC {summary['pac_burden_pct']:.1f} "
                  "% of beats; " if summary["classes"] else "")
               + f"{summary['beats_per_s']} beats/s"
               + (f"; {summary['rr_refused']} intervals outside "
                  f"{cfg.rr_valid_s[0]:g}-{cfg.rr_valid_s[1]:g} s taken as gaps"
                  if summary["rr_refused"] else ""), err=True)


@cli.command("rhythm-evaluate")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--records", default=None, help="Comma-separated record names (default: all).")
@click.option("--beats", "source", type=click.Choice(["annotations", "signal"]),
              default="signal", show_default=True,
              help="Beats from the reference annotations (RR-only input) or from the device's "
                   "own signal path.")
@rhythm_source_options
@click.option("--cv", is_flag=True,
              help="Leave-one-record-out CV of the AF settings instead (tune on the others).")
@click.option("--resample-to", "resample_hz", type=float, default=None,
              help="With --beats signal: replay each record as a front-end at this rate (Hz) "
                   "would give it (e.g. 128 or 250, the rates of other Holter databases).")
@click.option("--lead", default=None,
              help="With --beats signal: which lead of each record: a name, an index, or "
                   "'other' (the first lead that is not the default, as evaluate-folder says).")
@click.option("--invert-lead", is_flag=True,
              help="With --beats signal: replay each record with its lead inverted (electrodes "
                   "swapped): does the rhythm analysis hold on a lead of unknown polarity?")
@click.option("--start", "start_s", type=click.FloatRange(min=0), default=0.0,
              show_default=True, help="Count episodes from this second on (WFDB's epicmp: "
              "300, its learning period; 0: whole records, the monitor's own start included).")
@click.option("--no-classes", is_flag=True,
              help="With --beats annotations: beat times only, as a chest strap's RR file "
                   "gives them (the annotations' beat types left out).")
@click.option("--json", "as_json", is_flag=True)
def rhythm_evaluate_cmd(folder, records, source, bundle_path, builtin, cv, resample_hz, lead,
                        invert_lead, start_s, no_classes, as_json):
    """Rhythm episodes against MIT-BIH rhythm annotations (epicmp style: AF, VT, VF and the
    ectopy patterns SVT, bigeminy, trigeminy). With a bundle that carries a rhythm model, AF
    comes from that model."""
    for given, name in ((resample_hz, "--resample-to"), (lead, "--lead"),
                        (invert_lead or None, "--invert-lead")):
        if given is not None and (source != "signal" or cv):
            raise UserError(f"{name} replays the signal: use it with --beats signal, "
                            "without --cv")
    if no_classes and (source != "annotations" or cv):
        raise UserError("--no-classes leaves out the annotations' beat types: use it with "
                        "--beats annotations, without --cv")
    bundle = _rhythm_bundle(bundle_path, builtin)
    cfg = RhythmConfig.from_dict(bundle.manifest.rhythm if bundle else None)
    if cv:
        if not records:
            raise UserError("--cv needs --records (the training records, e.g. DS1)")
        if start_s:
            raise UserError("--cv counts whole records; leave out --start")
        out = rhythm_eval.cross_validate_af(folder, records.split(","), cfg)
        click.echo(json.dumps(to_jsonable(out), indent=2) if as_json else
                   rhythm_eval.table({**out["held_out"], "source": "signal, held out"}))
        return
    # With a bundle the signal replay runs the monitor replay runs (its scorer's beat classes
    # make the VT calls, its own AF model); annotated beats need only the AF model.
    scoring = (_scoring(bundle.root, "int8", None, None, 1, False)
               if bundle and source == "signal" else None)
    af_model = load_af_model(bundle) if bundle and scoring is None else None
    out = rhythm_eval.evaluate_folder(
        folder, records.split(",") if records else None, source, cfg,
        vt_classes=not no_classes, af_model=af_model,
        make_monitor=(lambda emit: scoring.monitor(emit, "rhythm-evaluate")) if scoring else None,
        resample_hz=resample_hz, lead=lead, invert_lead=invert_lead, start_s=start_s)
    out.update(_settings_source(bundle))
    if as_json:
        click.echo(json.dumps(to_jsonable(out), indent=2))
    else:
        click.echo(rhythm_eval.table(out))


@cli.command("rhythm-strips")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--folds", type=click.IntRange(2), default=5, show_default=True,
              help="Record-grouped cross-validation folds for the tuned settings.")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Only the first this many strips (by name).")
@rhythm_source_options
@click.option("--json", "as_json", is_flag=True)
def rhythm_strips_cmd(folder, folds, limit, bundle_path, builtin, as_json):
    """Per-strip AF call on short strips (CinC 2017 labels): F1(AF), Se/Sp, noisy strips;
    the reference's default settings and record-grouped cross-validation of its tuned ones,
    and the bundle's learned call as the device makes it (the shipped bundle unless --bundle
    names another; none with --builtin; in-sample on strips its model was trained on)."""
    bundle = _rhythm_bundle(bundle_path, builtin)
    out = rhythm_eval.evaluate_strips(
        folder, folds=folds, limit=limit,
        cfg=RhythmConfig.from_dict(bundle.manifest.rhythm) if bundle else None,
        af_model=load_af_model(bundle) if bundle else None)
    out.update(_settings_source(bundle))
    if as_json:
        click.echo(json.dumps(to_jsonable(out), indent=2))
    else:
        click.echo(rhythm_eval.strip_table(out))


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
