"""Protocol v2 (and v1) of the serial link: constants, frame types and the encoder.

The full specification a firmware author implements from is ``docs/protocol.md``; this module
is its executable form and the C reference firmware (``firmware/ecg_frame.c``) mirrors it.

Why sync word + length + CRC and not COBS: the host can find a frame start with
``bytes.find`` and check it with one ``binascii.crc_hqx`` call, so decoding stays at the
bytes level in Python; a wrong guess (damaged frame, sync pattern inside data) costs one
CRC and the scan resumes one byte further, so no intact frame is ever lost to a damaged one.

Frame (little-endian except the CRC)::

    SYNC 0xEC 0x47 | VER u8 | TYPE u8 | LEN u16 | BODY (LEN bytes) | CRC big-endian
    BODY = SEQ u32 | PAYLOAD
    v1: CRC-16/CCITT-FALSE (2 bytes); v2 and later: CRC-32 (4 bytes)

v2 differs from v1 only in the check: 16 bits let about one damaged frame in 65 536 through,
and a damaged sequence number that passes would move every later sample (the host therefore
confirms a v1 frame's jump with the next frame; a v2 frame's is trusted). The first six bytes
keep this meaning in every version, so a host can skip a frame of a version it does not know
by its length (after checking its CRC-32) and stay in sync.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

import numpy as np

from ecg_edge.firmware_bridge.crc import crc16, crc32

SYNC = b"\xec\x47"
#: What this host and the reference firmware send; v1 frames are still read.
VERSION = 2
#: Versions whose frames this host parses (a later one is skipped by its length).
VERSIONS = (1, 2)
#: Bytes before the body: sync (2), version, type, length (2).
PREFIX_LEN = 6
#: The longest check (v2); :func:`crc_len` gives each version's.
CRC_LEN = 4
#: Largest body (sequence number + payload) a v1 receiver accepts; bounds how long a damaged
#: length field can make the decoder wait before the CRC exposes it.
MAX_BODY = 1024
MAX_FRAME = PREFIX_LEN + MAX_BODY + CRC_LEN
#: Highest front-end sample rate the host accepts (Hz): ECG ADCs run at up to 32 kHz; this leaves
#: room and bounds the resampler's filter (a rate above it is refused in one line).
MAX_FS = 250_000.0
SEQ_MOD = 1 << 32
MAX_CHANNELS = 8
MAX_FIRMWARE_ID = 32
MAX_STATUS_TEXT = 64

_PREFIX = struct.Struct("<2sBBH")
_SEQ = struct.Struct("<I")
_SAMPLES_HEAD = struct.Struct("<BBBB")
_INFO_HEAD = struct.Struct("<ffBBBB")
_STATUS_HEAD = struct.Struct("<BBH")


class FrameType(IntEnum):
    """Frame types; device to host unless stated."""

    INFO = 0x01
    SAMPLES = 0x02
    STATUS = 0x03
    REQUEST = 0x10  # host to device


class SampleFormat(IntEnum):
    """How one sample of one channel is stored: little-endian two's complement."""

    INT16 = 1
    INT24 = 2  # ADS1292R-style 24-bit front-ends
    INT32 = 3


class Flags(IntFlag):
    """Per-frame condition flags (samples and status frames)."""

    NONE = 0
    LEAD_OFF = 0x01
    SATURATED = 0x02


class StatusCode(IntEnum):
    HEARTBEAT = 0
    BOOT = 1
    LEAD_OFF = 2
    LEAD_ON = 3
    OVERFLOW = 4  # the device dropped samples itself; SEQ still advanced over them
    END = 5  # the stream ends; SEQ is the number of samples produced


class Request(IntEnum):
    INFO = 0x01


WIDTH = {SampleFormat.INT16: 2, SampleFormat.INT24: 3, SampleFormat.INT32: 4}
LIMITS = {
    SampleFormat.INT16: (-(1 << 15), (1 << 15) - 1),
    SampleFormat.INT24: (-(1 << 23), (1 << 23) - 1),
    SampleFormat.INT32: (-(1 << 31), (1 << 31) - 1),
}


@dataclass
class InfoFrame:
    """What the device is: the host needs this to turn counts into millivolts and seconds."""

    seq: int
    fs: float
    uv_per_count: float
    channels: int
    sample_format: SampleFormat
    samples_per_frame: int
    firmware: str
    strong: bool = field(default=False, compare=False)  # CRC-32 checked (v2)


