"""Gathering a live link's reads (one frame each) before the monitor: same events, fewer calls."""

from __future__ import annotations

import itertools

import numpy as np

from ecg_edge.device import reference
from ecg_edge.device.coalesce import coalesced
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.monitor import Monitor
from ecg_edge.firmware_bridge.bench import encode_stream
from ecg_edge.firmware_bridge.blocks import LinkEvent, SampleBlock, StreamDecoder


def _reads(record, seconds: float, read: int = 32) -> list:
    """Two minutes of a real record as a port delivers them at real time: ~one frame a read."""
    n = int(seconds * record.fs)
    data = encode_stream(record.counts[:n, :1], record.fs, float(record.uv_per_count[0]))
    dec = StreamDecoder()
    items = []
    for i in range(0, len(data), read):
        items += dec.feed(data[i:i + read], 0.0)
    return items + dec.finish(0.0)


def _events(items) -> tuple[list[dict], int]:
    events: list[dict] = []
    m = Monitor(SignalConfig(), lambda b: reference.score(b, "combined"), 0.5, events.append)
    calls = 0
    for item in items:
        if item is not None:
            m.feed(item)
            calls += 1
    m.finish()
    return events, calls


def test_gathered_reads_give_the_events_of_read_by_read(record_100):
    items = _reads(record_100, 120)
    direct, direct_calls = _events(items)
    gathered, gathered_calls = _events(coalesced(items, batch_s=0.5))
    assert [e for e in gathered if e["type"] != "summary"] == \
        [e for e in direct if e["type"] != "summary"]
    assert sum(e["type"] == "beat" for e in direct) > 100
    # 0.5 s of 360 Hz per call instead of one 10-sample frame
    assert gathered_calls * 10 < direct_calls
    blocks = [b for b in coalesced(items, 0.5) if isinstance(b, SampleBlock)]
    assert all(b.n >= 180 for b in blocks[:-1])
    starts = np.array([b.start for b in blocks])
    assert np.array_equal(starts[1:], starts[:-1] + np.array([b.n for b in blocks[:-1]]))


def test_events_and_heartbeats_release_what_is_held_in_order():
    block = SampleBlock(0, np.zeros((10, 1), np.int32), 360.0, 1.0)
    later = SampleBlock(10, np.ones((10, 1), np.int32), 360.0, 1.0)
    event = LinkEvent("disconnected", 0.0, "gone")
    out = list(coalesced([block, later, event, None, block], batch_s=10.0))
    assert isinstance(out[0], SampleBlock) and out[0].n == 20 and out[1] is event
    assert out[2] is None and out[3].n == 10  # the end of the stream releases the rest


def test_a_slow_trickle_is_released_after_the_longest_wait():
    ticks = itertools.count(0.0, 0.3)  # each block arrives 0.3 s after the last
    blocks = [SampleBlock(10 * k, np.zeros((10, 1), np.int32), 360.0, 1.0) for k in range(8)]
    out = list(coalesced(blocks, batch_s=10.0, max_wait_s=1.0, clock=lambda: next(ticks)))
    assert [b.n for b in out] == [40, 40]
