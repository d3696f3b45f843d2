import io
import json

import numpy as np
import pytest

from ecg_edge.device import reference
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.events import EpisodeConfig, EpisodeTracker, EventWriter
from ecg_edge.device.monitor import Monitor, record_blocks, run_blocks
from ecg_edge.device.signal_path import process_signal
from ecg_edge.firmware_bridge.blocks import LinkEvent, SampleBlock
from ecg_edge.firmware_bridge.errors import UserError

CFG = SignalConfig()


def _scorer(beats):
    return reference.score(beats, "combined")


def _monitor(events):
    return Monitor(CFG, _scorer, 0.5, events.append)


def test_replay_events_equal_batch_processing(record_119):
    events = []
    summary = run_blocks(_monitor(events), record_blocks(record_119, block_s=0.37))
    beats = [e for e in events if e["type"] == "beat"]
    batch = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    assert len(beats) == len(batch) == summary["beats"]
    np.testing.assert_array_equal([e["sample"] for e in beats], batch.sample)
    np.testing.assert_allclose([e["score"] for e in beats], _scorer(batch), atol=1e-5)
    assert events[0]["type"] == "start" and events[-1]["type"] == "summary"
    assert summary["flagged"] == sum(e["flag"] for e in beats) > 100
    assert summary["episodes"] >= 1 and summary["samples_lost"] == 0


def test_gaps_are_counted_and_no_beat_spans_them(record_100):
    blocks = list(record_blocks(record_100, block_s=1.0))[:240]
    kept = blocks[:60] + blocks[63:]  # three seconds lost
    events = []
    summary = run_blocks(_monitor(events), kept)
    gaps = [e for e in events if e["type"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["lost_samples"] == 3 * 360 and gaps[0]["sample"] == 60 * 360
    assert summary["samples_lost"] == 3 * 360 and summary["samples_in"] == 237 * 360
    beats = [e for e in events if e["type"] == "beat"]
    assert not any(60 * 360 <= e["sample"] < 63 * 360 for e in beats)
    after = [e for e in beats if e["sample"] >= 63 * 360]
    assert after[0]["hr_bpm"] is None  # no RR across the gap (NaN -> null)


def test_lead_off_and_link_status(record_100):
    blocks = list(record_blocks(record_100, block_s=1.0))[:90]
    for b in blocks[40:45]:
        b.lead_off = True
    items = blocks[:20] + [LinkEvent("reconnected", 0.0, "port back", sample=20 * 360)]
    items += blocks[20:]
    events = []
    summary = run_blocks(_monitor(events), items)
    status = [e["status"] for e in events if e["type"] == "status"]
    assert status == ["reconnected", "lead_off", "lead_on"]
    assert summary["lead_off_samples"] == 5 * 360 and summary["samples_lost"] == 0


def test_bad_streams_are_refused(record_100):
    b = next(record_blocks(record_100))
    m = _monitor([])
    with pytest.raises(UserError, match="sample rate is unknown"):
        m.feed(SampleBlock(0, b.counts, 0.0, 5.0))
    m.feed(b)
    with pytest.raises(UserError, match="outside 0 < fs"):  # a rate change is a new segment,
        m.feed(SampleBlock(b.end, b.counts, 1e9, 5.0))  # but no resampler serves 1 GHz
    with pytest.raises(UserError, match="overlapping"):
        m.feed(SampleBlock(0, b.counts, 360.0, 5.0))


def test_episode_hysteresis():
    tr = EpisodeTracker(EpisodeConfig(enter=2, window=3, exit=2, exit_s=0))
    flags = [1, 0, 0, 1, 0, 1, 1, 0, 0, 1]
    out = []
    for i, f in enumerate(flags):
        out += tr.beat(bool(f), float(i), i, float(f))
    kinds = [(e["type"], e["t"]) for e in out]
    assert kinds == [("episode_start", 3.0), ("episode_end", 8.0)]


def test_an_episode_stays_open_through_a_short_pause_in_the_ectopy():
    """Bigeminy that pauses for a few sinus beats is one episode, not one per run: it ends
    only after ``exit`` unflagged beats that also span ``exit_s`` seconds."""
    bigeminy = [1, 0] * 5
    beats = bigeminy + [0] * 5 + bigeminy + [0] * 12  # 0.8 s per beat
    for exit_s, expected in ((0.0, 2), (6.0, 1)):
        tr = EpisodeTracker(EpisodeConfig(enter=2, window=4, exit=4, exit_s=exit_s))
        out = [e for i, f in enumerate(beats) for e in tr.beat(bool(f), 0.8 * i, i, 1.0)]
        ends = [e for e in out if e["type"] == "episode_end"]
        assert sum(e["type"] == "episode_start" for e in out) == len(ends) == expected
        # It ends on the first unflagged beat at least exit_s after the last flagged one.
        assert ends[-1]["t"] - 0.8 * 23 >= max(exit_s, 4 * 0.8 - 1e-9)


def test_event_writer_writes_flushed_json_lines(tmp_path):
    f = (tmp_path / "ev.jsonl").open("w")
    buf = io.StringIO()
    w = EventWriter(buf, f)
    w({"type": "beat", "score": float("nan")})
    w({"type": "summary"})
    assert (tmp_path / "ev.jsonl").read_text() == buf.getvalue()
    assert [json.loads(x)["type"] for x in buf.getvalue().splitlines()] == ["beat", "summary"]
    assert json.loads(buf.getvalue().splitlines()[0])["score"] is None
