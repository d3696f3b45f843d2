"""Sample blocks with exact positions: what the device runtime consumes.

Frames (binary) or line segments (ASCII) become :class:`SampleBlock` objects whose ``start``
counts every sample the front-end produced since the stream started, lost ones included, so
a lost frame shows up as ``gap_before`` on the next block and never as a silent splice.

Binary: a samples frame's sequence number is the index of its first sample modulo 2^32, so
the loss before it is ``(seq - expected) mod 2^32`` exactly. A difference of 2^31 or more
means the sequence went backwards (a device reboot): that is a ``seq_reset`` event, the loss
across it cannot be known, and the stream continues from the host's running index. Info and
status frames carry the sequence number of the next samples frame, so a loss right before the
end of a stream is still counted (as an empty block with ``gap_before``).

A sequence number is one field under a 16-bit CRC: about one damaged frame in 65 536 passes the
CRC, and if the damage is in the sequence number, trusting it would move every later sample
(the 24-hour fault run once reported a "gap" of 1.6e9 samples). So a frame that does not
continue the stream exactly (a jump, a reset, the very first frame) only *proposes* a new
position: it is held until the next frame of any type confirms it by continuing it exactly
(samples frame at ``seq + n``, or an info/status frame naming ``seq + n``). A frame that is not
confirmed is dropped and counted (``seq_unconfirmed``); its samples, if they were real, are
then part of the next confirmed gap, so the count of lost samples stays exact. A run of two or
more back-to-back frames that continue each other confirms itself. Protocol v2 frames carry a
CRC-32 (one damaged frame in 4.3e9 passes), so a v2 frame that moves the position forward by at
most :data:`MAX_TRUSTED_JUMP` samples is accepted at once; a larger or backward jump (a reset)
waits for confirmation in v2 too. At the very end of a stream (no next frame will come) a
proposal is accepted within the same bound, otherwise dropped with a warning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ecg_edge.firmware_bridge.ascii_lines import AsciiLineDecoder, AsciiSegment
from ecg_edge.firmware_bridge.decoder import FrameDecoder
from ecg_edge.firmware_bridge.protocol import (
    SEQ_MOD,
    Flags,
    InfoFrame,
    RequestFrame,
    SamplesFrame,
    StatusCode,
    StatusFrame,
)

_LEAD_OFF, _SATURATED = int(Flags.LEAD_OFF), int(Flags.SATURATED)


@dataclass
class SampleBlock:
    start: int  # index of counts[0] at the front-end's rate since stream start, lost included
    counts: np.ndarray  # int32, shape (n, channels)
    fs: float  # front-end sample rate (Hz)
    uv_per_count: float  # gain
    gap_before: int = 0  # samples lost immediately before this block
    lead_off: bool = False
    saturated: bool = False
    t_host: float = 0.0  # time.monotonic() when the bytes arrived

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])

    @property
    def end(self) -> int:
        """Index one past the last sample."""
        return self.start + self.n


#: Event kinds: connected, disconnected, reconnected, info, status, seq_reset, gap_estimate,
#: idle (no bytes for a while), warning.
#: A forward jump of at most this many samples is trusted without confirmation in a CRC-32 (v2)
#: frame, and in any frame still unconfirmed when the stream ends (3 min at 360 Hz).
MAX_TRUSTED_JUMP = 1 << 16
EVENT_KINDS = ("connected", "disconnected", "reconnected", "info", "status", "seq_reset",
               "gap_estimate", "idle", "warning")


@dataclass
class LinkEvent:
    """Something about the link rather than the signal; ``sample`` is where it applies."""

    kind: str
    t_host: float
    message: str = ""
    sample: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


Item = SampleBlock | LinkEvent


@dataclass
class LinkStats:
    """Everything counted on one stream, decoder and link together (for --json output)."""

    mode: str = "binary"
    bytes_in: int = 0
    bytes_skipped: int = 0
    frames_ok: int = 0
    crc_errors: int = 0
    bad_length: int = 0
    truncated: int = 0
    malformed: int = 0
    unknown_version: int = 0
    unknown_type: int = 0
    lines_ok: int = 0
    lines_rejected: int = 0
    samples_received: int = 0
    samples_lost: int = 0
    samples_lost_estimated: int = 0  # ASCII across a disconnect: from the clock, not exact
    gaps: int = 0
    seq_resets: int = 0
    seq_unconfirmed: int = 0  # frames whose sequence number no next frame confirmed: dropped
    disconnects: int = 0
    reconnects: int = 0
    first_seq: int | None = None
    next_index: int = 0  # the stream index one past the last sample accounted for

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BlockAssembler:
    """Frames in, blocks and events out, with exact ``start``/``gap_before`` (pure)."""

    def __init__(self, fs: float | None = None, uv_per_count: float | None = None,
                 max_held_samples: int = 1 << 17) -> None:
        self.fs = fs
        self.uv_per_count = uv_per_count
        self.info: InfoFrame | None = None
        self.max_held_samples = max_held_samples
        self.first_seq: int | None = None
        self.next_index = 0
        self._next_seq: int | None = None
        self.samples_received = 0
        self.samples_lost = 0
        self.gaps = 0
        self.seq_resets = 0
        self.seq_unconfirmed = 0
        self.samples_unconfirmed = 0  # samples in those frames (then inside a confirmed gap)
        self._held: list[SampleBlock] = []
        # A frame whose sequence number moves the stream position, until a next frame confirms it.
        self._proposal: SamplesFrame | InfoFrame | StatusFrame | None = None

    @property
    def needs_info(self) -> bool:
        """True until the sample rate and gain are known (ask the device for its info)."""
        return self.fs is None or self.uv_per_count is None

    def push(self, frames: list, t_host: float) -> list[Item]:
        out: list[Item] = []
        # Before the info frame, blocks are held one frame each so an overflow can evict
        # (and count) the oldest frames exactly.
        runs = [(f, False) for f in frames] if self.needs_info else _join_runs(frames)
        for frame, self_confirmed in runs:
            if isinstance(frame, RequestFrame):
                out.append(LinkEvent("warning", t_host, "a request frame came from the device "
                                     "side (loopback or echo on the link?)"))
                continue
            out += self._confirm(frame.seq, t_host)
            if isinstance(frame, SamplesFrame):
                if frame.seq == self._next_seq or self_confirmed or (
                        frame.strong and self._small_jump(frame.seq)):
                    out += self._samples(frame, t_host)
                else:
                    self._proposal = frame
                continue
            # Info and status: their content counts now; the position they name is a proposal.
            out += self._info(frame, t_host) if isinstance(frame, InfoFrame) else \
                self._status(frame, t_host)
            if self._next_seq is not None and frame.seq != self._next_seq:
                if frame.strong and self._small_jump(frame.seq):
                    out += self._apply(frame, t_host)
                else:
                    self._proposal = frame
        return merge_blocks(out)

    def finish(self, t_host: float) -> list[Item]:
        """End of the stream: no next frame will confirm a pending proposal any more."""
        p, self._proposal = self._proposal, None
        if p is None:
            return []
        if not self._small_jump(p.seq):
            return self._drop(p, t_host, "the stream ended before a next frame confirmed it")
        return merge_blocks(self._apply(p, t_host))

    # -- sequence validation -----------------------------------------------------------------
    def _small_jump(self, seq: int) -> bool:
        """No position yet, or ``seq`` lies at most MAX_TRUSTED_JUMP samples ahead."""
        return self._next_seq is None or (seq - self._next_seq) % SEQ_MOD <= MAX_TRUSTED_JUMP

    def _confirm(self, seq: int, t: float) -> list[Item]:
        """A frame with sequence number ``seq`` arrived: settle the pending proposal."""
        p = self._proposal
        if p is None:
            return []
        self._proposal = None
        if seq == (p.seq + (p.n if isinstance(p, SamplesFrame) else 0)) % SEQ_MOD:
            return self._apply(p, t)
        return self._drop(p, t, "the next frame does not continue it")

    def _apply(self, p: SamplesFrame | InfoFrame | StatusFrame, t: float) -> list[Item]:
        """Move the stream position as a confirmed proposal says."""
        if isinstance(p, SamplesFrame):
            return self._samples(p, t)
        return self._gap_marker(p.seq, t)

    def _drop(self, p, t: float, why: str) -> list[Item]:
        self.seq_unconfirmed += 1
        if isinstance(p, SamplesFrame):
            self.samples_unconfirmed += p.n
        kind = "samples" if isinstance(p, SamplesFrame) else \
            "info" if isinstance(p, InfoFrame) else "status"
        what = f"{p.n} samples" if isinstance(p, SamplesFrame) else "its position"
        return [LinkEvent("warning", t, f"{kind} frame with sequence number {p.seq} not trusted "
                          f"({why}; expected {self._next_seq}): {what} dropped",
                          sample=self.next_index,
                          data={"seq": p.seq, "expected_seq": self._next_seq,
                                "unconfirmed": True})]

    def _samples(self, f: SamplesFrame, t: float) -> list[Item]:
        out: list[Item] = []
        if self._next_seq is None:
            self.first_seq = f.seq
            start, gap = 0, 0
        else:
            d = (f.seq - self._next_seq) % SEQ_MOD
            if d >= SEQ_MOD // 2:
                self.seq_resets += 1
                out.append(LinkEvent("seq_reset", t, f"sequence number went back from "
                                     f"{self._next_seq} to {f.seq} (device restarted?); samples "
                                     "lost across it are unknown", sample=self.next_index,
                                     data={"expected_seq": self._next_seq, "seq": f.seq}))
                d = 0
            gap = d
            start = self.next_index + gap
        self._count_gap(gap)
        self.next_index = start + f.n
        self._next_seq = (f.seq + f.n) % SEQ_MOD
        self.samples_received += f.n
        flags = int(f.flags)  # plain ints: IntFlag arithmetic costs more than the rest per frame
        block = SampleBlock(start, f.counts, self.fs or 0.0, self.uv_per_count or 0.0, gap,
                            bool(flags & _LEAD_OFF), bool(flags & _SATURATED), t)
        return out + self._emit(block)

    def _info(self, f: InfoFrame, t: float) -> list[Item]:
        out: list[Item] = []
        if self.fs is not None and (abs(self.fs - f.fs) > 1e-6 * f.fs
                                    or abs((self.uv_per_count or 0) - f.uv_per_count)
                                    > 1e-6 * f.uv_per_count):
            out.append(LinkEvent("warning", t, f"device says {f.fs:g} Hz, {f.uv_per_count:g} "
                                 f"uV/count; using that instead of {self.fs:g} Hz, "
                                 f"{self.uv_per_count} uV/count", sample=self.next_index))
        self.info = f
        self.fs, self.uv_per_count = f.fs, f.uv_per_count
        out.append(LinkEvent("info", t, f"{f.firmware or 'device'}: {f.fs:g} Hz, {f.channels} "
                             f"channel(s), {f.uv_per_count:g} uV/count", sample=self.next_index,
                             data={"fs": f.fs, "uv_per_count": f.uv_per_count,
                                   "channels": f.channels, "firmware": f.firmware,
                                   "sample_format": f.sample_format.name,
                                   "samples_per_frame": f.samples_per_frame}))
        held, self._held = self._held, []
        for b in held:
            b.fs, b.uv_per_count = f.fs, f.uv_per_count
        return held + out

    def _status(self, f: StatusFrame, t: float) -> list[Item]:
        try:
            name = StatusCode(f.code).name.lower()
        except ValueError:
            name = f"code {f.code}"
        return [LinkEvent("status", t, f"device status: {name}"
                          + (f" ({f.text})" if f.text else ""), sample=self.next_index,
                          data={"code": f.code, "name": name, "detail": f.detail,
                                "lead_off": bool(f.flags & Flags.LEAD_OFF),
                                "saturated": bool(f.flags & Flags.SATURATED),
                                "text": f.text})]

    def _gap_marker(self, seq: int, t: float) -> list[Item]:
        """Info/status say where the next samples frame starts: count a loss right now."""
        d = (seq - self._next_seq) % SEQ_MOD
        if d == 0 or d >= SEQ_MOD // 2:
            return []
        self._count_gap(d)
        start = self.next_index + d
        self.next_index = start
        self._next_seq = seq % SEQ_MOD
        channels = self.info.channels if self.info else 1
        empty = np.zeros((0, channels), np.int32)
        return self._emit(SampleBlock(start, empty, self.fs or 0.0, self.uv_per_count or 0.0, d,
                                      t_host=t))

    def _count_gap(self, gap: int) -> None:
        if gap:
            self.gaps += 1
            self.samples_lost += gap

    def _emit(self, block: SampleBlock) -> list[Item]:
        if not self.needs_info:
            return [block]
        self._held.append(block)
        held_n = sum(b.n for b in self._held)
        while held_n > self.max_held_samples and len(self._held) > 1:
            # Never silent: an evicted block becomes part of the next one's gap.
            old, nxt = self._held.pop(0), self._held[0]
            self.gaps += 1 - (old.gap_before > 0) - (nxt.gap_before > 0)
            nxt.gap_before += old.gap_before + old.n
            self.samples_lost += old.n
            self.samples_received -= old.n
            held_n -= old.n
        return []


class AsciiAssembler:
    """Line segments in, blocks out; the rate and gain come from the user."""

    def __init__(self, fs: float, uv_per_count: float = 1.0) -> None:
        self.fs = fs
        self.uv_per_count = uv_per_count
        self.next_index = 0
        self.samples_received = 0
        self.samples_lost = 0
        self.samples_lost_estimated = 0
        self.gaps = 0
        self._t_last: float | None = None
        self._estimate_gap = False

    def link_lost(self) -> None:
        """After a reconnect the next block's gap is estimated from the host clock."""
        self._estimate_gap = True

    def push(self, segments: list[AsciiSegment], t_host: float) -> list[Item]:
        out: list[Item] = []
        for seg in segments:
            gap = seg.gap_before
            n = int(seg.counts.shape[0])
            if self._estimate_gap and n and self._t_last is not None:
                est = max(0, round((t_host - self._t_last) * self.fs) - n)
                out.append(LinkEvent("gap_estimate", t_host, f"about {est} samples lost while "
                                     "disconnected (ASCII lines carry no sequence number)",
                                     sample=self.next_index,
                                     data={"samples": est, "exact": False}))
                self.samples_lost_estimated += est
                gap += est
                self._estimate_gap = False
            if gap:
                self.gaps += 1
            self.samples_lost += seg.gap_before
            start = self.next_index + gap
            out.append(SampleBlock(start, seg.counts, self.fs, self.uv_per_count, gap,
                                   t_host=t_host))
            self.next_index = start + n
            self.samples_received += n
            if n:
                self._t_last = t_host
        return out


