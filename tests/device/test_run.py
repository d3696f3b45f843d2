"""`run` on a real pseudo-terminal fed by the front-end emulator gives `replay`'s events."""

import json
import subprocess
import sys

import pytest

from ecg_edge.firmware_bridge.emulator import EmulatorConfig, start_emulator
from ecg_edge.firmware_bridge.faults import FaultPlan
from tests.conftest import MITDB, device_cli


def _beats(path):
    return [(e["sample"], e["score"], e["flag"]) for e in map(json.loads, path.open())
            if e["type"] == "beat"]


@pytest.mark.slow
def test_run_over_pty_equals_replay(tmp_path):
    emu = start_emulator(MITDB / "106", EmulatorConfig(speed=60.0, duration_s=90))
    try:
        run = device_cli("run", emu.port, "--no-reconnect", "--quiet", "--events",
                   str(tmp_path / "run.jsonl"))
    finally:
        emu.stop()
    assert run.returncode == 0, run.stderr
    rep = device_cli("replay", str(MITDB / "106"), "--duration", "90", "--quiet", "--events",
               str(tmp_path / "replay.jsonl"))
    assert rep.returncode == 0, rep.stderr
    a, b = _beats(tmp_path / "run.jsonl"), _beats(tmp_path / "replay.jsonl")
    assert len(a) > 90 and a == b
    assert json.loads(run.stdout)["link"]["crc_errors"] == 0


@pytest.mark.slow
def test_run_counts_samples_lost_to_faults(tmp_path):
    plan = FaultPlan(seed=3, drop_rate=2e-4)
    emu = start_emulator(MITDB / "119", EmulatorConfig(speed=60.0, duration_s=90), plan)
    try:
        run = device_cli("run", emu.port, "--no-reconnect", "--quiet", "--events",
                   str(tmp_path / "run.jsonl"))
        report = emu.report()
    finally:
        emu.stop()
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    gaps = [e for e in map(json.loads, (tmp_path / "run.jsonl").open()) if e["type"] == "gap"]
    assert summary["gaps"] == len(gaps) > 0
    assert summary["samples_lost"] == sum(g["lost_samples"] for g in gaps)
    assert summary["samples_lost"] == report.samples_lost


@pytest.mark.slow
def test_sigterm_ends_run_with_a_summary(tmp_path):
    import signal
    import time

    emu = start_emulator(MITDB / "100", EmulatorConfig(speed=5.0))
    events = tmp_path / "ev.jsonl"
    try:
        proc = subprocess.Popen([sys.executable, "-m", "ecg_edge.device.cli", "run", emu.port,
                                 "--quiet", "--events", str(events)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until beats are flowing
            if events.exists() and '"type":"beat"' in events.read_text():
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        emu.stop()
    assert proc.returncode == 0, stderr
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert lines[-1]["type"] == "summary" and lines[-1]["beats"] > 0
    assert json.loads(stdout)["beats"] == lines[-1]["beats"]


@pytest.mark.slow
def test_recorded_session_replays_to_the_same_beats(tmp_path):
    """`run --record` over a real pty with a lossy link: the record holds what came, the lost
    samples invalid; its annotations are the session's calls; replaying the record gives the
    session's beats again (gaps where the link lost samples) and wfdb-python reads it all."""
    import stat

    import numpy as np
    import wfdb

    from ecg_edge.firmware_bridge.records import read_record

    plan = FaultPlan(seed=3, drop_rate=2e-4)
    emu = start_emulator(MITDB / "119", EmulatorConfig(speed=60.0, duration_s=90), plan)
    base = tmp_path / "session"
    try:
        run = device_cli("run", emu.port, "--no-reconnect", "--quiet", "--events",
                         str(tmp_path / "run.jsonl"), "--record", str(base))
    finally:
        emu.stop()
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["samples_lost"] > 0
    for ext in ("hea", "dat", "ecg"):
        assert stat.S_IMODE((tmp_path / f"session.{ext}").stat().st_mode) == 0o600
    rec, source = read_record(base), read_record(MITDB / "119")
    assert rec.n_samples == summary["samples_in"] + summary["samples_lost"]
    lost = rec.invalid[:, 0]
    assert int(lost.sum()) == summary["samples_lost"]
    np.testing.assert_array_equal(rec.counts[~lost, 0], source.counts[: rec.n_samples][~lost, 0])
    assert rec.fs == source.fs and rec.uv_per_count[0] == source.uv_per_count[0]
    phys = wfdb.rdrecord(str(base)).p_signal[:, 0]
    np.testing.assert_array_equal(np.isnan(phys), lost)
    ann = wfdb.rdann(str(base), "ecg")
    live = [(e["sample"], e["class"]) for e in map(json.loads, (tmp_path / "run.jsonl").open())
            if e["type"] == "beat"]
    assert [(s, y) for s, y in zip(ann.sample, ann.symbol) if y in "NSVFQ"] == live
    start = next(e for e in map(json.loads, (tmp_path / "run.jsonl").open())
                 if e["type"] == "start")
    header = wfdb.rdheader(str(base))  # the record's start time is the session's
    assert start["started"][:10] == str(header.base_date)
    rep = device_cli("replay", str(base), "--quiet", "--events", str(tmp_path / "rep.jsonl"))
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["samples_lost"] == summary["samples_lost"]
    assert _beats(tmp_path / "rep.jsonl") == _beats(tmp_path / "run.jsonl")
