"""Throughput of the signal path: seconds of ECG processed per second of one core.

Measures filter + resampling + R-peak detection + windows + wearer context over whole real
records (the batch path training uses) and in 1-second blocks (what a live stream feeds).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.signal_path import process_signal
from ecg_edge.firmware_bridge.records import read_record


@dataclass
class Throughput:
    record: str
    duration_s: float
    beats: int
    whole_s: float  # best of repeats, whole-array
    block_s: float  # best of repeats, 1-second blocks
    whole_x_realtime: float
    block_x_realtime: float


def pin_one_core() -> int | None:
    """Run on one core so the figure is per core (BLAS threads share it too)."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return core
    return None


def measure(record_path: str, repeats: int = 3, cfg: SignalConfig | None = None) -> Throughput:
    cfg = cfg or SignalConfig()
    rec = read_record(record_path)
    x = rec.lead_mv()
    process_signal(x[: int(rec.fs * 60)], rec.fs, cfg)  # warm-up
    best_whole = best_block = float("inf")
    beats = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        beats = len(process_signal(x, rec.fs, cfg))
        best_whole = min(best_whole, time.perf_counter() - t0)
        t0 = time.perf_counter()
        process_signal(x, rec.fs, cfg, chunk=int(rec.fs))
        best_block = min(best_block, time.perf_counter() - t0)
    return Throughput(rec.name, rec.duration_s, beats, best_whole, best_block,
                      rec.duration_s / best_whole, rec.duration_s / best_block)


def as_dict(t: Throughput) -> dict:
    return asdict(t)
