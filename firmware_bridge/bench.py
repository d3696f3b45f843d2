"""Decoder throughput on a real record: how much link a Pi core can decode.

The record is encoded once into a byte stream (protocol v2, or ASCII lines), then decoded in
``chunk``-byte reads as the transport would deliver them; the best of ``repeat`` runs counts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ecg_edge.firmware_bridge.ascii_lines import AsciiLineDecoder
from ecg_edge.firmware_bridge.blocks import StreamDecoder
from ecg_edge.firmware_bridge.decoder import FrameDecoder
from ecg_edge.firmware_bridge.protocol import encode_info, encode_samples
from ecg_edge.firmware_bridge.records import read_record


def encode_stream(counts: np.ndarray, fs: float, uv_per_count: float,
                  samples_per_frame: int = 10) -> bytes:
    """A whole recording as the front-end would send it (info frame first)."""
    parts = [encode_info(0, fs, uv_per_count, counts.shape[1], 1, samples_per_frame, "bench")]
    for i in range(0, counts.shape[0], samples_per_frame):
        parts.append(encode_samples(i, counts[i:i + samples_per_frame]))
    return b"".join(parts)


def encode_lines(counts: np.ndarray) -> bytes:
    return ("\n".join(",".join(map(str, row)) for row in counts.tolist()) + "\n").encode()


def _best(fn, data: bytes, chunk: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(data, chunk)
        best = min(best, time.perf_counter() - t)
    return best


def _frames_only(data: bytes, chunk: int) -> None:
    dec = FrameDecoder()
    for i in range(0, len(data), chunk):
        dec.feed(data[i:i + chunk])
    dec.flush()


def _blocks(data: bytes, chunk: int) -> None:
    dec = StreamDecoder()
    for i in range(0, len(data), chunk):
        dec.feed(data[i:i + chunk], 0.0)
    dec.finish(0.0)


def _lines(data: bytes, chunk: int) -> None:
    dec = AsciiLineDecoder()
    for i in range(0, len(data), chunk):
        dec.feed(data[i:i + chunk])
    dec.flush()


def decoder_throughput(record: str | Path, seconds: float = 300.0, samples_per_frame: int = 10,
                       chunk: int = 4096, repeat: int = 3) -> dict[str, Any]:
    """Samples per second decoded (both leads of ``record``, first ``seconds`` of it)."""
    rec = read_record(record)
    counts = rec.counts[: int(seconds * rec.fs)]
    n = int(counts.shape[0])
    binary = encode_stream(counts, rec.fs, float(rec.uv_per_count[0]), samples_per_frame)
    text = encode_lines(counts)
    t_frames = _best(_frames_only, binary, chunk, repeat)
    t_blocks = _best(_blocks, binary, chunk, repeat)
    t_lines = _best(_lines, text, chunk, repeat)
    return {
        "record": rec.name, "samples": n, "channels": int(counts.shape[1]),
        "samples_per_frame": samples_per_frame, "chunk_bytes": chunk,
        "binary_bytes": len(binary), "ascii_bytes": len(text),
        "frame_decoder_samples_per_s": round(n / t_frames),
        "stream_decoder_samples_per_s": round(n / t_blocks),
        "stream_decoder_mb_per_s": round(len(binary) / t_blocks / 1e6, 2),
        "ascii_decoder_samples_per_s": round(n / t_lines),
        "realtime_factor_at_record_rate": round(n / t_blocks / rec.fs),
    }
