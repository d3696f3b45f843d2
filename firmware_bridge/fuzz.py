"""Fuzzing the decoders: random and mutated inputs, each decoded on its own and in batches.

Inputs come from three generators: uniform random bytes; random bytes over a small alphabet
rich in sync/header values (so candidate frames are common); and valid frame sequences
mutated by bit flips, deletions, insertions, truncation, duplication, a rewritten length, or a
rewritten payload with the CRC fixed up afterwards (so malformed content reaches the payload
parser). Each input is decoded alone (``decode_all``); batches of inputs are also joined and
fed to one :class:`StreamDecoder` in random chunk sizes, which must give exactly the frames
and counters of a single feed (chunking invariance) and keep the byte accounting exact.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ecg_edge.firmware_bridge.ascii_lines import AsciiLineDecoder
from ecg_edge.firmware_bridge.blocks import StreamDecoder
from ecg_edge.firmware_bridge.decoder import FrameDecoder, decode_all
from ecg_edge.firmware_bridge.protocol import (
    PREFIX_LEN,
    VERSIONS,
    SampleFormat,
    SamplesFrame,
    StatusCode,
    encode_info,
    encode_request,
    encode_samples,
    encode_status,
    frame_check,
)

_ALPHABET = np.frombuffer(b"\xec\x47\x01\x02\x03\x10\x00\xff\x04\x0a\x7f\x80", np.uint8)


@dataclass
class FuzzResult:
    inputs: int = 0  # decoded one by one
    batch_inputs: int = 0  # also decoded inside joined batches
    ascii_inputs: int = 0
    bytes_total: int = 0
    frames_found: int = 0
    exceptions: int = 0
    invariant_violations: int = 0
    chunking_mismatches: int = 0
    seconds: float = 0.0
    first_failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_pool(rng: np.random.Generator, size: int = 256) -> list[bytes]:
    """Valid frames of every type, format and flag, for mutation."""
    pool = []
    for k in range(size):
        kind = k % 8
        seq = int(rng.integers(0, 1 << 32))
        v = VERSIONS[(k // 8) % len(VERSIONS)]
        if kind < 5:
            fmt = SampleFormat(1 + k % 3)
            ch = int(rng.integers(1, 4))
            n = int(rng.integers(1, 12))
            counts = rng.integers(-40000, 40000, (n, ch))
            pool.append(encode_samples(seq, counts, int(rng.integers(0, 4)), fmt, v))
        elif kind == 5:
            pool.append(encode_info(seq, float(rng.choice([250, 360, 500])), 5.0,
                                    int(rng.integers(1, 9)), SampleFormat(1 + k % 3), 10,
                                    "fw" * int(rng.integers(0, 20)), v))
        elif kind == 6:
            pool.append(encode_status(seq, int(rng.choice(list(StatusCode))),
                                      int(rng.integers(0, 4)), int(rng.integers(0, 65536)),
                                      "x" * int(rng.integers(0, 70)), v))
        else:
            pool.append(encode_request(1, seq, v))
    return pool


def _mutate(r: random.Random, pool: list[bytes]) -> bytes:
    rnd = r.random  # int(rnd() * n) is several times cheaper than randrange(n)
    npool = len(pool)
    data = bytearray(b"".join([pool[int(rnd() * npool)] for _ in range(1 + int(rnd() * 3))]))
    for _ in range(1 + int(rnd() * 3)):
        size = len(data)
        if size == 0:
            break
        op = int(rnd() * 8)
        at = int(rnd() * size)
        if op == 0:  # bit flip
            data[at] ^= 1 << int(rnd() * 8)
        elif op == 1:  # delete a run
            del data[at:at + 1 + int(rnd() * 5)]
        elif op == 2:  # insert random bytes
            data[at:at] = r.randbytes(1 + int(rnd() * 5))
        elif op == 3:  # truncate
            del data[at:]
        elif op == 4:  # duplicate a segment
            data[at:at] = data[at:at + 1 + int(rnd() * 40)]
        elif op == 5:  # rewrite the length field of the first frame
            if size >= PREFIX_LEN:
                data[4:6] = int(rnd() * 65536).to_bytes(2, "little")
        elif op == 6:  # new version/type, CRC fixed up: reaches the skip rules
            _fix_first(data, r, header=True)
        else:  # random payload bytes, CRC fixed up: reaches the payload parser
            _fix_first(data, r, header=False)
    return bytes(data)


def _fix_first(data: bytearray, r: random.Random, header: bool) -> None:
    """Change the first frame's content, then recompute its CRC so it passes the check."""
    if len(data) < PREFIX_LEN + 6:
        return
    body = data[4] | data[5] << 8
    end = PREFIX_LEN + body
    if end + 4 > len(data):
        return
    if header:
        data[2] = r.choice((0, 1, 1, 2, 2, 3, 255))
        data[3] = r.randrange(256)
    else:
        start = PREFIX_LEN + 4
        n = r.randrange(max(1, end - start))
        if n:
            at = r.randint(start, end - n)
            data[at:at + n] = r.randbytes(n)
    clen = 2 if data[2] == 1 else 4
    data[end:end + clen] = frame_check(data[2], bytes(data[2:end])).to_bytes(clen, "big")


