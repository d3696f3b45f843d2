"""Protocol v1 encoding: CRC parameters, every frame type, formats, limits, payload rules."""

from __future__ import annotations

import binascii
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecg_edge.firmware_bridge.crc import CRC32_CHECK, CRC_CHECK, crc16, crc32
from ecg_edge.firmware_bridge.decoder import decode_all
from ecg_edge.firmware_bridge.protocol import (
    LIMITS,
    MAX_BODY,
    SYNC,
    WIDTH,
    Flags,
    FrameType,
    InfoFrame,
    RequestFrame,
    SampleFormat,
    SamplesFrame,
    StatusFrame,
    encode_frame,
    encode_info,
    encode_request,
    encode_samples,
    encode_status,
    parse_payload,
)


def test_crc32_is_zlibs_with_standard_check_value():
    assert crc32(b"123456789") == CRC32_CHECK == 0xCBF43926
    assert crc32(b"56789", crc32(b"1234")) == CRC32_CHECK


def test_crc_is_ccitt_false_with_standard_check_value():
    assert crc16(b"123456789") == CRC_CHECK == 0x29B1
    assert crc16(b"") == 0xFFFF
    # Continuing a CRC equals computing it at once (the encoder relies on it).
    assert crc16(b"56789", crc16(b"1234")) == CRC_CHECK


def test_frame_layout_matches_the_spec():
    f = encode_samples(0x01020304, np.array([1, -2, 300]))
    assert f[:2] == SYNC
    version, ftype, body_len = struct.unpack_from("<BBH", f, 2)
    assert (version, ftype) == (2, FrameType.SAMPLES)
    assert body_len == 4 + 4 + 3 * 2 == len(f) - 10  # v2: 4-byte CRC-32 at the end
    assert int.from_bytes(f[-4:], "big") == crc32(f[2:-4])
    assert struct.unpack_from("<I", f, 6)[0] == 0x01020304
    assert f[10:14] == bytes([0, SampleFormat.INT16, 1, 3])
    assert np.frombuffer(f[14:20], "<i2").tolist() == [1, -2, 300]
    # v1: CRC-16 over version..end of body, big-endian, so a CRC over frame+CRC is zero.
    f1 = encode_samples(0x01020304, np.array([1, -2, 300]), version=1)
    assert f1[2] == 1 and f1[6:-2] == f[6:-4]
    assert int.from_bytes(f1[-2:], "big") == binascii.crc_hqx(f1[2:-2], 0xFFFF)
    assert binascii.crc_hqx(f1[2:], 0xFFFF) == 0


@pytest.mark.parametrize("fmt", list(SampleFormat))
@pytest.mark.parametrize("channels", [1, 2, 8])
def test_samples_round_trip_each_format(fmt, channels):
    rng = np.random.default_rng(fmt * 10 + channels)
    lo, hi = LIMITS[fmt]
    counts = rng.integers(lo, hi, (25, channels), endpoint=True)
    counts[0, 0], counts[-1, -1] = lo, hi
    frames, c = decode_all(encode_samples(77, counts, Flags.LEAD_OFF, fmt))
    assert c.frames_ok == 1 and c.bytes_skipped == 0
    (f,) = frames
    assert isinstance(f, SamplesFrame)
    assert f.seq == 77 and f.sample_format == fmt and f.flags == Flags.LEAD_OFF
    assert f.counts.dtype == np.int32
    np.testing.assert_array_equal(f.counts, counts)


def test_values_beyond_the_format_are_clipped_and_flagged():
    (f,), _ = decode_all(encode_samples(0, np.array([[40000], [-40000], [5]])))
    assert f.counts[:, 0].tolist() == [32767, -32768, 5]
    assert f.flags & Flags.SATURATED
    (g,), _ = decode_all(encode_samples(0, np.array([[4000]])))
    assert not g.flags & Flags.SATURATED


def test_info_status_request_round_trip():
    frames, c = decode_all(
        encode_info(5, 360.0, 5.0, 2, SampleFormat.INT24, 12, "fw-1.2")
        + encode_status(15, 2, Flags.LEAD_OFF, 7, "electrode off")
        + encode_request(1, 3))
    assert c.frames_ok == 3
    info, status, req = frames
    assert info == InfoFrame(5, 360.0, 5.0, 2, SampleFormat.INT24, 12, "fw-1.2")
    assert status == StatusFrame(15, Flags.LEAD_OFF, 2, 7, "electrode off")
    assert req == RequestFrame(3, 1)


def test_firmware_id_is_cut_at_32_bytes():
    (info,), _ = decode_all(encode_info(0, 250, 1, 1, firmware="x" * 50))
    assert info.firmware == "x" * 32


def test_encoder_refuses_what_v1_cannot_carry():
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame(FrameType.STATUS, 0, bytes(MAX_BODY))
    with pytest.raises(ValueError, match="1..255 samples"):
        encode_samples(0, np.zeros((256, 1)))
    with pytest.raises(ValueError, match="channels"):
        encode_samples(0, np.zeros((2, 9)))


@pytest.mark.parametrize("ftype, payload", [
    (FrameType.SAMPLES, b"\x00\x01\x01"),  # shorter than its own head
    (FrameType.SAMPLES, b"\x00\x01\x01\x02\x00\x00"),  # says 2 samples, carries 1
    (FrameType.SAMPLES, b"\x00\x09\x01\x01\x00\x00"),  # unknown sample format
    (FrameType.SAMPLES, b"\x00\x01\x00\x01"),  # zero channels
    (FrameType.SAMPLES, b"\x00\x01\x01\x00"),  # zero samples
    (FrameType.INFO, struct.pack("<ffBBBB", 0.0, 5.0, 1, 1, 10, 0)),  # zero rate
    (FrameType.INFO, struct.pack("<ffBBBB", float("nan"), 5.0, 1, 1, 10, 0)),
    (FrameType.INFO, struct.pack("<ffBBBB", 360.0, 5.0, 9, 1, 10, 0)),  # 9 channels
    (FrameType.STATUS, b"\x00"),
    (FrameType.REQUEST, b""),
])
def test_malformed_payloads_are_rejected_not_raised(ftype, payload):
    assert parse_payload(ftype, 0, payload) is None
    frames, c = decode_all(encode_frame(ftype, 0, payload))
    assert frames == [] and c.malformed == 1


@settings(max_examples=100, deadline=None)
@given(seq=st.integers(0, (1 << 32) - 1), flags=st.integers(0, 3),
       fmt=st.sampled_from(list(SampleFormat)), n=st.integers(1, 40), ch=st.integers(1, 8),
       data=st.data())
def test_any_samples_frame_round_trips(seq, flags, fmt, n, ch, data):
    values = data.draw(st.lists(st.integers(-(1 << 31), (1 << 31) - 1), min_size=n * ch,
                                max_size=n * ch))
    counts = np.array(values, dtype=np.int64).reshape(n, ch)
    if 8 + n * ch * WIDTH[fmt] > MAX_BODY:
        return
    (f,), c = decode_all(encode_samples(seq, counts, flags, fmt))
    lo, hi = LIMITS[fmt]
    np.testing.assert_array_equal(f.counts, np.clip(counts, lo, hi))
    assert f.seq == seq
    clipped = bool(np.any(counts != np.clip(counts, lo, hi)))
    assert bool(f.flags & Flags.SATURATED) == (bool(flags & 2) or clipped)
