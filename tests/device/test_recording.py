"""The session recorder on a real record's blocks: lost and lead-off samples, a rate change."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import wfdb

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.monitor import Monitor, record_blocks
from ecg_edge.device.recording import SessionRecorder
from ecg_edge.device.scoring import reference_scorer
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.records import read_record


def _session(blocks, base, warnings: list[str] | None = None):
    recorder = SessionRecorder(base, warn=[].append if warnings is None else warnings.append)
    events: list[dict] = []

    def emit(ev):
        events.append(ev)
        recorder.event(ev)

    monitor = Monitor(SignalConfig(), reference_scorer("combined"), 1.0, emit)
    for b in blocks:
        recorder.feed(b)
        monitor.feed(b)
    monitor.finish()
    recorder.close()
    return events


def test_lost_and_lead_off_samples_are_invalid(tmp_path, record_100):
    blocks = list(record_blocks(record_100, None, 5.0))[:14]
    lead_off = blocks[4] = replace(blocks[4], lead_off=True)
    dropped = blocks.pop(8)  # the link lost this one
    blocks[-1] = replace(blocks[-1], lead_off=True)  # and the stream ends with the lead off
    events = _session(blocks, tmp_path / "s")
    rec = read_record(tmp_path / "s")
    assert rec.n_samples == blocks[-1].end
    expect = np.zeros(rec.n_samples, bool)
    for b in (lead_off, dropped, blocks[-1]):
        expect[b.start : b.end] = True
    np.testing.assert_array_equal(rec.invalid[:, 0], expect)
    np.testing.assert_array_equal(rec.counts[~expect, 0],
                                  record_100.counts[: rec.n_samples][~expect, 0])
    header = wfdb.rdheader(str(tmp_path / "s"))
    assert header.base_date is not None and header.sig_name == ["ECG"]
    ann = wfdb.rdann(str(tmp_path / "s"), "ecg")
    beats = [(e["sample"], e["class"]) for e in events if e["type"] == "beat"]
    assert [(s, y) for s, y in zip(ann.sample, ann.symbol) if y in "NSVFQ"] == beats


def test_a_rate_change_ends_the_recording_not_the_session(tmp_path, record_100):
    blocks = list(record_blocks(record_100, None, 5.0))[:8]
    blocks[5:] = [replace(b, fs=250.0) for b in blocks[5:]]
    warnings: list[str] = []
    _session(blocks, tmp_path / "s", warnings)
    assert len(warnings) == 1 and "recording ends there" in warnings[0]
    assert read_record(tmp_path / "s").n_samples == blocks[5].start


def test_record_into_a_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such folder for --record"):
        SessionRecorder(tmp_path / "nowhere" / "s")


FULL_CARD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # the card is full at 200 kB
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.monitor import Monitor, record_blocks
from ecg_edge.device.recording import SessionRecorder
from ecg_edge.device.scoring import reference_scorer
from ecg_edge.firmware_bridge.records import read_record
rec = read_record(sys.argv[1])
rec.counts = rec.counts[: 360 * 600]
recorder = SessionRecorder(sys.argv[2], warn=lambda m: print(m, file=sys.stderr))
def emit(ev):
    recorder.event(ev)
monitor = Monitor(SignalConfig(), reference_scorer("combined"), 1.0, emit)
for block in record_blocks(rec, None, 1.0):
    recorder.feed(block)
    monitor.feed(block)
print(monitor.finish()["beats"])
recorder.close()
"""


def test_a_full_card_ends_the_recording_not_the_monitoring(tmp_path):
    """The file-size limit the kernel enforces (a full SD card's stand-in that needs no
    mount): the write fails, one warning says so, the monitor runs to the end, and the record
    holds what was written with a header that says how much."""
    import subprocess
    import sys

    from tests.conftest import MITDB

    out = subprocess.run([sys.executable, "-c", FULL_CARD, str(MITDB / "100"),
                          str(tmp_path / "s")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 700  # ten minutes of 100 monitored
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the recording" in lines[0]
    rec = read_record(tmp_path / "s")
    assert rec.n_samples == 200_000 // 4
    assert wfdb.rdheader(str(tmp_path / "s")).sig_len == rec.n_samples
    assert (tmp_path / "s.ecg").exists()
