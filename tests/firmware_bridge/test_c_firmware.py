"""The C reference firmware, compiled with gcc, against the Python implementation.

Both ways, on the shared vectors in firmware_bridge/firmware/vectors.txt: the C encoder must
produce the exact bytes the file (and the Python encoder) give, the Python decoder must read
the C frames back, and the C parser must read Python-encoded streams, damaged ones included,
with the same frames and counters as the Python decoder. The example main loop runs too.
"""

from __future__ import annotations

import subprocess

import numpy as np

from ecg_edge.firmware_bridge.crc import crc16, crc32
from ecg_edge.firmware_bridge.decoder import FrameDecoder, decode_all
from ecg_edge.firmware_bridge.protocol import (
    Flags,
    InfoFrame,
    SamplesFrame,
    StatusCode,
    StatusFrame,
    encode,
    encode_info,
    encode_request,
    encode_samples,
    encode_status,
)
from ecg_edge.firmware_bridge.vectors import VECTOR_FILE, python_answer, read_vectors


def _run(tool, lines: list[str]) -> list[str]:
    done = subprocess.run([str(tool)], input="\n".join(lines) + "\n", capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def test_vector_file_is_reproduced_by_python():
    vectors = read_vectors(VECTOR_FILE)
    assert len(vectors) >= 20
    for command, expected in vectors:
        assert python_answer(command) == expected, command


def test_c_encoder_reproduces_every_vector_byte_for_byte(vector_tool):
    vectors = read_vectors(VECTOR_FILE)
    answers = _run(vector_tool, [c for c, _ in vectors])
    assert len(answers) == len(vectors)
    for (command, expected), got in zip(vectors, answers):
        assert got == expected, f"C differs on: {command[:80]}"


def test_python_decoder_reads_what_the_c_encoder_wrote(vector_tool):
    frame_vectors = [(c, e) for c, e in read_vectors(VECTOR_FILE) if not c.startswith("crc")]
    answers = _run(vector_tool, [c for c, _ in frame_vectors])
    stream = bytes.fromhex("".join(answers))
    frames, counters = decode_all(stream)
    assert counters.frames_ok == len(frame_vectors) and counters.bytes_skipped == 0
    # Every decoded frame re-encodes (Python) to the C bytes: same meaning, same bytes.
    for frame, hex_c in zip(frames, answers):
        assert encode(frame).hex() == hex_c


def test_c_crc32_equals_zlib_on_random_data(vector_tool):
    rng = np.random.default_rng(8)
    blobs = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in rng.integers(1, 400, 300)]
    answers = _run(vector_tool, [f"crc32 {b.hex()}" for b in blobs])
    assert answers == [f"{crc32(b):08x}" for b in blobs]


def test_c_crc_equals_binascii_on_random_data(vector_tool):
    rng = np.random.default_rng(7)
    blobs = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in rng.integers(1, 400, 300)]
    answers = _run(vector_tool, [f"crc {b.hex()}" for b in blobs])
    assert answers == [f"{crc16(b):04x}" for b in blobs]


def _c_parse(tool, streams: list[bytes]) -> list[tuple[list[tuple[int, int, int, str]], list[int]]]:
    out, frames = [], []
    for line in _run(tool, [f"parse {s.hex() or '-'}" for s in streams]):
        kind, *rest = line.split(" ")
        if kind == "frame":
            ver, typ, seq = map(int, rest[:3])
            frames.append((ver, typ, seq, rest[3] if len(rest) > 3 else ""))
        else:
            out.append((frames, list(map(int, rest))))
            frames = []
    return out


def _py_parse(stream: bytes):
    dec = FrameDecoder()
    frames = dec.feed(stream)  # no flush: the C parser keeps its pending bytes too
    c = dec.counters
    crc_ok = c.frames_ok + c.malformed + c.unknown_type + c.unknown_version
    return frames, [crc_ok, c.crc_errors, c.bad_length, c.bytes_skipped, dec.pending]


