"""Frames to SampleBlocks: exact start/gap accounting, wrap-around, resets, held frames."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_edge.firmware_bridge.blocks import BlockAssembler, LinkEvent, SampleBlock, StreamDecoder
from ecg_edge.firmware_bridge.protocol import (
    Flags,
    StatusCode,
    encode_info,
    encode_samples,
    encode_status,
)

INFO = encode_info(0, 360.0, 5.0, 1)


def _frames(seqs, spf=10, flags=0):
    return [encode_samples(s, (np.arange(spf) + s) % 30000, flags) for s in seqs]


def _blocks(items):
    return [i for i in items if isinstance(i, SampleBlock)]


def _events(items, kind):
    return [i for i in items if isinstance(i, LinkEvent) and i.kind == kind]


def test_lost_frames_become_exact_gaps_and_no_sample_moves():
    seqs = [0, 10, 20, 50, 60, 70, 130]  # frames 30,40 and 80..120 lost
    dec = StreamDecoder()
    items = dec.feed(INFO + b"".join(_frames(seqs)), t_host=1.5)
    blocks = _blocks(items)
    assert [(b.start, b.n, b.gap_before) for b in blocks] == [(0, 30, 0), (50, 30, 20),
                                                              (130, 10, 50)]
    for b in blocks:  # every sample sits at its own index: value == index here
        np.testing.assert_array_equal(b.counts[:, 0], np.arange(b.start, b.end))
        assert b.fs == 360.0 and b.uv_per_count == 5.0 and b.t_host == 1.5
    s = dec.stats()
    assert s.samples_lost == 70 and s.gaps == 2 and s.samples_received == 70
    assert s.next_index == 140


def test_stream_start_is_the_first_sample_seen_not_zero():
    dec = StreamDecoder()
    blocks = _blocks(dec.feed(INFO + b"".join(_frames([5000, 5010, 5030])), 0.0))
    assert [(b.start, b.gap_before) for b in blocks] == [(0, 0), (30, 10)]
    assert dec.stats().first_seq == 5000


def test_sequence_wraps_at_2_pow_32_without_a_gap():
    top = (1 << 32) - 20
    frames = [encode_samples(s % (1 << 32), np.zeros(10)) for s in (top, top + 10, top + 20,
                                                                     top + 40)]
    dec = StreamDecoder(fs=250, uv_per_count=1)
    blocks = _blocks(dec.feed(b"".join(frames), 0.0))
    assert [(b.start, b.n, b.gap_before) for b in blocks] == [(0, 30, 0), (40, 10, 10)]


def test_sequence_going_back_is_a_reset_event_not_a_huge_gap():
    dec = StreamDecoder(fs=250, uv_per_count=1)
    items = dec.feed(b"".join(_frames([1000, 1010, 0, 10])), 0.0)
    assert len(_events(items, "seq_reset")) == 1
    assert [(b.start, b.gap_before) for b in _blocks(items)] == [(0, 0), (20, 0)]
    s = dec.stats()
    assert s.seq_resets == 1 and s.samples_lost == 0 and s.next_index == 40


def test_end_status_reveals_a_loss_at_the_very_end():
    dec = StreamDecoder()
    items = dec.feed(INFO + b"".join(_frames([0, 10])) + encode_status(40, StatusCode.END), 0.0)
    blocks = _blocks(items)
    assert blocks[-1].n == 0 and blocks[-1].gap_before == 20 and blocks[-1].start == 40
    assert dec.stats().samples_lost == 20 and dec.stats().next_index == 40
    # The same loss is not counted twice when samples follow.
    more = _blocks(dec.feed(b"".join(_frames([40])), 0.0))
    assert [(b.start, b.gap_before) for b in more] == [(40, 0)]


def test_flags_split_blocks_and_travel_with_them():
    data = (INFO + b"".join(_frames([0, 10])) + b"".join(_frames([20, 30], flags=Flags.LEAD_OFF))
            + encode_samples(40, np.array([40000] * 10)))
    blocks = _blocks(StreamDecoder().feed(data, 0.0))
    assert [(b.start, b.n, b.lead_off, b.saturated) for b in blocks] == [
        (0, 20, False, False), (20, 20, True, False), (40, 10, False, True)]


def test_samples_before_the_info_frame_are_held_then_released_with_the_gain():
    dec = StreamDecoder()
    first = dec.feed(b"".join(_frames([0, 10])), 0.0)
    assert _blocks(first) == [] and dec.needs_info
    items = dec.feed(INFO, 0.1)
    blocks = _blocks(items)
    assert [(b.start, b.n) for b in blocks] == [(0, 20)]
    assert blocks[0].fs == 360.0 and blocks[0].uv_per_count == 5.0 and not dec.needs_info
    assert len(_events(items, "info")) == 1


def test_held_overflow_is_counted_as_a_gap_never_dropped_silently():
    asm = BlockAssembler(max_held_samples=25)
    from ecg_edge.firmware_bridge.decoder import decode_all

    frames, _ = decode_all(b"".join(_frames([0, 10, 20, 30])))
    assert asm.push(frames, 0.0) == []
    info, _ = decode_all(INFO)
    blocks = _blocks(asm.push(info, 0.0))
    assert sum(b.n for b in blocks) + sum(b.gap_before for b in blocks) == 40
    assert blocks[0].gap_before == 20 and blocks[0].start == 20
    assert asm.samples_lost == 20 and asm.samples_received == 20 and asm.gaps == 1


def test_info_disagreeing_with_user_fallback_warns_and_wins():
    dec = StreamDecoder(fs=250.0, uv_per_count=1.0)
    items = dec.feed(INFO + _frames([0])[0], 0.0)
    assert len(_events(items, "warning")) == 1
    assert _blocks(items)[0].fs == 360.0


@pytest.mark.parametrize("cut", [1, 3, 17, 64])
def test_stream_decoder_chunking_gives_same_blocks(cut):
    data = INFO + b"".join(_frames([0, 10, 40, 50, 60]))
    whole = _blocks(StreamDecoder().feed(data, 0.0))
    dec = StreamDecoder()
    parts = []
    for i in range(0, len(data), cut):
        parts += _blocks(dec.feed(data[i:i + cut], 0.0))
    def flat(bs):
        samples = [(b.start + k, int(v)) for b in bs for k, v in enumerate(b.counts[:, 0])]
        gaps = [(b.start, b.gap_before) for b in bs if b.gap_before]
        return samples, gaps

    assert flat(parts) == flat(whole)
    assert flat(whole)[1] == [(40, 20)]
