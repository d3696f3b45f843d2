"""The `ecg-bridge` commands, run as a user would (subprocesses for the streaming ones)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ecg_edge.firmware_bridge.cli import cli as main

from .conftest import MITDB, ROOT

CLI = [sys.executable, "-m", "ecg_edge.firmware_bridge.cli"]


def _spawn(*args: str, sigint_ignored: bool = False) -> subprocess.Popen:
    """``sigint_ignored``: start it as a non-interactive shell starts a background job."""
    pre = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen([*CLI, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=pre)


def test_emulate_prints_the_port_first_and_monitor_reads_it():
    emu = _spawn("emulate", str(MITDB / "106"), "--speed", "20", "--duration", "20",
                 "--drop-rate", "1e-3", "--seed", "5", "--json")
    try:
        first = json.loads(emu.stdout.readline())  # flushed before anything is played
        assert first["fs"] == 360.0 and first["channels"] == 1 and first["mode"] == "binary"
        mon = subprocess.run([*CLI, "monitor", first["port"], "--json", "--seconds", "3",
                              "--interval", "0.5", "--no-reconnect"],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert mon.returncode == 0, mon.stderr
        records = [json.loads(line) for line in mon.stdout.splitlines()]
        summary = records[-1]
        assert summary["type"] == "summary"
        reports = [r for r in records if r["type"] == "report"]
        assert reports and max(r["rate_sps"] for r in reports) > 1000  # 20 x 360 Hz
        assert summary["samples_lost"] > 0 and summary["crc_errors"] > 0
        gaps = [r for r in records if r["type"] == "gap"]
        assert sum(g["lost"] for g in gaps) == summary["samples_lost"]
        out, _ = emu.communicate(timeout=30)
        emu_summary = json.loads(out.splitlines()[-1])
        assert emu_summary["type"] == "summary" and emu_summary["finished"]
        assert emu_summary["samples_lost_faults"] >= summary["samples_lost"]
    finally:
        emu.kill()


@pytest.mark.parametrize("sig, background", [(signal.SIGINT, False), (signal.SIGINT, True),
                                             (signal.SIGTERM, False)])
def test_emulate_text_mode_first_line_is_the_path_and_stops_cleanly(sig, background):
    emu = _spawn("emulate", str(MITDB / "100"), "--ascii", sigint_ignored=background)
    try:
        path = emu.stdout.readline().strip()
        assert path.endswith("/tty") and os.path.islink(path)
        emu.send_signal(sig)
        _, err = emu.communicate(timeout=15)
        assert "Traceback" not in err
        assert "played 0 samples" in err
        assert not os.path.exists(os.path.dirname(path))  # the port's folder is cleaned up
    finally:
        emu.kill()


@pytest.mark.parametrize("args, says", [
    (["emulate", "no/such/record.csv", "--fs", "360"], "file not found"),
    (["emulate", str(MITDB / "100"), "--lead", "V9"], "no lead named 'V9'"),
    (["emulate", str(MITDB / "100"), "--bit-flip-rate", "2"], "probability between 0 and 1"),
    (["emulate", str(MITDB / "100"), "--burst", "often"], "RATE[:LENGTH]"),
    (["emulate", str(MITDB / "100"), "--lead-off", "ten"], "START:DURATION"),
    (["emulate", str(MITDB / "100"), "--speed", "-2"], "--speed"),
    (["monitor", "/dev/no-such-port"], "cannot open /dev/no-such-port"),
])
def test_bad_input_is_one_line_and_nonzero_exit(args, says):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    text = result.output.strip()
    assert says in text and len(text.splitlines()) == 1
    assert "Traceback" not in text


def test_csv_without_rate_says_what_to_give(tmp_path):
    csv = tmp_path / "ecg.csv"
    csv.write_text("1,2\n3,4\n")
    done = subprocess.run([*CLI, "emulate", str(csv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "sample rate" in done.stderr
    assert "Traceback" not in done.stderr


def test_ports_json_lists_what_pyserial_sees():
    result = CliRunner().invoke(main, ["ports", "--json"])
    assert result.exit_code == 0
    for line in result.output.splitlines():
        assert {"device", "description", "hwid"} <= set(json.loads(line))


def test_bench_reports_throughput_far_above_real_time():
    result = CliRunner().invoke(main, ["bench", "--record", str(MITDB / "118"), "--seconds", "30",
                                       "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["samples"] == 30 * 360 and r["channels"] == 2
    assert r["stream_decoder_samples_per_s"] > 100 * 360


def test_selftest_command_agrees_with_the_emulator():
    result = CliRunner().invoke(main, ["selftest", "--record", str(MITDB / "118"),
                                       "--duration", "20", "--speed", "40",
                                       "--disconnect-at", "8", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["lost_match"] and r["values_match"] and r["host_samples_lost"] > 0


def test_fuzz_command_small_run():
    result = CliRunner().invoke(main, ["fuzz", "--inputs", "3000", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["inputs"] == 3000 and r["exceptions"] == 0