@dataclass
class SamplesFrame:
    """``counts`` int32 (count, channels); ``seq`` is the index of counts[0] modulo 2^32."""

    seq: int
    flags: Flags
    sample_format: SampleFormat
    counts: np.ndarray = field(repr=False)
    strong: bool = field(default=False, compare=False)  # CRC-32 checked (v2)
    # Wire frames this one stands for: > 1 when the decoder read a run of frames that continue
    # each other's sequence numbers in one step (they confirm each other).
    frames: int = field(default=1, compare=False)

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])


@dataclass
class StatusFrame:
    """A condition change; ``seq`` is the index of the next sample the device will send."""

    seq: int
    flags: Flags
    code: int
    detail: int = 0
    text: str = ""
    strong: bool = field(default=False, compare=False)  # CRC-32 checked (v2)


@dataclass
class RequestFrame:
    """Host to device: ask for something (v1: the info frame)."""

    seq: int
    what: int
    strong: bool = field(default=False, compare=False)  # CRC-32 checked (v2)


Frame = InfoFrame | SamplesFrame | StatusFrame | RequestFrame


def crc_len(version: int) -> int:
    """Bytes of the frame check: CRC-16 in v1, CRC-32 from v2 on."""
    return 2 if version == 1 else 4


def frame_check(version: int, data: bytes | bytearray | memoryview) -> int:
    """The check value of ``data`` (everything between the sync word and the check)."""
    return crc16(data) if version == 1 else crc32(data)


def encode_frame(ftype: int, seq: int, payload: bytes, version: int = VERSION) -> bytes:
    """Wrap a payload: prefix, sequence number, payload, CRC over everything after the sync."""
    body_len = _SEQ.size + len(payload)
    if body_len > MAX_BODY:
        raise ValueError(f"frame body of {body_len} bytes exceeds the limit of {MAX_BODY}")
    head = _PREFIX.pack(SYNC, version, ftype, body_len) + _SEQ.pack(seq % SEQ_MOD)
    check = frame_check(version, head[2:] + payload)
    return head + payload + check.to_bytes(crc_len(version), "big")


def clip_counts(counts: np.ndarray, sample_format: SampleFormat) -> tuple[np.ndarray, bool]:
    """Clip to what the format can carry; report whether anything was clipped (SATURATED)."""
    lo, hi = LIMITS[SampleFormat(sample_format)]
    wide = np.asarray(counts, dtype=np.int64)
    clipped = np.clip(wide, lo, hi)
    return clipped, bool(np.any(clipped != wide))


def pack_counts(counts: np.ndarray, sample_format: SampleFormat) -> bytes:
    """Interleaved little-endian samples (sample-major: s0c0 s0c1 s1c0 ...), already clipped."""
    fmt = SampleFormat(sample_format)
    flat = np.ascontiguousarray(counts, dtype=np.int64).reshape(-1)
    if fmt is SampleFormat.INT16:
        return flat.astype("<i2").tobytes()
    if fmt is SampleFormat.INT32:
        return flat.astype("<i4").tobytes()
    as_bytes = flat.astype("<i4").view(np.uint8).reshape(-1, 4)
    return as_bytes[:, :3].tobytes()


def unpack_counts(data: bytes | memoryview, sample_format: SampleFormat,
                  channels: int) -> np.ndarray:
    """Inverse of :func:`pack_counts`: int32 array (n, channels)."""
    if sample_format == SampleFormat.INT16:
        flat = np.frombuffer(data, dtype="<i2").astype(np.int32)
    elif sample_format == SampleFormat.INT32:
        flat = np.frombuffer(data, dtype="<i4").astype(np.int32)
    else:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        flat = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        flat = np.where(flat >= (1 << 23), flat - (1 << 24), flat).astype(np.int32)
    return flat.reshape(-1, channels)


def encode_samples(seq: int, counts: np.ndarray, flags: int = 0,
                   sample_format: SampleFormat = SampleFormat.INT16,
                   version: int = VERSION) -> bytes:
    """A samples frame; values beyond the format are clipped and the frame flagged SATURATED."""
    arr = np.asarray(counts)
    if arr.ndim == 1:
        arr = arr[:, None]
    n, ch = arr.shape
    if not 1 <= n <= 255 or not 1 <= ch <= MAX_CHANNELS:
        raise ValueError(f"a samples frame carries 1..255 samples of 1..{MAX_CHANNELS} channels, "
                         f"got {n} x {ch}")
    clipped, saturated = clip_counts(arr, sample_format)
    if saturated:
        flags |= Flags.SATURATED
    head = _SAMPLES_HEAD.pack(int(flags) & 0xFF, int(sample_format), ch, n)
    return encode_frame(FrameType.SAMPLES, seq, head + pack_counts(clipped, sample_format),
                        version)


