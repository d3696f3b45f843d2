"""The main job in one command: train -> int8 -> parity gate -> bundle -> emulated serial
stream -> device events -> report, on the data the repo ships.

Every stage is the real component, run as a user would run it: training and conversion in
their own processes (they need TensorFlow), the front-end emulator on a real pseudo-terminal
playing a real MIT-BIH record, and the TensorFlow-free device runtime reading that port in a
process of its own. The report gathers what each stage measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np

from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.evaluation import evaluate_record, summarize, to_jsonable
from ecg_edge.device.events import read_beat_events
from ecg_edge.device.monitor import Monitor, bundle_settings, record_blocks, run_blocks
from ecg_edge.device.records import read_rhythm
from ecg_edge.device.report import beat_table
from ecg_edge.device.scoring import ModelScorer
from ecg_edge.firmware_bridge.emulator import EmulatorConfig, start_emulator
from ecg_edge.firmware_bridge.errors import UserError, run_cli
from ecg_edge.firmware_bridge.records import Record, read_record

REPO = Path(__file__).resolve().parents[1]


class Steps:
    """Numbered progress lines on stderr with the time each step took."""

    def __init__(self, total: int):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.times: dict[str, float] = {}

    def start(self, what: str) -> None:
        self.n += 1
        self.what, self.t = what, time.perf_counter()
        click.echo(f"[{self.n}/{self.total}] {what} ...", err=True)

    def done(self, detail: str = "") -> None:
        dt = time.perf_counter() - self.t
        self.times[self.what] = round(dt, 1)
        click.echo(f"      done in {dt:.1f} s{': ' + detail if detail else ''}", err=True)


def _stage(args: list[str], log_path: Path, what: str) -> str:
    """Run a stage's command line; its progress goes to a log (tail shown on failure)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each stage quiets TensorFlow itself
    with log_path.open("w") as log:
        proc = subprocess.run([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                              stderr=log, text=True, cwd=log_path.parent, env=env)
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-3:]
        raise UserError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)} "
                        f"(full log: {log_path})")
    return proc.stdout


