"""The pure frame decoder: resynchronisation, exact byte accounting, chunking invariance."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ecg_edge.firmware_bridge.crc import crc32
from ecg_edge.firmware_bridge.decoder import FrameDecoder, decode_all
from ecg_edge.firmware_bridge.protocol import (
    SYNC,
    FrameType,
    SamplesFrame,
    encode_frame,
    encode_info,
    encode_samples,
)


def _stream(n_frames: int, spf: int = 10, start: int = 0) -> tuple[bytes, list[bytes]]:
    frames = [encode_samples(start + i * spf, np.arange(spf) + i * spf) for i in range(n_frames)]
    return b"".join(frames), frames


def _seqs(frames):
    return [f.seq for f in frames if isinstance(f, SamplesFrame)]


def _balanced(c) -> bool:
    return c.bytes_in == c.bytes_in_frames + c.bytes_skipped


def test_clean_stream_decodes_every_frame_with_nothing_skipped():
    data, frames = _stream(50)
    out, c = decode_all(data)
    assert _seqs(out) == [i * 10 for i in range(50)]
    assert c.frames_ok == 50 and c.bytes_skipped == 0 and c.crc_errors == 0
    assert c.bytes_in_frames == len(data)


def test_bit_flip_loses_exactly_the_damaged_frame_and_counts_its_bytes():
    data, frames = _stream(10)
    bad = bytearray(data)
    at = sum(map(len, frames[:4])) + 15  # inside frame 4's samples
    bad[at] ^= 0x10
    out, c = decode_all(bytes(bad))
    assert _seqs(out) == [0, 10, 20, 30, 50, 60, 70, 80, 90]
    assert c.crc_errors == 1
    assert c.bytes_skipped == len(frames[4])
    assert _balanced(c)


def test_dropped_byte_and_garbage_between_frames_resynchronise():
    data, frames = _stream(6)
    off = [sum(map(len, frames[:i])) for i in range(7)]
    damaged = (data[:off[1] + 3] + data[off[1] + 4:off[3]] + b"\x00\xec\x47\x01garbage\xec"
               + data[off[3]:])
    out, c = decode_all(damaged)
    assert _seqs(out) == [0, 20, 30, 40, 50]
    assert _balanced(c) and c.bytes_skipped == len(frames[1]) - 1 + 12


def test_corrupted_length_field_cannot_swallow_following_frames():
    data, frames = _stream(20)
    bad = bytearray(data)
    bad[4:6] = (1000).to_bytes(2, "little")  # frame 0 now claims a 1000-byte body
    dec = FrameDecoder()
    got = []
    for i in range(0, len(bad), 7):
        got += dec.feed(bytes(bad[i:i + 7]))
    got += dec.flush()
    assert _seqs(got) == [i * 10 for i in range(1, 20)]
    assert dec.counters.crc_errors + dec.counters.truncated >= 1
    assert _balanced(dec.counters)


def test_flush_delivers_intact_frames_queued_behind_a_truncated_header():
    data, frames = _stream(3)
    bad = bytearray(data)
    bad[4:6] = (900).to_bytes(2, "little")
    dec = FrameDecoder()
    assert dec.feed(bytes(bad)) == []  # waiting for 900 bytes that will never come
    out = dec.flush()
    assert _seqs(out) == [10, 20]
    assert dec.counters.truncated == 1 and dec.pending == 0 and _balanced(dec.counters)


def test_impossible_length_is_rejected_at_once():
    out, c = decode_all(SYNC + bytes([1, 2]) + (5000).to_bytes(2, "little") + _stream(1)[0])
    assert _seqs(out) == [0] and c.bad_length == 1


def test_unknown_version_and_type_are_skipped_by_length_and_counted():
    body = (7).to_bytes(4, "little") + b"future payload"
    v3 = bytearray(SYNC + bytes([3, 0x02]) + len(body).to_bytes(2, "little") + body)
    v3 += crc32(bytes(v3[2:])).to_bytes(4, "big")  # later versions keep v2's CRC-32
    unknown_type = encode_frame(0x55, 9, b"whatever")
    data = bytes(v3) + unknown_type + _stream(1)[0]
    out, c = decode_all(data)
    assert _seqs(out) == [0]
    assert c.unknown_version == 1 and c.unknown_type == 1 and c.bytes_skipped == 0
    assert c.bytes_in_frames == len(data)


def test_sync_split_across_reads_is_kept():
    data, _ = _stream(3)
    dec = FrameDecoder()
    got = dec.feed(b"\x00\x00" + data[:1])  # ends on the first sync byte
    assert got == [] and dec.pending == 1 and dec.counters.bytes_skipped == 2
    got += dec.feed(data[1:])
    assert _seqs(got) == [0, 10, 20]


def test_byte_by_byte_feed_gives_the_same_frames():
    data, _ = _stream(5)
    noisy = b"\xec\xec\x47" + data[:30] + data
    whole, cw = decode_all(noisy)
    dec = FrameDecoder()
    parts = []
    for b in noisy:
        parts += dec.feed(bytes([b]))
    parts += dec.flush()
    assert repr(parts) == repr(whole) and dec.counters == cw


def test_decoder_never_raises_on_crc_valid_nonsense():
    # Frames that pass the CRC but carry nonsense reach the payload parser.
    for ftype in list(FrameType) + [0, 0xFF]:
        for payload in (b"", b"\x00", b"\xff" * 3, b"\x01" * 40, bytes(range(256))):
            out, c = decode_all(encode_frame(int(ftype), 1, payload))
            assert _balanced(c)
            assert c.frames_ok + c.malformed + c.unknown_type == 1


@settings(max_examples=150, deadline=None)
@given(junk=st.lists(st.binary(max_size=30), min_size=1, max_size=8),
       cuts=st.lists(st.integers(1, 200), max_size=30))
def test_chunking_never_changes_the_result(junk, cuts):
    data, _ = _stream(8)
    info = encode_info(0, 360, 5, 1)
    # Interleave valid frames with arbitrary junk, then feed in arbitrary chunk sizes.
    blob = b"".join(j + info + data[:40 * k] for k, j in enumerate(junk))
    whole, cw = decode_all(blob)
    dec = FrameDecoder()
    parts, pos = [], 0
    for cut in cuts:
        parts += dec.feed(blob[pos:pos + cut])
        pos += cut
    parts += dec.feed(blob[pos:])
    parts += dec.flush()
    assert repr(parts) == repr(whole)
    assert dec.counters == cw and _balanced(cw)


def test_v1_frames_are_still_read_and_marked_weak_v2_strong():
    v1 = encode_samples(0, np.arange(10), version=1)
    v2 = encode_samples(10, np.arange(10))
    assert len(v1) + 2 == len(v2)  # CRC-16 vs CRC-32
    out, c = decode_all(v1 + v2)
    assert _seqs(out) == [0, 10] and [f.strong for f in out] == [False, True]
    assert c.bytes_skipped == 0 and c.crc_errors == 0
