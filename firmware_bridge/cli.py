"""`ecg-bridge`: list ports, monitor a link, emulate a front-end, measure the decoder.

Thin click commands over library functions; ``--json`` where the output is data. Bad input
ends in one line on stderr saying what is wrong and what to do, and exit status 2.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from ecg_edge.firmware_bridge.errors import BoundaryGroup, UserError, positive_number, run_cli

_FORMATS = {"int16": 1, "int24": 2, "int32": 3}


class _Group(BoundaryGroup):
    """Ctrl-C must reach `monitor` and `emulate`; errors go to the one boundary (run_cli)."""

    def invoke(self, ctx: click.Context) -> Any:
        # Started as a background job by a non-interactive shell, a process inherits SIGINT
        # ignored and Python leaves it so; `monitor` and `emulate` must still stop on Ctrl-C.
        if (signal.getsignal(signal.SIGINT) is signal.SIG_IGN
                and threading.current_thread() is threading.main_thread()):
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return super().invoke(ctx)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, default=str))
    sys.stdout.flush()


@click.group(cls=_Group)
def cli() -> None:
    """Serial link between an ECG front-end and the device runtime (protocol v2, reads v1)."""


def main(args: list[str] | None = None) -> None:
    run_cli(cli, args, "ecg-bridge")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per port.")
def ports(as_json: bool) -> None:
    """List serial ports."""
    from ecg_edge.firmware_bridge.ports import list_serial_ports

    found = list_serial_ports()
    for p in found:
        if as_json:
            _emit(p.as_dict())
        else:
            click.echo(f"{p.device}\t{p.description}\t{p.hwid}")
    if not found and not as_json:
        click.echo("no serial ports found (is the front-end plugged in? try "
                   "`ecg-bridge emulate RECORD` for a virtual one)", err=True)


_positive = positive_number


@cli.command()
@click.argument("port")
@click.option("--baud", default=115200, show_default=True, help="Baud rate (real UARTs).")
@click.option("--ascii-fs", type=float, callback=_positive,
              help="The device prints text lines at this rate (Hz) instead of protocol v2.")
@click.option("--ascii-uv-per-count", type=float, default=1.0, show_default=True)
@click.option("--channels", type=click.IntRange(1, 8), help="ASCII: channels per line.")
@click.option("--fs", type=float, callback=_positive,
              help="Binary fallback when the device never sends its info frame.")
@click.option("--uv-per-count", type=float, callback=_positive)
@click.option("--seconds", type=float, callback=_positive, help="Stop after this long.")
@click.option("--interval", type=float, default=1.0, show_default=True, callback=_positive,
              help="Seconds between reports.")
@click.option("--no-reconnect", is_flag=True, help="Stop at the first disconnect.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: events, reports, summary.")
def monitor(port: str, baud: int, ascii_fs: float | None, ascii_uv_per_count: float,
            channels: int | None, fs: float | None, uv_per_count: float | None,
            seconds: float | None, interval: float, no_reconnect: bool, as_json: bool) -> None:
    """Watch PORT: live sample rate, CRC errors, lost samples, events."""
    from ecg_edge.firmware_bridge.monitor import monitor as run_monitor
    from ecg_edge.firmware_bridge.transport import open_stream

    stream = open_stream(port, ascii_fs=ascii_fs, baudrate=baud,
                         ascii_uv_per_count=ascii_uv_per_count, channels=channels, fs=fs,
                         uv_per_count=uv_per_count, reconnect=not no_reconnect)
    for rec in run_monitor(stream, seconds, interval):
        if as_json:
            _emit(rec)
        else:
            click.echo(_monitor_text(rec))


def _monitor_text(r: dict[str, Any]) -> str:
    t = f"[{r['t']:8.2f}s]"
    if r["type"] == "event":
        return f"{t} {r['kind']}: {r['message']}"
    if r["type"] == "gap":
        return f"{t} gap: {r['lost']} samples lost before sample {r['sample']}"
    head = "summary" if r["type"] == "summary" else "rate"
    flags = (" LEAD-OFF" if r.get("lead_off") else "") + (" SAT" if r.get("saturated") else "")
    crc = f" crc_errors={r['crc_errors']}" if r["mode"] == "binary" else \
        f" bad_lines={r['lines_rejected']}"
    return (f"{t} {head} {r['rate_sps']:.1f} S/s received={r['samples_received']} "
            f"lost={r['samples_lost']} gaps={r['gaps']}{crc} skipped={r['bytes_skipped']}B "
            f"reconnects={r['reconnects']}{flags}")


@cli.command()
@click.argument("record", type=click.Path())
@click.option("--ascii", "ascii_mode", is_flag=True, help="Print text lines, not protocol v2.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Playback factor (1 = real time; 0 = as fast as the host reads).")
@click.option("--lead", help="Lead to play (default: MLII or the first ECG lead).")
@click.option("--all-leads", is_flag=True, help="Play every channel of the record.")
@click.option("--fs", type=float, callback=_positive, help="Sample rate of a CSV/NPY record.")
@click.option("--uv-per-count", type=float, default=1.0, show_default=True,
              help="Gain of an integer CSV/NPY record.")
@click.option("--samples-per-frame", type=click.IntRange(1, 255), default=10, show_default=True)
@click.option("--format", "fmt", type=click.Choice(sorted(_FORMATS)),
              help="Sample format (default: the smallest that fits).")
@click.option("--bit-flip-rate", type=float, default=0.0, help="Probability per bit.")
@click.option("--drop-rate", type=float, default=0.0, help="Probability per byte.")
@click.option("--burst", help="RATE[:LENGTH]: noise bursts per second, bytes per burst.")
@click.option("--lead-off", "lead_off", multiple=True, metavar="START:DUR",
              help="Lead-off period in record seconds (repeatable).")
@click.option("--disconnect-at", type=float, multiple=True, metavar="S",
              help="Unplug at this record time (repeatable).")
@click.option("--disconnect-for", type=float, default=1.0, show_default=True,
              help="Seconds each unplug lasts (at least until the host reopens).")
@click.option("--duration", type=float, callback=_positive, help="Record seconds to play.")
@click.option("--loop", is_flag=True, help="Start over at the end of the record.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fault randomness.")
@click.option("--link", "link_path", type=click.Path(), help="Path of the port symlink.")
@click.option("--no-wait", is_flag=True, help="Start the clock now, not when a host opens it.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: port first, report last.")
def emulate(record: str, ascii_mode: bool, speed: float, lead: str | None, all_leads: bool,
            fs: float | None, uv_per_count: float, samples_per_frame: int, fmt: str | None,
            bit_flip_rate: float, drop_rate: float, burst: str | None,
            lead_off: tuple[str, ...], disconnect_at: tuple[float, ...],
            disconnect_for: float, duration: float | None, loop: bool, seed: int,
            link_path: str | None, no_wait: bool, as_json: bool) -> None:
    """Play RECORD on a pseudo-terminal as a front-end would; prints the port path first."""
    from ecg_edge.firmware_bridge.emulator import EmulatorConfig, start_emulator
    from ecg_edge.firmware_bridge.faults import FaultPlan, parse_burst, parse_span
    from ecg_edge.firmware_bridge.protocol import SampleFormat

    burst_rate, burst_len = parse_burst(burst) if burst else (0.0, 16)
    plan = FaultPlan(bit_flip_rate=bit_flip_rate, drop_rate=drop_rate, burst_rate=burst_rate,
                     burst_len=burst_len,
                     lead_off=[parse_span(s, "--lead-off") for s in lead_off],
                     disconnects=[(at, disconnect_for) for at in disconnect_at], seed=seed)
    config = EmulatorConfig(ascii=ascii_mode, speed=speed, lead=lead, all_leads=all_leads,
                            samples_per_frame=samples_per_frame,
                            sample_format=SampleFormat(_FORMATS[fmt]) if fmt else None,
                            loop=loop, duration_s=duration, wait_for_host=not no_wait,
                            link_path=link_path)
    emu = start_emulator(record, config, plan, fs=fs, uv_per_count=uv_per_count)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` unplugs cleanly too, like Ctrl-C
    try:
        if as_json:
            _emit({"port": emu.port, "fs": emu.fs, "channels": int(emu.counts.shape[1]),
                   "uv_per_count": emu.uv_per_count, "mode": "ascii" if ascii_mode else "binary",
                   "record": emu.record.name})
        else:
            click.echo(emu.port)
            sys.stdout.flush()
            click.echo(f"playing {emu.record.name} at {emu.fs:g} Hz, {emu.counts.shape[1]} "
                       f"channel(s), speed {speed:g}x; connect with: ecg-bridge monitor "
                       f"{emu.port}" + (f" --ascii-fs {emu.fs:g}" if ascii_mode else ""), err=True)
        while not emu.done.wait(0.2):
            pass
        report = emu.join()
    except KeyboardInterrupt:
        report = emu.stop()
    if as_json:
        _emit({"type": "summary", **report.as_dict()})
    else:
        click.echo(f"played {report.samples_produced} samples: {report.samples_delivered} "
                   f"delivered, {report.samples_lost_faults} lost to faults, "
                   f"{report.samples_lost_link} lost to the link", err=True)


@cli.command()
@click.option("--record", default="data/mitdb/100", show_default=True, type=click.Path())
@click.option("--seconds", type=float, default=300.0, show_default=True, callback=_positive,
              help="Record seconds to encode and decode.")
@click.option("--samples-per-frame", type=click.IntRange(1, 255), default=10, show_default=True)
@click.option("--chunk", type=click.IntRange(1, 1 << 20), default=4096, show_default=True,
              help="Bytes per read, as the transport would deliver them.")
@click.option("--json", "as_json", is_flag=True)
def bench(record: str, seconds: float, samples_per_frame: int, chunk: int,
          as_json: bool) -> None:
    """Measure decoder throughput (samples per second) on a real record."""
    from ecg_edge.firmware_bridge.bench import decoder_throughput

    result = decoder_throughput(record, seconds, samples_per_frame, chunk)
    if as_json:
        _emit(result)
    else:
        for k, v in result.items():
            click.echo(f"{k}: {v}")


@cli.command("link-faults")
@click.option("--record", default="data/mitdb/100", show_default=True, type=click.Path())
@click.option("--hours", type=float, default=24.0, show_default=True, callback=_positive,
              help="Hours of signal (the record is tiled).")
@click.option("--seeds", default="0,1", show_default=True, help="Comma-separated seeds.")
@click.option("--corrupt", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="Probability that a byte arrives changed.")
@click.option("--drop", type=click.FloatRange(0, 1), default=0.001, show_default=True,
              help="Probability that a byte never arrives.")
@click.option("--disconnect-every", type=float, default=1800.0, show_default=True,
              callback=_positive, help="Mean seconds between disconnects (0.5-10 s each).")
@click.option("--protocol", "version", type=click.Choice(["1", "2"]), default="2",
              show_default=True, help="Protocol version the front-end sends.")
@click.option("--json", "as_json", is_flag=True)
def link_faults(record: str, hours: float, seeds: str, corrupt: float, drop: float,
                disconnect_every: float, version: str, as_json: bool) -> None:
    """Hours of a record through a damaged link into the decoder; fails on any miscount."""
    from ecg_edge.firmware_bridge.linkfaults import LinkFaultPlan, run_link_faults

    try:
        seed_list = [int(x) for x in seeds.split(",")]
    except ValueError:
        raise UserError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 0,1") from None
    results = [run_link_faults(record, LinkFaultPlan(
        hours=hours, corrupt=corrupt, drop=drop, disconnect_every_s=disconnect_every,
        version=int(version), seed=seed)).as_dict() for seed in seed_list]
    for r in results:
        if as_json:
            _emit(r)
        else:
            click.echo(" ".join(f"{k}={v}" for k, v in r.items()))
    if not all(r["accounting_exact"] and r["samples_at_wrong_index"] == 0 for r in results):
        raise UserError("delivered + lost != sent, or samples at a wrong index (see above)")


@cli.command()
@click.option("--inputs", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def fuzz(inputs: int, seed: int, workers: int, as_json: bool) -> None:
    """Fuzz the decoders with random and mutated inputs; fails if anything escapes."""
    from ecg_edge.firmware_bridge.fuzz import fuzz_decoder

    result = fuzz_decoder(inputs, seed, workers=workers)
    if as_json:
        _emit(result.as_dict())
    else:
        for k, v in result.as_dict().items():
            click.echo(f"{k}: {v}")
    if result.exceptions or result.invariant_violations or result.chunking_mismatches:
        raise UserError("the decoder failed on some inputs (see first_failures above)")


@cli.command()
@click.option("--record", default="data/mitdb/100", show_default=True, type=click.Path())
@click.option("--speed", type=float, default=20.0, show_default=True, callback=_positive)
@click.option("--duration", type=float, default=60.0, show_default=True, callback=_positive)
@click.option("--bit-flip-rate", type=float, default=1e-4, show_default=True)
@click.option("--drop-rate", type=float, default=1e-4, show_default=True)
@click.option("--burst", default="0.2:16", show_default=True)
@click.option("--disconnect-at", type=float, multiple=True, default=(20.0,), show_default=True)
@click.option("--disconnect-for", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def selftest(record: str, speed: float, duration: float, bit_flip_rate: float,
             drop_rate: float, burst: str, disconnect_at: tuple[float, ...],
             disconnect_for: float, seed: int, as_json: bool) -> None:
    """Play a record through a pty with faults; check the host counts every lost sample."""
    from ecg_edge.firmware_bridge.emulator import EmulatorConfig
    from ecg_edge.firmware_bridge.faults import FaultPlan, parse_burst
    from ecg_edge.firmware_bridge.selftest import link_check

    rate, length = parse_burst(burst)
    plan = FaultPlan(bit_flip_rate=bit_flip_rate, drop_rate=drop_rate, burst_rate=rate,
                     burst_len=length, disconnects=[(a, disconnect_for) for a in disconnect_at],
                     seed=seed)
    result = link_check(record, EmulatorConfig(speed=speed, duration_s=duration), plan)
    if as_json:
        _emit(result)
    else:
        for k, v in result.items():
            if k != "emulator":
                click.echo(f"{k}: {v}")
    if not (result["lost_match"] and result["values_match"]):
        raise UserError("lost-sample accounting disagrees with the emulator (see above); "
                        "please report it with this output")


if __name__ == "__main__":
    main()
