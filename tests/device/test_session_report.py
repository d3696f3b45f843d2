"""The session report from a real replay's events (and the record's strips)."""

from __future__ import annotations

import os
import stat

import pytest

from ecg_edge.device.cli import cli
from ecg_edge.device.session_report import read_events, session_stats, write_report
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import MITDB, REPO, device_cli


@pytest.fixture(scope="module")
def events_119(tmp_path_factory):
    """Events of the first 10 minutes of record 119 (ventricular bigeminy) replayed."""
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("ev") / "events.jsonl"
    res = CliRunner().invoke(cli, ["replay", str(MITDB / "119"), "--duration", "600",
                                   "--quiet", "--events", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_report_has_summary_trend_episodes_and_strips(events_119, tmp_path):
    out = write_report(events_119, tmp_path / "r.html", read_record(MITDB / "119"))
    doc = out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # health data
    stats = session_stats(read_events(events_119))
    assert 600 < stats["beats"] < 900 and stats["flagged"] > 20
    assert 50 < stats["hr_mean"] < 100
    assert f"<td>{stats['beats']} (" in doc
    assert doc.count("<polyline") >= 1 + 5  # the HR trend and at least five strips
    assert "anomalous beats" in doc and "most anomalous beats" in doc
    # the rhythm summary's tallies: 119's PVCs come singly (bigeminy), SDNN of its N beats
    runs = stats["ectopy_runs"]["V"]
    assert runs["single"] > 50 and f"<td>{runs['single']} / {runs['couplets']} / " in doc
    hr = stats["heart_rate"]
    assert 10 < hr["sdnn_ms"] < 200 and f"<td>{hr['sdnn_ms']:.0f} ms</td>" in doc
    assert 30 < hr["slowest_bpm"] < hr["fastest_bpm"] < 200
    assert f"{hr['fastest_bpm']:.0f} bpm at " in doc
    assert "BIGEMINY" in doc  # named among the episodes
    assert "<script" not in doc and "http" not in doc.split("<svg", 1)[1].replace(
        "http://www.w3.org/2000/svg", "")  # self-contained: nothing fetched


def test_report_without_record_or_summary(events_119, tmp_path):
    lines = events_119.read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(ln for ln in lines if '"summary"' not in ln) + "\n")
    doc = write_report(cut, tmp_path / "r.html").read_text()
    assert "ended without a summary" in doc and "Give the recording" in doc


@pytest.mark.parametrize("content, message", [
    ("", "no beat or summary events"),
    ("not json\n", "line 1 is not JSON"),
    ("[1, 2]\n", "line 1 is not an event object"),
])
def test_bad_events_file_is_one_clear_line(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(UserError, match=message):
        read_events(bad)
    proc = device_cli("report", str(bad), "--out", str(tmp_path / "r.html"),
                      env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_hour_by_hour_table(events_119, tmp_path):
    """Each hour's beats, ectopics and rate; a second hour (the same beats an hour later)
    gets a row of its own, labelled by the clock where the session says when it began."""
    import copy

    from ecg_edge.device.session_report import _hour_label, hourly

    s = read_events(events_119)
    v = sum(b.get("class") == "V" and not b.get("learning") for b in s.beats)
    (row,) = hourly(s, 600.0)
    assert row["V"] == v > 50 and 50 < row["hr_mean"] < 100 and row["pauses"] == 0
    later = copy.deepcopy(s.beats)
    for b in later:
        b["t"] += 3600.0
    s.beats += later
    first, second = hourly(s, 4200.0)
    assert (first["V"], first["beats"]) == (second["V"], second["beats"]) == (v, row["beats"])
    assert _hour_label({}, 1) == "1-2 h"
    assert _hour_label({"started": "2026-12-06T06:40:00+01:00"}, 1) == "06 Dec 07:40"
    doc = write_report(events_119, tmp_path / "r.html").read_text()
    assert "Hour by hour" in doc and f"<td>0-1 h</td><td>{row['beats']}</td><td>{v}</td>" in doc
