"""Issue 16, defect 1: a sequence number that passes the CRC must not move the stream.

The same stream is tried in protocol v1 (CRC-16, jumps confirmed by the next frame) and v2
(CRC-32, small forward jumps trusted, large ones confirmed). Real record samples throughout.
"""

from __future__ import annotations

import numpy as np
import pytest

from ecg_edge.firmware_bridge.blocks import SampleBlock, StreamDecoder
from ecg_edge.firmware_bridge.linkfaults import LinkFaultPlan, frames_int16, run_link_faults
from ecg_edge.firmware_bridge.protocol import encode_info, encode_samples
from tests.conftest import MITDB

SPF = 10


def _stream(counts, version, wild_at=None, wild_seq=None, skip=()):
    parts = [encode_info(0, 360.0, 5.0, 1, version=version)]
    for k in range(len(counts) // SPF):
        if k in skip:
            continue
        seq = wild_seq if k == wild_at else k * SPF
        parts.append(encode_samples(seq, counts[k * SPF:(k + 1) * SPF], version=version))
    return b"".join(parts)


def _decode(data, read=64):
    dec = StreamDecoder()
    items = []
    for i in range(0, len(data), read):
        items += dec.feed(data[i:i + read], 0.0)
    items += dec.finish(0.0)
    return [b for b in items if isinstance(b, SampleBlock)], dec.stats()


def _placed_right(blocks, truth):
    return all(np.array_equal(b.counts[:, 0], truth[b.start:b.end]) for b in blocks if b.n)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("wild", [10**9 + 500, 3, 2**32 - 7])  # far ahead, backwards, reset-like
def test_frame_with_a_wild_sequence_number_is_dropped_not_a_gap(record_100, version, wild):
    truth = record_100.counts[:2000, 0].astype(np.int64)
    blocks, s = _decode(_stream(truth, version, wild_at=50, wild_seq=wild))
    assert s.samples_lost == SPF and s.gaps == 1  # exactly the dropped frame's samples
    assert s.samples_received + s.samples_lost == len(truth)
    assert s.seq_unconfirmed == 1 and s.seq_resets == 0
    assert _placed_right(blocks, truth)


@pytest.mark.parametrize("version", [1, 2])
def test_real_gaps_are_still_exact_after_confirmation(record_100, version):
    truth = record_100.counts[:3000, 0].astype(np.int64)
    skip = {5, 6, 40, 100, 101, 102, 299}  # 299: the very last frame (END never comes)
    blocks, s = _decode(_stream(truth, version, skip=skip))
    assert s.samples_lost == SPF * 6 and s.seq_unconfirmed == 0
    assert s.samples_received == len(truth) - SPF * 7
    assert _placed_right(blocks, truth)


def test_a_lone_v1_frame_after_a_gap_is_dropped_when_nothing_confirms_it(record_100):
    """The price of v1: frame 10 (after a gap) is followed by another loss, so nothing
    confirms it and its samples join the next confirmed gap; the count stays exact."""
    truth = record_100.counts[:400, 0].astype(np.int64)
    blocks, s = _decode(_stream(truth, 1, skip={9, 11}))
    assert s.seq_unconfirmed == 1 and s.samples_lost == 3 * SPF
    assert s.samples_received + s.samples_lost == len(truth)
    assert _placed_right(blocks, truth)


def test_vectorised_bench_frames_equal_the_encoder(record_100):
    counts = record_100.counts[:200, 0].astype(np.int64)
    counts[7] = 40000  # clipped and flagged SATURATED, like encode_samples
    for version in (1, 2):
        rows = frames_int16(0, counts, SPF, version)
        for k in range(len(rows)):
            want = encode_samples(k * SPF, counts[k * SPF:(k + 1) * SPF], version=version)
            assert rows[k].tobytes() == want


@pytest.mark.parametrize("seed", [0, 1])
def test_an_hour_of_link_faults_accounts_for_every_sample(seed):
    """The short form of `ecg-bridge link-faults` (24 h x 2 seeds is the benchmark)."""
    r = run_link_faults(MITDB / "100", LinkFaultPlan(hours=1.0, seed=seed,
                                                     disconnect_every_s=300.0))
    assert r.disconnects >= 1 and r.crc_errors > 1000 and r.bytes_dropped > 100
    assert r.accounting_exact and r.tail_unknown == 0
    assert r.samples_at_wrong_index == 0 and r.samples_wrong_value == 0
    assert r.intact_delivered_pct >= 99.99


def test_link_faults_in_v1_stay_exact_at_a_cost_in_delivered_frames():
    r = run_link_faults(MITDB / "100", LinkFaultPlan(hours=0.25, seed=2, version=1,
                                                     disconnect_every_s=300.0))
    assert r.accounting_exact and r.samples_at_wrong_index == 0
    assert r.seq_unconfirmed > 0  # frames after a gap that nothing confirmed


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("read", [37, 4096, 1 << 20])
def test_runs_read_at_once_equal_frame_by_frame(record_100, version, read):
    """The decoder's run step (one numpy pass over frames that continue each other) must give
    exactly the blocks and counters of the frame-by-frame scan: on a real record's frames with
    flipped bytes, dropped bytes, a lost frame, a wild sequence number and a flag change."""
    counts = record_100.counts[:36000, 0].astype(np.int64)
    frames = frames_int16(0, counts, SPF, version)
    frames[100:140, 10] = 0x02  # a saturated stretch: another header, so runs must split
    rng = np.random.default_rng(version)
    data = np.delete(frames, [500, 501, 900], axis=0).reshape(-1).copy()
    hit = rng.choice(data.size, 60, replace=False)
    data[hit] ^= rng.integers(1, 256, hit.size, dtype=np.uint8)
    data = np.delete(data, rng.choice(data.size, 20, replace=False))
    wild = encode_samples(10**9, counts[:SPF], version=version)
    stream = encode_info(0, 360.0, 5.0, 1, version=version) + data[:30000].tobytes() + wild \
        + data[30000:].tobytes()

    def decode(merge):
        dec = StreamDecoder(merge_runs=merge)
        items = []
        for i in range(0, len(stream), read):
            items += dec.feed(stream[i:i + read], 0.0)
        items += dec.finish(0.0)
        return [(b.start, b.gap_before, b.saturated, b.counts.tobytes()) for b in items
                if isinstance(b, SampleBlock)], dec.stats()

    merged, merged_stats = decode(True)
    single, single_stats = decode(False)
    assert merged_stats == single_stats and merged == single
    assert merged_stats.crc_errors > 0 and merged_stats.gaps > 0