def _join_runs(frames: list) -> list[tuple[Any, bool]]:
    """Back-to-back samples frames (each continuing the last one's sequence, same flags and
    channels) as one frame: the per-frame accounting then runs once per run, not per frame.
    Nothing changes where a frame does not continue exactly: a gap stays a gap. The flag says
    whether the item is such a run of two or more: frames that continue each other confirm
    each other's sequence numbers."""
    out: list[tuple[Any, bool]] = []
    run: list[SamplesFrame] = []

    def close() -> None:
        if len(run) > 1:
            first = run[0]
            out.append((SamplesFrame(first.seq, first.flags, first.sample_format,
                                     np.concatenate([f.counts for f in run])), True))
        elif run:
            out.append((run[0], run[0].frames > 1))
        run.clear()

    for frame in frames:
        if isinstance(frame, SamplesFrame):
            if run:
                last = run[-1]
                if (frame.seq == (last.seq + last.counts.shape[0]) % SEQ_MOD
                        and frame.flags == last.flags
                        and frame.counts.shape[1] == last.counts.shape[1]):
                    run.append(frame)
                    continue
                close()
            run.append(frame)
            continue
        close()
        out.append((frame, False))
    close()
    return out


def merge_blocks(items: list[Item]) -> list[Item]:
    """Join back-to-back blocks with the same flags and gain: fewer, larger arrays downstream."""
    out: list[Item] = []
    run: list[SampleBlock] = []

    def close_run() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            first = run[0]
            out.append(SampleBlock(first.start, np.concatenate([b.counts for b in run]),
                                   first.fs, first.uv_per_count, first.gap_before,
                                   first.lead_off, first.saturated, first.t_host))
        run.clear()

    for item in items:
        prev = run[-1] if run else None
        if (isinstance(item, SampleBlock) and prev is not None
                and item.gap_before == 0 and item.n and prev.n and item.start == prev.end
                and item.lead_off == prev.lead_off and item.saturated == prev.saturated
                and item.fs == prev.fs and item.uv_per_count == prev.uv_per_count
                and item.counts.shape[1] == prev.counts.shape[1]):
            run.append(item)
            continue
        close_run()
        if isinstance(item, SampleBlock):
            run.append(item)
        else:
            out.append(item)
    close_run()
    return out