def encode_info(seq: int, fs: float, uv_per_count: float, channels: int,
                sample_format: SampleFormat = SampleFormat.INT16, samples_per_frame: int = 10,
                firmware: str = "", version: int = VERSION) -> bytes:
    fw = firmware.encode("utf-8")[:MAX_FIRMWARE_ID]
    head = _INFO_HEAD.pack(fs, uv_per_count, channels, int(sample_format), samples_per_frame, 0)
    return encode_frame(FrameType.INFO, seq, head + fw, version)


def encode_status(seq: int, code: int, flags: int = 0, detail: int = 0, text: str = "",
                  version: int = VERSION) -> bytes:
    body = text.encode("utf-8")[:MAX_STATUS_TEXT]
    return encode_frame(FrameType.STATUS, seq, _STATUS_HEAD.pack(int(flags) & 0xFF, code, detail)
                        + body, version)


def encode_request(what: int = Request.INFO, seq: int = 0, version: int = VERSION) -> bytes:
    return encode_frame(FrameType.REQUEST, seq, bytes([what]), version)


def encode(frame: Frame) -> bytes:
    """Encode any frame object (the inverse of the decoder, used by tests and the emulator)."""
    if isinstance(frame, SamplesFrame):
        return encode_samples(frame.seq, frame.counts, frame.flags, frame.sample_format)
    if isinstance(frame, InfoFrame):
        return encode_info(frame.seq, frame.fs, frame.uv_per_count, frame.channels,
                           frame.sample_format, frame.samples_per_frame, frame.firmware)
    if isinstance(frame, StatusFrame):
        return encode_status(frame.seq, frame.code, frame.flags, frame.detail, frame.text)
    return encode_request(frame.what, frame.seq)


def parse_payload(ftype: int, seq: int, payload: bytes | memoryview,
                  strong: bool = False) -> Frame | None:
    """Turn a CRC-checked payload into a frame; ``None`` when it is malformed.

    Never raises: the decoder calls this on any bytes whose CRC happened to match. ``strong``:
    the frame was checked with CRC-32 (v2), so its sequence number needs no confirmation.
    """
    frame = _parse(ftype, seq, payload)
    if frame is not None and strong:
        frame.strong = True
    return frame


def samples_format(fmt: int, channels: int, n: int, size: int) -> SampleFormat | None:
    """The sample format of a samples payload of ``size`` bytes whose header says ``fmt``,
    ``channels`` and ``n`` samples; ``None`` where the header breaks the rules."""
    f = _FORMATS.get(fmt)
    if (f is None or not 1 <= channels <= MAX_CHANNELS or n == 0
            or size != _SAMPLES_HEAD.size + n * channels * WIDTH[f]):
        return None
    return f


def _parse(ftype: int, seq: int, payload: bytes | memoryview) -> Frame | None:
    size = len(payload)
    if ftype == FrameType.SAMPLES:
        if size < _SAMPLES_HEAD.size:
            return None
        flags, fmt, ch, n = _SAMPLES_HEAD.unpack_from(payload)
        fmt = samples_format(fmt, ch, n, size)
        if fmt is None:
            return None
        counts = unpack_counts(payload[_SAMPLES_HEAD.size:], fmt, ch)
        return SamplesFrame(seq, _FLAGS[flags & 0x03], fmt, counts)
    if ftype == FrameType.INFO:
        if not _INFO_HEAD.size <= size <= _INFO_HEAD.size + MAX_FIRMWARE_ID:
            return None
        fs, uv, ch, fmt, spf, _ = _INFO_HEAD.unpack_from(payload)
        if fmt not in _FORMATS or not 1 <= ch <= MAX_CHANNELS:
            return None
        if not (math.isfinite(fs) and fs > 0 and math.isfinite(uv) and uv > 0):
            return None
        fw = bytes(payload[_INFO_HEAD.size:]).decode("utf-8", errors="replace")
        return InfoFrame(seq, float(fs), float(uv), ch, _FORMATS[fmt], spf, fw)
    if ftype == FrameType.STATUS:
        if not _STATUS_HEAD.size <= size <= _STATUS_HEAD.size + MAX_STATUS_TEXT:
            return None
        flags, code, detail = _STATUS_HEAD.unpack_from(payload)
        text = bytes(payload[_STATUS_HEAD.size:]).decode("utf-8", errors="replace")
        return StatusFrame(seq, _FLAGS[flags & 0x03], code, detail, text)
    if ftype == FrameType.REQUEST:
        if size != 1:
            return None
        return RequestFrame(seq, payload[0])
    return None


_FORMATS = {int(f): f for f in SampleFormat}
_FLAGS = [Flags(i) for i in range(4)]
KNOWN_TYPES = frozenset(int(t) for t in FrameType)
