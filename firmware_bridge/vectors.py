"""Shared test vectors: one text file both the C and the Python encoder must reproduce.

``firmware/vectors.txt`` holds lines ``COMMAND ARGS = EXPECTED_HEX``; the C driver
(``tests/firmware_bridge/c/vector_tool.c``) and :func:`python_answer` read the same
commands. A firmware port for another language can check itself against the same file.
Regenerate (only when the protocol changes on purpose) with
``python -m ecg_edge.firmware_bridge.vectors firmware_bridge/firmware/vectors.txt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ecg_edge.firmware_bridge.crc import crc16, crc32
from ecg_edge.firmware_bridge.protocol import (
    encode_info,
    encode_request,
    encode_samples,
    encode_status,
)

VECTOR_FILE = Path(__file__).parent / "firmware" / "vectors.txt"


def default_commands() -> list[str]:
    """The vectors: every frame type, format, flag, limit and the sequence wrap-around."""
    rng = np.random.default_rng(2024)
    cmds = ["crc 313233343536373839", "crc 00", "crc ffffffff", "crc -"]
    cmds.append("crc " + rng.integers(0, 256, 300, dtype=np.uint8).tobytes().hex())
    cmds += ["crc32 313233343536373839", "crc32 00", "crc32 ffffffff", "crc32 -"]
    cmds.append("crc32 " + rng.integers(0, 256, 300, dtype=np.uint8).tobytes().hex())
    cmds += [
        "samples 0 0 1 1 1 0",
        "samples 0 0 1 1 3 1 -2 300",
        "samples 10 1 1 1 4 -32768 32767 -1 0",
        "samples 20 0 1 1 3 40000 -40000 5",  # clipped: SATURATED set by the encoder
        "samples 4294967290 0 1 2 4 1 2 3 4 5 6 7 8",  # sequence wraps in the next frame
        "samples 123456 2 2 1 3 -8388608 8388607 -1",
        "samples 7 0 2 1 2 9000000 -9000000",
        "samples 99 3 3 2 2 -2147483648 2147483647 -1 1",
        "samples 5 0 3 8 1 1 -2 3 -4 5 -6 7 -8",
    ]
    big = rng.integers(-1 << 31, 1 << 31, 63 * 4, dtype=np.int64)
    cmds.append("samples 1000 0 3 4 63 " + " ".join(map(str, big)))
    full = rng.integers(-2048, 2048, 254 * 2, dtype=np.int64)
    cmds.append("samples 65535 0 1 2 254 " + " ".join(map(str, full)))  # body 1024: the limit
    cmds += [
        "info 0 360 5 1 1 10 ecg-edge-ref/1",
        "info 77 250 2.5 2 2 25 -",
        "info 4294967295 500 0.095367431640625 8 3 1 "
        "a-firmware-id-that-is-longer-than-32-bytes",
        "status 0 0 1 0 -",
        "status 3600 1 2 0 lead_off",
        "status 3610 0 4 3 -",
        "status 650000 0 5 0 end_of_record",
        "request 0 1",
        "request 42 1",
    ]
    return cmds


def python_answer(command: str) -> str:
    """What the Python side says for one vector command (hex, like the C driver)."""
    kind, *args = command.split()
    if kind == "crc32":
        data = b"" if not args or args[0] == "-" else bytes.fromhex(args[0])
        return f"{crc32(data):08x}"
    if kind == "crc":
        data = b"" if not args or args[0] == "-" else bytes.fromhex(args[0])
        return f"{crc16(data):04x}"
    if kind == "samples":
        seq, flags, fmt, ch, count = (int(a, 0) for a in args[:5])
        values = np.array([int(a, 0) for a in args[5:]], dtype=np.int64).reshape(count, ch)
        return encode_samples(seq, values, flags, fmt).hex()
    if kind == "info":
        seq, fs, uv, ch, fmt, spf, fw = args
        return encode_info(int(seq, 0), float(fs), float(uv), int(ch), int(fmt), int(spf),
                           "" if fw == "-" else fw).hex()
    if kind == "status":
        seq, flags, code, detail, text = args
        return encode_status(int(seq, 0), int(code), int(flags), int(detail),
                             "" if text == "-" else text).hex()
    if kind == "request":
        seq, what = args
        return encode_request(int(what), int(seq, 0)).hex()
    raise ValueError(f"unknown vector command {kind!r}")


def read_vectors(path: Path = VECTOR_FILE) -> list[tuple[str, str]]:
    """(command, expected hex) pairs from a vector file."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        command, _, expected = line.partition(" = ")
        out.append((command.strip(), expected.strip()))
    return out


def write_vectors(path: Path) -> None:
    lines = ["# ecg-edge protocol v2 test vectors: COMMAND ARGS = EXPECTED (hex)",
             "# samples SEQ FLAGS FORMAT CHANNELS COUNT VALUES... (sample-major)",
             "# info SEQ FS UV_PER_COUNT CHANNELS FORMAT SAMPLES_PER_FRAME FIRMWARE|-",
             "# status SEQ FLAGS CODE DETAIL TEXT|-   request SEQ WHAT   crc HEX|-  crc32 HEX|-"]
    lines += [f"{c} = {python_answer(c)}" for c in default_commands()]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write_vectors(Path(sys.argv[1]) if len(sys.argv) > 1 else VECTOR_FILE)