class StreamDecoder:
    """Bytes in, blocks and events out, for one stream across reconnects (pure, no I/O).

    Binary protocol unless ``ascii_fs`` is given. ``fs``/``uv_per_count`` are fallbacks for
    a binary device that never answers the info request; the device's info frame wins.
    """

    def __init__(self, ascii_fs: float | None = None, ascii_uv_per_count: float = 1.0,
                 channels: int | None = None, fs: float | None = None,
                 uv_per_count: float | None = None, merge_runs: bool = True) -> None:
        self.ascii = ascii_fs is not None
        self.merge_runs = merge_runs
        self.frames = FrameDecoder()
        self.lines = AsciiLineDecoder(channels, start_mid_line=True)
        self.blocks = BlockAssembler(fs, uv_per_count)
        self.ascii_blocks = AsciiAssembler(ascii_fs or 1.0, ascii_uv_per_count)
        self.disconnects = 0
        self.reconnects = 0

    @property
    def needs_info(self) -> bool:
        return not self.ascii and self.blocks.needs_info

    def feed(self, data: bytes, t_host: float) -> list[Item]:
        if self.ascii:
            return self.ascii_blocks.push(self.lines.feed(data), t_host)
        # Runs of frames read at once only once frames become blocks directly: before the
        # info frame each frame is held (and an overflow evicts) one by one.
        self.frames.merge_runs = self.merge_runs and not self.blocks.needs_info
        return self.blocks.push(self.frames.feed(data), t_host)

    def connection_lost(self, t_host: float) -> list[Item]:
        """The link dropped: whatever is buffered is finished (intact frames still count)."""
        self.disconnects += 1
        if self.ascii:
            out = self.ascii_blocks.push(self.lines.flush(), t_host)
            self.lines.reconnected()
            self.ascii_blocks.link_lost()
            return out
        return self.blocks.push(self.frames.flush(), t_host)

    def finish(self, t_host: float) -> list[Item]:
        """End of the stream (closing): flush without expecting a reconnect."""
        if self.ascii:
            return self.ascii_blocks.push(self.lines.flush(), t_host)
        return merge_blocks(self.blocks.push(self.frames.flush(), t_host)
                            + self.blocks.finish(t_host))

    def stats(self) -> LinkStats:
        if self.ascii:
            lc, ab = self.lines.counters, self.ascii_blocks
            return LinkStats(mode="ascii", bytes_in=lc.bytes_in, bytes_skipped=lc.bytes_skipped,
                             lines_ok=lc.lines_ok, lines_rejected=lc.lines_rejected,
                             samples_received=ab.samples_received,
                             samples_lost=ab.samples_lost,
                             samples_lost_estimated=ab.samples_lost_estimated, gaps=ab.gaps,
                             disconnects=self.disconnects, reconnects=self.reconnects,
                             next_index=ab.next_index)
        fc, bb = self.frames.counters, self.blocks
        return LinkStats(mode="binary", bytes_in=fc.bytes_in, bytes_skipped=fc.bytes_skipped,
                         frames_ok=fc.frames_ok, crc_errors=fc.crc_errors,
                         bad_length=fc.bad_length, truncated=fc.truncated,
                         malformed=fc.malformed, unknown_version=fc.unknown_version,
                         unknown_type=fc.unknown_type, samples_received=bb.samples_received,
                         samples_lost=bb.samples_lost, gaps=bb.gaps, seq_resets=bb.seq_resets,
                         seq_unconfirmed=bb.seq_unconfirmed,
                         disconnects=self.disconnects, reconnects=self.reconnects,
                         first_seq=bb.first_seq, next_index=bb.next_index)
