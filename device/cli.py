"""ecg-device: the TensorFlow-free command line of the device side."""

from __future__ import annotations

import json

import click

from device import reference
from device.config import SignalConfig
from device.evaluation import EC57_START_S, summarize, to_jsonable
from device.records import evaluate_folder
from device.report import beat_table
from firmware_bridge.errors import run_cli

#: Flag threshold of each reference detector (chosen on the shared records, stated in reports).
REFERENCE_THRESHOLDS = {"template": 0.15, "rr": 0.25, "combined": 0.5}


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
    threshold = REFERENCE_THRESHOLDS[detector] if threshold is None else threshold
    tables = evaluate_folder(folder, SignalConfig(),
                             lambda b: reference.score(b, detector), threshold, start_s)
    summary = summarize(tables)
    summary.update(detector=detector, threshold=threshold, start_s=start_s)
    if as_json:
        click.echo(json.dumps(to_jsonable(summary), indent=2))
    else:
        click.echo(f"reference detector '{detector}', threshold {threshold}, "
                   f"beats after {start_s:g} s\n")
        click.echo(beat_table(summary))


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