def test_c_parser_agrees_with_python_decoder_on_damaged_streams(vector_tool):
    rng = np.random.default_rng(11)
    clean = (encode_info(0, 360, 5, 1, firmware="x") + encode_request(1, 4)
             + encode_samples(0, np.arange(4), version=1)  # a v1 frame: CRC-16
             + b"".join(encode_samples(i * 10, rng.integers(-2000, 2000, (10, 2)))
                        for i in range(12))
             + encode_status(120, StatusCode.END))
    streams = [clean, b"", b"\xec", clean[:-1], b"\x00\xec\x47" + clean]
    for _ in range(150):
        s = bytearray(clean)
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(0, len(s)))
            op = int(rng.integers(0, 3))
            if op == 0:
                s[at] ^= 1 << int(rng.integers(0, 8))
            elif op == 1:
                del s[at]
            else:
                s[at:at] = bytes(rng.integers(0, 256, 3, dtype=np.uint8))
        streams.append(bytes(s))
    c_results = _c_parse(vector_tool, streams)
    assert len(c_results) == len(streams)
    for stream, (c_frames, c_counts) in zip(streams, c_results):
        py_frames, py_counts = _py_parse(stream)
        assert c_counts == py_counts, stream.hex()
        assert [f[2] for f in c_frames if f[0] in (1, 2)] == [f.seq for f in py_frames]
        assert [f[3] for f in c_frames] == [encode(f).hex()[20:-8] for f in py_frames]


def test_example_main_loop_streams_what_the_host_expects(example_firmware):
    done = subprocess.run([str(example_firmware)], capture_output=True, timeout=30,
                          env={"ECG_HOST_TICKS": "2000"}, check=True)
    frames, c = decode_all(done.stdout)
    assert c.bytes_skipped == 0 and c.crc_errors == 0
    info = [f for f in frames if isinstance(f, InfoFrame)]
    assert info[0] == InfoFrame(0, 250.0, 2.5, 2, 1, 10, "ecg-edge-ref/1")
    # The host's request (sent after some noise at tick 119) was answered with the SEQ of
    # the next samples frame.
    assert len(info) == 2
    after = frames[frames.index(info[1]) + 1]
    assert isinstance(after, SamplesFrame) and after.seq == info[1].seq == 120

    samples = [f for f in frames if isinstance(f, SamplesFrame)]
    seqs = [f.seq for f in samples]
    assert seqs == [s for s in range(0, 2000, 10) if s != 500]  # the frame the UART refused
    tick = np.arange(2000)
    ch0 = (tick * 37) % 2001 - 1000
    ch1 = np.where(tick == 777, 32767, -3 * ch0)  # 40000 clipped to int16
    for f in samples:
        idx = np.arange(f.seq, f.seq + 10)
        np.testing.assert_array_equal(f.counts[:, 0], ch0[idx])
        np.testing.assert_array_equal(f.counts[:, 1], ch1[idx])
        assert bool(f.flags & Flags.LEAD_OFF) == bool(np.any((idx >= 300) & (idx < 350)))
        assert bool(f.flags & Flags.SATURATED) == (777 in idx)
    status = [f for f in frames if isinstance(f, StatusFrame)]
    assert [(s.code, s.seq) for s in status] == [
        (StatusCode.LEAD_OFF, 300), (StatusCode.LEAD_ON, 350), (StatusCode.OVERFLOW, 520)]
    assert status[-1].detail == 1

    # Through the host's block assembly, the refused frame is an exact 10-sample gap.
    from ecg_edge.firmware_bridge.blocks import SampleBlock, StreamDecoder

    dec = StreamDecoder()
    blocks = [b for b in dec.feed(done.stdout, 0.0) if isinstance(b, SampleBlock)]
    assert dec.stats().samples_lost == 10
    assert [(b.start, b.gap_before) for b in blocks if b.gap_before] == [(510, 10)]
