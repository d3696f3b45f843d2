"""Fault injection for the emulator: what a real serial link does to bytes.

Each transmitted chunk (one frame, or one batch of ASCII lines) goes through
:meth:`ByteFaults.apply`, which flips bits (a bit error rate), drops bytes (UART overruns,
the Pi's UART losing bytes) and replaces short runs with noise (bursts: a motor, a loose
connector). It returns the damaged bytes; the emulator compares them with the original, so it
knows exactly which frames, and hence how many samples, the host must report lost.
Lead-off periods and disconnects are timed events the emulator itself plays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ecg_edge.firmware_bridge.errors import UserError


@dataclass
class FaultPlan:
    """All faults of one emulation; times are seconds of record time."""

    bit_flip_rate: float = 0.0  # probability that a transmitted bit is inverted
    drop_rate: float = 0.0  # probability that a transmitted byte never arrives
    burst_rate: float = 0.0  # noise bursts per second of stream
    burst_len: int = 16  # bytes overwritten by one burst
    lead_off: list[tuple[float, float]] = field(default_factory=list)  # (start, duration)
    disconnects: list[tuple[float, float]] = field(default_factory=list)  # (at, duration)
    seed: int | None = 0

    def validate(self) -> None:
        for name in ("bit_flip_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"--{name.replace('_', '-')} {value}: a probability between 0 "
                                "and 1 is needed (e.g. 1e-5)")
        if self.burst_rate < 0 or self.burst_len < 1:
            raise UserError(f"--burst {self.burst_rate}:{self.burst_len}: give RATE:LENGTH "
                            "with RATE >= 0 bursts per second and LENGTH >= 1 bytes")
        for kind, spans in (("--lead-off", self.lead_off), ("--disconnect-at", self.disconnects)):
            for start, dur in spans:
                if start < 0 or dur <= 0:
                    raise UserError(f"{kind} {start}:{dur}: start must be >= 0 s and duration "
                                    "> 0 s")

    @property
    def damages_bytes(self) -> bool:
        return self.bit_flip_rate > 0 or self.drop_rate > 0 or self.burst_rate > 0

    def lead_off_at(self, t: float) -> bool:
        return any(start <= t < start + dur for start, dur in self.lead_off)


class ByteFaults:
    """Applies a plan's byte faults; vectorised per chunk, reproducible from the seed."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rng = np.random.default_rng(plan.seed)
        self.bits_flipped = 0
        self.bytes_dropped = 0
        self.bursts = 0

    def apply(self, data: bytes, seconds: float) -> bytes:
        """Damage ``data`` (which takes ``seconds`` of stream time); returns the bytes sent."""
        p = self.plan
        if not p.damages_bytes or not data:
            return data
        rng = self.rng
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        if p.burst_rate > 0:
            for _ in range(int(rng.poisson(p.burst_rate * seconds))):
                at = int(rng.integers(0, arr.size))
                stop = min(arr.size, at + p.burst_len)
                arr[at:stop] = rng.integers(0, 256, stop - at, dtype=np.uint8)
                self.bursts += 1
        if p.bit_flip_rate > 0:
            k = int(rng.binomial(arr.size * 8, p.bit_flip_rate))
            if k:
                pos = rng.integers(0, arr.size * 8, k)
                np.bitwise_xor.at(arr, pos >> 3, (1 << (pos & 7)).astype(np.uint8))
                self.bits_flipped += k
        if p.drop_rate > 0:
            k = int(rng.binomial(arr.size, p.drop_rate))
            if k:
                arr = np.delete(arr, rng.choice(arr.size, size=k, replace=False))
                self.bytes_dropped += k
        return arr.tobytes()


def parse_span(text: str, option: str) -> tuple[float, float]:
    """``START:DURATION`` in seconds (the CLI's lead-off and disconnect syntax)."""
    try:
        start, dur = (float(v) for v in text.split(":"))
    except ValueError:
        raise UserError(f"{option} {text!r}: expected START:DURATION in seconds, e.g. 10:2.5") \
            from None
    return start, dur


def parse_burst(text: str) -> tuple[float, int]:
    """``RATE[:LENGTH]``: bursts per second and bytes per burst (default 16)."""
    try:
        parts = text.split(":")
        if len(parts) > 2:
            raise ValueError
        rate = float(parts[0])
        length = int(parts[1]) if len(parts) == 2 else 16
    except ValueError:
        raise UserError(f"--burst {text!r}: expected RATE[:LENGTH], e.g. 0.5:16 (bursts per "
                        "second, bytes per burst)") from None
    return rate, length
