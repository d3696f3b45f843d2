"""ecg-bench: measured figures, printed as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from benchmarks.signal_path import as_dict, measure, pin_one_core
from firmware_bridge.errors import run_cli
from firmware_bridge.records import list_wfdb_records


@click.group()
def cli() -> None:
    """Benchmarks of ecg-edge."""


@cli.command("signal-path")
@click.argument("records", nargs=-1, type=click.Path())
@click.option("--repeats", default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def signal_path_cmd(records: tuple[str, ...], repeats: int, as_json: bool) -> None:
    """Signal-path throughput (x real time) on one core over real records."""
    core = pin_one_core()
    paths = list(records) or [str(p) for p in list_wfdb_records(Path("data/mitdb"))]
    results = [as_dict(measure(p, repeats)) for p in paths]
    if as_json:
        click.echo(json.dumps({"core": core, "results": results}, indent=2))
        return
    click.echo(f"one core (cpu {core}); best of {repeats}\n")
    click.echo("| record | ECG s | beats | whole-array s | x real time | 1 s blocks s "
               "| x real time |")
    click.echo("|---|---|---|---|---|---|---|")
    for r in results:
        click.echo(f"| {r['record']} | {r['duration_s']:.0f} | {r['beats']} | "
                   f"{r['whole_s']:.3f} | {r['whole_x_realtime']:.0f} | {r['block_s']:.3f} | "
                   f"{r['block_x_realtime']:.0f} |")


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
