"""Link-fault benchmark: hours of a real record through a damaged link into the pure decoder.

The front-end side is modelled frame by frame: a real record's lead (tiled to the length asked
for) is cut into samples frames, each byte is corrupted with probability ``corrupt`` (replaced
by a different value) or dropped with probability ``drop``, and the link goes away at random
times for a few seconds (the frame in flight is torn, frames produced meanwhile never arrive,
the host flushes its decoder and the device re-sends its info frame on reconnect). The host
side is :class:`~firmware_bridge.blocks.StreamDecoder`, fed in transport-sized reads.

What is checked, against the sender's truth:
- accounting: samples delivered + samples reported lost == samples sent after the first
  sample the host could place (``first_seq``), exactly;
- placement: every delivered sample equals the truth at its index. A block that disagrees
  with the truth in most of its samples sits at a wrong index (``samples_at_wrong_index``);
  a few disagreeing samples in a block that otherwise agrees are damaged values the CRC let
  through (``samples_wrong_value``: CRC-16's undetected errors in v1);
- intact frames: of the frames whose bytes all arrived unchanged, the share whose samples were
  delivered (a decoder that drops unconfirmable frames pays here). Conservative: when the last
  byte of a frame is dropped and the next byte happens to equal it (the next frame's sync
  0xEC), the damaged frame decodes whole and the intact next frame has lost its first byte;
  that counts as an intact frame not delivered.

Frames are built with numpy for the whole stream (a test checks they equal
:func:`~firmware_bridge.protocol.encode_samples` byte for byte), so 24 h of a 360 Hz record
runs in about a minute on one core.
"""

from __future__ import annotations

import binascii
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecg_edge.firmware_bridge.blocks import SampleBlock, StreamDecoder
from ecg_edge.firmware_bridge.crc import CRC_INIT
from ecg_edge.firmware_bridge.protocol import (
    PREFIX_LEN,
    SYNC,
    VERSION,
    FrameType,
    SampleFormat,
    StatusCode,
    crc_len,
    encode_info,
    encode_status,
)
from ecg_edge.firmware_bridge.records import read_record


@dataclass
class LinkFaultPlan:
    hours: float = 24.0
    corrupt: float = 0.01  # probability that a byte arrives changed
    drop: float = 0.001  # probability that a byte never arrives
    disconnect_every_s: float = 1800.0  # mean time between disconnects (exponential)
    disconnect_s: tuple[float, float] = (0.5, 10.0)  # uniform duration range
    samples_per_frame: int = 10
    version: int = VERSION
    seed: int = 0
    read_bytes: int = 4096  # transport read size
    end_repeats: int = 5  # END status frames sent at the end of the stream


@dataclass
class LinkFaultResult:
    seed: int
    version: int
    hours: float
    samples_sent: int
    first_seq: int
    samples_delivered: int
    samples_reported_lost: int
    accounting_exact: bool
    tail_unknown: int  # samples after the host's last known position (END never arrived)
    samples_at_wrong_index: int
    samples_wrong_value: int
    frames_sent: int
    frames_intact: int
    intact_frames_delivered: int
    intact_delivered_pct: float
    frames_not_sent_disconnected: int
    disconnects: int
    crc_errors: int
    seq_unconfirmed: int
    seq_resets: int
    bytes_corrupted: int
    bytes_dropped: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def frames_int16(seq0: int, counts: np.ndarray, spf: int, version: int = VERSION) -> np.ndarray:
    """Samples frames (one lead, int16, ``spf`` each) as rows of a uint8 array, vectorised."""
    n_frames = len(counts) // spf
    width = PREFIX_LEN + 4 + 4 + 2 * spf
    clen = crc_len(version)
    out = np.zeros((n_frames, width + clen), np.uint8)
    out[:, 0:2] = np.frombuffer(SYNC, np.uint8)
    out[:, 2] = version
    out[:, 3] = FrameType.SAMPLES
    out[:, 4:6] = np.frombuffer((width - PREFIX_LEN).to_bytes(2, "little"), np.uint8)
    seqs = (seq0 + np.arange(n_frames, dtype=np.int64) * spf) % (1 << 32)
    out[:, 6:10] = seqs.astype("<u4").view(np.uint8).reshape(-1, 4)
    clipped = np.clip(counts[: n_frames * spf], -32768, 32767)
    out[:, 10] = np.any(clipped.reshape(n_frames, spf) != counts[: n_frames * spf]
                        .reshape(n_frames, spf), axis=1) * 0x02  # SATURATED
    out[:, 11] = SampleFormat.INT16
    out[:, 12] = 1
    out[:, 13] = spf
    out[:, 14:width] = clipped.astype("<i2").view(np.uint8).reshape(n_frames, 2 * spf)
    rows = out[:, 2:width]
    if version == 1:
        checks = [binascii.crc_hqx(r, CRC_INIT) for r in rows]
    else:
        checks = [zlib.crc32(r) for r in rows]
    out[:, width:] = (np.array(checks, dtype=">u4").view(np.uint8).reshape(-1, 4)[:, 4 - clen:])
    return out