def latency_and_rtf(bundle_path: Path, rec: Record, repeats: int = 200) -> dict:
    """int8 latency per beat window (batch 1, median of ``repeats``) and the replay's
    real-time factor (seconds of ECG per CPU second of the whole streaming path)."""
    bundle = load_bundle(bundle_path)
    scorer = ModelScorer(bundle, "int8", threads=1)
    x = np.asarray(bundle.golden()["input"][:1], np.float32)
    for _ in range(20):
        scorer.predict(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        scorer.predict(x)
        times.append(time.perf_counter() - t)
    monitor = Monitor(bundle.manifest.signal, scorer, bundle.threshold("int8").value,
                      lambda e: None, **bundle_settings(bundle))
    cpu = time.process_time()
    run_blocks(monitor, record_blocks(rec, None, 10.0))
    cpu = time.process_time() - cpu
    return {"int8_latency_us_p50": round(float(np.median(times)) * 1e6, 1),
            "int8_latency_us_p99": round(float(np.percentile(times, 99)) * 1e6, 1),
            "pipeline_x_realtime": round(rec.duration_s / cpu, 0),
            "pipeline_cpu_s": round(cpu, 3), "record_s": round(rec.duration_s, 1)}


def shipped_on_record(rec: Record, record_path: Path, bundle_path: Path | None = None,
                      end_s: float | None = None) -> dict:
    """The shipped DS1 bundle (int8) replayed over the same record in-process, for the report's
    side-by-side: beat summary and the device summary (class counts, burden)."""
    from ecg_edge.device.cli import SHIPPED_BUNDLE

    bundle = load_bundle(bundle_path or SHIPPED_BUNDLE)
    events: list[dict] = []
    summary = run_blocks(Monitor(bundle.manifest.signal, ModelScorer(bundle, "int8"),
                                 bundle.threshold("int8").value, events.append,
                                 **bundle_settings(bundle)),
                         record_blocks(rec, None, 10.0))
    beats = [e for e in events if e["type"] == "beat"]
    table = evaluate_record(
        np.array([e["sample"] for e in beats]),
        np.array([np.nan if e["score"] is None else e["score"] for e in beats]),
        np.array([e["flag"] for e in beats]), rec.ann_samples, rec.ann_symbols, rec.fs,
        end_s=end_s, calls=np.array([e["class"] for e in beats]),
        rhythm=read_rhythm(record_path))
    return {"bundle": str(bundle.root), "records": bundle.manifest.calibration.get("records"),
            "device_summary": summary, "beats": summarize({rec.name: table})}


def main_job(out: Path, data: Path, train_records: list[str], stream_record: str,
             speed: float, epochs: int, gate: list[str] | None = None,
             stream_seconds: float | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(7)
    run_dir, bundle_dir, events = out / "run", out / "bundle", out / "events.jsonl"

    steps.start(f"training the CNN-AE on the normal beats of records {', '.join(train_records)}")
    _stage(["ecg_edge.train.cli", "fit", str(data), "--arch", "cnn_ae", "--records",
            ",".join(train_records), "--epochs", str(epochs), "--out", str(run_dir)],
           out / "train.log", "training")
    steps.done(f"run folder {run_dir}")

    steps.start("int8 conversion, parity gate, target checks and the bundle")
    conv = json.loads(_stage(["ecg_edge.convert.cli", "bundle", str(run_dir), "--out",
                              str(bundle_dir), "--static-batch", "--per-tensor", "--json",
                              *(gate or [])],
                             out / "convert.log", "conversion"))
    steps.done(f"bundle {conv['archive']}")

    record_path = data / stream_record
    rec = read_record(record_path)
    if stream_seconds is not None:
        rec.counts = rec.counts[: int(round(stream_seconds * rec.fs))]
    steps.start(f"front-end emulator on a pseudo-terminal playing record {stream_record} "
                f"at {speed:g}x real time")
    emu = start_emulator(rec, EmulatorConfig(speed=speed))
    steps.done(f"port {emu.port}")

    steps.start("device runtime (no TensorFlow) monitoring that port")
    try:
        run_out = _stage(["ecg_edge.device.cli", "run", emu.port, "--bundle", str(bundle_dir),
                          "--no-reconnect", "--quiet", "--events", str(events)],
                         out / "device.log", "the device runtime")
    finally:
        emu_report = emu.stop()
    summary = json.loads(run_out)
    steps.done(f"{summary['beats']} beats, {summary['flagged']} flagged, "
               f"{summary['samples_lost']} samples lost")

    steps.start("beat-level evaluation against the cardiologists' annotations")
    ev = read_beat_events(events)
    table = evaluate_record(ev["sample"], ev["score"], ev["flag"], rec.ann_samples,
                            rec.ann_symbols, rec.fs, end_s=rec.duration_s, calls=ev["class"],
                            rhythm=read_rhythm(record_path), episodes=ev["episodes"],
                            n_samples=rec.n_samples)
    beat_summary = summarize({rec.name: table})
    steps.done()

    steps.start("the shipped DS1 beat classifier on the same record")
    shipped = shipped_on_record(rec, record_path, end_s=rec.duration_s)
    steps.done()

    steps.start("latency and real-time factor on one thread")
    perf = latency_and_rtf(bundle_dir, rec)
    steps.done()

    report_dir = Path(conv["folder"]).with_name(Path(conv["folder"]).name + "-report")
    result = {
        "train_records": train_records, "stream_record": stream_record,
        "bundle": conv["archive"], "bundle_folder": conv["folder"], "gate_passed":
        conv.get("gate_passed"), "parity_markdown": str(report_dir / "parity.md"),
        "plots": sorted(str(p) for p in list(run_dir.glob("*.png")) + list(
            report_dir.glob("*.png"))),
        "device_summary": summary, "emulator": emu_report.as_dict(),
        "beats": beat_summary, "shipped": shipped, "performance": perf, "step_seconds": steps.times,
        "total_seconds": round(time.perf_counter() - steps.t0, 1), "events": str(events),
    }
    (out / "report.json").write_text(json.dumps(to_jsonable(result), indent=2))
    (out / "report.md").write_text(render(result))
    return result


def render(r: dict) -> str:
    parity = Path(r["parity_markdown"])
    p = r["performance"]
    lines = [
        "# ecg-edge main job",
        "",
        f"Trained on records {', '.join(r['train_records'])}; streamed record "
        f"{r['stream_record']} (a patient the model never saw) through the emulator and the "
        f"device runtime. Total {r['total_seconds']} s.",
        "",
        "## Float vs int8 (parity gate " + ("passed" if r["gate_passed"] else "FAILED") + ")",
        "",
        parity.read_text().strip() if parity.exists() else "(no parity report)",
        "",
        "## Beat by beat against the annotations (EC57 style, beats after 300 s)",
        "",
        beat_table(r["beats"]),
        "",
        "## Beside it: the shipped DS1 beat classifier (device/bundles/ds1, int8)",
        "",
        f"Trained on the 22 DS1 records; the same record through the device runtime "
        f"in-process. PVC burden {r['shipped']['device_summary']['pvc_burden_pct']} %, PAC "
        f"burden {r['shipped']['device_summary']['pac_burden_pct']} %.",
        "",
        beat_table(r["shipped"]["beats"]),
        "",
        "## Speed (one thread)",
        "",
        f"- int8 inference per beat window: {p['int8_latency_us_p50']} µs median, "
        f"{p['int8_latency_us_p99']} µs p99",
        f"- whole streaming pipeline: {p['pipeline_x_realtime']:.0f}x real time "
        f"({p['record_s']} s of ECG in {p['pipeline_cpu_s']} CPU s)",
        f"- link: {r['device_summary']['samples_lost']} samples lost, "
        f"{r['device_summary']['link']['crc_errors']} CRC errors",
        "",
        "## Where things are",
        "",
        f"- bundle: {r['bundle']} (folder {r['bundle_folder']})",
        f"- events: {r['events']}",
        *[f"- plot: {p}" for p in r["plots"]],
    ]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--out", type=click.Path(file_okay=False), default="runs/main",
              show_default=True)
@click.option("--data", type=click.Path(file_okay=False), default=str(REPO / "data" / "mitdb"),
              show_default=True, help="Folder of annotated WFDB records.")
@click.option("--train-records", default="106,118,119", show_default=True,
              help="Training records: DS1 only (the repo's data has 106, 118, 119).")
@click.option("--stream-record", default="100", show_default=True,
              help="Record streamed through the emulator: a DS2 test patient.")
@click.option("--speed", type=float, default=200.0, show_default=True,
              help="Emulator speed (x real time).")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--stream-seconds", type=float, default=None,
              help="Stream only the first seconds of the record (default: all of it).")
@click.option("--max-delta-auc", type=float, default=None,
              help="Parity gate tolerance (default: ecg-convert's).")
@click.option("--max-size-ratio", type=float, default=None,
              help="Gate on int8/float32 file size (default: ecg-convert's).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def cli(out, data, train_records, stream_record, speed, epochs, stream_seconds, max_delta_auc,
        max_size_ratio, as_json):
    """Train, quantize, gate, bundle, stream a record through a pty and report."""
    gate = []
    if max_delta_auc is not None:
        gate += ["--max-delta-auc", str(max_delta_auc)]
    if max_size_ratio is not None:
        gate += ["--max-size-ratio", str(max_size_ratio)]
    # Absolute paths, stages run inside --out: the job works from any folder and writes only
    # there (never into the installed package).
    data = Path(data).resolve()
    if not data.is_dir():
        raise UserError(f"{data}: no such folder of MIT-BIH records; give --data (the "
                        "repository's data/mitdb, or a PhysioNet download)")
    result = main_job(Path(out).resolve(), data, train_records.split(","), stream_record, speed,
                      epochs, gate, stream_seconds)
    if as_json:
        click.echo(json.dumps(to_jsonable(result), indent=2))
    else:
        click.echo(render(result))


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