def generate(rng: np.random.Generator, count: int, pool: list[bytes]) -> list[bytes]:
    """``count`` inputs: a quarter uniform, a quarter header-rich alphabet, half mutated."""
    out: list[bytes] = []
    n_uniform = count // 4
    n_alpha = count // 4
    for n, source in ((n_uniform, None), (n_alpha, _ALPHABET)):
        lengths = rng.integers(0, 48, n)
        total = int(lengths.sum())
        if source is None:
            blob = rng.integers(0, 256, total, dtype=np.uint8).tobytes()
        else:
            blob = source[rng.integers(0, source.size, total)].tobytes()
        ends = np.cumsum(lengths)
        starts = ends - lengths
        out += [blob[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
    r = random.Random(int(rng.integers(1 << 62)))
    out += [_mutate(r, pool) for _ in range(count - n_uniform - n_alpha)]
    return out


def _one(data: bytes, result: FuzzResult) -> None:
    try:
        frames, c = decode_all(data)
    except Exception as exc:  # noqa: BLE001 - counting escapes is the point of a fuzzer
        result.exceptions += 1
        if len(result.first_failures) < 5:
            result.first_failures.append(f"{type(exc).__name__}: {exc} :: {data.hex()}")
        return
    result.frames_found += len(frames)
    if c.bytes_in != c.bytes_in_frames + c.bytes_skipped or c.bytes_in != len(data):
        result.invariant_violations += 1
        if len(result.first_failures) < 5:
            result.first_failures.append(f"accounting {c} :: {data.hex()}")


def _batch(inputs: list[bytes], rng: np.random.Generator, result: FuzzResult) -> None:
    """Joined inputs: one feed vs random chunks through the full stream decoder."""
    blob = b"".join(inputs)
    whole = FrameDecoder()
    frames = whole.feed(blob) + whole.flush()
    stream = StreamDecoder()
    cuts = np.cumsum(rng.integers(1, 700, len(blob) // 300 + 2)).tolist()
    pos = 0
    for cut in cuts + [len(blob)]:
        if cut > pos:
            stream.feed(blob[pos:cut], 0.0)
            pos = cut
    stream.finish(0.0)
    c = stream.frames.counters
    samples = sum(f.n for f in frames if isinstance(f, SamplesFrame))
    b = stream.blocks
    if whole.counters != c or b.samples_received + b.samples_lost + b.samples_unconfirmed \
            < samples:
        result.chunking_mismatches += 1
    if c.bytes_in != c.bytes_in_frames + c.bytes_skipped or c.bytes_in != len(blob):
        result.invariant_violations += 1
    result.batch_inputs += len(inputs)


def _ascii(rng: np.random.Generator, count: int, result: FuzzResult) -> None:
    good = b"512,-3\n1023,7\r\n# comment\n\n0;1\n"
    alphabet = np.frombuffer(b"0123456789,-;+ \t\r\n#x\x00\xff", np.uint8)
    lengths = rng.integers(0, 40, count)
    blob = alphabet[rng.integers(0, alphabet.size, int(lengths.sum()))].tobytes()
    ends = np.cumsum(lengths)
    dec = AsciiLineDecoder()
    for s, e in zip((ends - lengths).tolist(), ends.tolist()):
        data = blob[s:e] if s % 3 else good[: e - s] + blob[s:e]
        one = AsciiLineDecoder()
        one.feed(data)
        one.flush()
        dec.feed(data)
        c = one.counters
        if c.bytes_in != c.bytes_in_lines + c.bytes_skipped + one.pending:
            result.invariant_violations += 1
        result.ascii_inputs += 1
    dec.flush()


def fuzz_decoder(inputs: int = 1_000_000, seed: int = 0, batch: int = 20_000,
                 ascii_inputs: int = 100_000, workers: int = 1) -> FuzzResult:
    """Decode ``inputs`` random/mutated inputs one by one and in joined batches.

    ``workers`` > 1 splits the inputs over processes (independent seeds) and adds up results.
    """
    if workers > 1:
        return _parallel(inputs, seed, batch, ascii_inputs, workers)
    rng = np.random.default_rng(seed)
    pool = frame_pool(rng)
    result = FuzzResult()
    t0 = time.perf_counter()
    done = 0
    while done < inputs:
        chunk = generate(rng, min(batch, inputs - done), pool)
        for data in chunk:
            _one(data, result)
            result.bytes_total += len(data)
        try:
            _batch(chunk, rng, result)
        except Exception as exc:  # noqa: BLE001 - counting escapes is the point of a fuzzer
            result.exceptions += 1
            if len(result.first_failures) < 5:
                result.first_failures.append(f"batch {type(exc).__name__}: {exc}")
        done += len(chunk)
        result.inputs = done
    try:
        _ascii(rng, ascii_inputs, result)
    except Exception as exc:  # noqa: BLE001 - counting escapes is the point of a fuzzer
        result.exceptions += 1
        result.first_failures.append(f"ascii {type(exc).__name__}: {exc}")
    result.seconds = round(time.perf_counter() - t0, 2)
    return result


def _parallel(inputs: int, seed: int, batch: int, ascii_inputs: int, workers: int) -> FuzzResult:
    t0 = time.perf_counter()
    share = [inputs // workers + (i < inputs % workers) for i in range(workers)]
    ascii_share = [ascii_inputs // workers + (i < ascii_inputs % workers) for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(fuzz_decoder, share, [seed * 1000 + i for i in range(workers)],
                              [batch] * workers, ascii_share))
    total = FuzzResult()
    for p in parts:
        for name in ("inputs", "batch_inputs", "ascii_inputs", "bytes_total", "frames_found",
                     "exceptions", "invariant_violations", "chunking_mismatches"):
            setattr(total, name, getattr(total, name) + getattr(p, name))
        total.first_failures += p.first_failures
    total.seconds = round(time.perf_counter() - t0, 2)
    return total