def _damage(rng: np.random.Generator, data: np.ndarray, plan: LinkFaultPlan
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes received, corrupted mask, dropped mask) for one stretch of sent bytes."""
    corrupted = rng.random(data.size) < plan.corrupt
    recv = data.copy()
    recv[corrupted] ^= rng.integers(1, 256, int(corrupted.sum()), dtype=np.uint8)
    dropped = rng.random(data.size) < plan.drop
    return recv[~dropped], corrupted, dropped


def run_link_faults(record: str | Path, plan: LinkFaultPlan) -> LinkFaultResult:
    """One fault run; see the module docstring for what is measured."""
    t0 = time.perf_counter()
    rec = read_record(record)
    lead = rec.counts[:, rec.channel_index(None)].astype(np.int64)
    spf = plan.samples_per_frame
    n = int(plan.hours * 3600 * rec.fs) // spf * spf
    truth = np.resize(lead, n)
    rng = np.random.default_rng(plan.seed)
    frames = frames_int16(0, truth, spf, plan.version)
    n_frames, flen = frames.shape
    frame_t = np.arange(n_frames) * spf / rec.fs
    # Disconnects: (start, end) seconds; frames produced inside are never sent.
    spans, t = [], float(rng.exponential(plan.disconnect_every_s))
    while t < n / rec.fs:
        dur = float(rng.uniform(*plan.disconnect_s))
        spans.append((t, t + dur))
        t += dur + float(rng.exponential(plan.disconnect_every_s))
    dec = StreamDecoder()
    delivered: list[SampleBlock] = []
    fs = rec.fs
    uv = float(rec.uv_per_count[rec.channel_index(None)])

    def feed(data: bytes) -> None:
        for i in range(0, len(data), plan.read_bytes):
            delivered.extend(b for b in dec.feed(data[i:i + plan.read_bytes], 0.0)
                             if isinstance(b, SampleBlock))

    def send_info(seq: int) -> None:
        info = encode_info(seq, fs, uv, 1, SampleFormat.INT16, spf, "linkfaults",
                           version=plan.version)
        arr = np.frombuffer(info, np.uint8)
        recv, c, d = _damage(rng, arr, plan)
        counters["corrupted"] += int(c.sum())
        counters["dropped"] += int(d.sum())
        feed(recv.tobytes())

    counters = {"corrupted": 0, "dropped": 0}
    intact = np.zeros(n_frames, bool)
    sent = np.zeros(n_frames, bool)
    ends = [int(np.searchsorted(frame_t, a)) for a, _ in spans] + [n_frames]
    resumes = [0] + [int(np.searchsorted(frame_t, b)) for _, b in spans]
    for k, (a, e) in enumerate(zip(resumes, ends)):
        if k:
            delivered.extend(b for b in dec.connection_lost(0.0) if isinstance(b, SampleBlock))
        send_info(a * spf)
        # Send in slices of ~64 KB; the host asks for the info frame until it has it, and the
        # front-end answers (after a slice, as a request would be answered between frames).
        step = max(1, (1 << 16) // flen)
        for s in range(a, e, step):
            stop = min(e, s + step)
            block = frames[s:stop].reshape(-1)
            torn = k < len(spans) and stop == e and stop > s  # the frame in flight is cut
            if torn:
                block = block[: -int(rng.integers(1, flen))]
            recv, corrupted, dropped = _damage(rng, block, plan)
            counters["corrupted"] += int(corrupted.sum())
            counters["dropped"] += int(dropped.sum())
            bad = np.zeros(((stop - s) * flen,), bool)
            bad[: block.size] = corrupted | dropped
            bad[block.size:] = True
            intact[s:stop] = ~bad.reshape(stop - s, flen).any(axis=1)
            sent[s:stop] = True
            feed(recv.tobytes())
            if dec.needs_info:
                send_info(stop * spf)
    # A front-end ending a stream repeats its END status (docs/protocol.md): the only way the
    # host can count a loss in the stream's last frames.
    end = np.frombuffer(encode_status(n, StatusCode.END, version=plan.version), np.uint8)
    for _ in range(plan.end_repeats):
        feed(_damage(rng, end, plan)[0].tobytes())
    delivered.extend(b for b in dec.finish(0.0) if isinstance(b, SampleBlock))
    s = dec.stats()
    first = s.first_seq or 0
    wrong = bad_values = 0
    got_frames = np.zeros(n_frames, bool)
    for b in delivered:
        if not b.n:
            continue
        idx = first + b.start
        ref = truth[idx: idx + b.n] if idx + b.n <= n else None
        if ref is None or len(ref) != b.n:
            wrong += b.n
            continue
        mismatched = int(np.count_nonzero(b.counts[:, 0] != np.clip(ref, -32768, 32767)))
        if 2 * mismatched > b.n:
            wrong += mismatched
        else:
            bad_values += mismatched
        f0, f1 = idx // spf, (idx + b.n) // spf
        got_frames[f0:f1] = True
    n_intact = int(intact.sum())
    intact_got = int((intact & got_frames).sum())
    return LinkFaultResult(
        seed=plan.seed, version=plan.version, hours=plan.hours, samples_sent=n,
        first_seq=first, samples_delivered=s.samples_received,
        samples_reported_lost=s.samples_lost,
        accounting_exact=s.samples_received + s.samples_lost == n - first,
        tail_unknown=n - first - s.samples_received - s.samples_lost,
        samples_at_wrong_index=wrong, samples_wrong_value=bad_values,
        frames_sent=int(sent.sum()), frames_intact=n_intact,
        intact_frames_delivered=intact_got,
        intact_delivered_pct=round(100.0 * intact_got / max(1, n_intact), 5),
        frames_not_sent_disconnected=int((~sent).sum()), disconnects=len(spans),
        crc_errors=s.crc_errors, seq_unconfirmed=s.seq_unconfirmed, seq_resets=s.seq_resets,
        bytes_corrupted=counters["corrupted"], bytes_dropped=counters["dropped"],
        seconds=round(time.perf_counter() - t0, 1))
