"""Which machine a benchmark ran on, and under what conditions (governor, load).

Figures differ between boards and between a quiet and a busy machine, so every result carries
the board id (``/proc/device-tree/model`` on a Pi, else platform + CPU model), the CPU frequency
governor and the load average it was measured under, as pycoral's benchmarks record them.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from pathlib import Path

GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip("\x00\n ") or None
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (x86 'model name', Arm 'Hardware'/'Model')."""
    text = _read(Path("/proc/cpuinfo")) or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine()


def board_model() -> str:
    """A Pi's own name (device tree), else '<machine> <CPU model>'."""
    return _read(DEVICE_TREE_MODEL) or f"{platform.machine()} {cpu_model()}"


def slug(text: str) -> str:
    """File-name-safe board id: 'Raspberry Pi 5 Model B' -> 'raspberry-pi-5-model-b'."""
    s = re.sub(r"\((r|tm|c)\)", "", text.lower())
    s = re.sub(r"\b(cpu|processor)\b|@.*$", "", s)
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s[:80] or "unknown-board"


def conditions() -> dict:
    """What a timing depends on besides the code: governor, load, cores, affinity."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"governor": _read(GOVERNOR), "loadavg": [round(v, 2) for v in load],
            "cpus": os.cpu_count(), "affinity": affinity,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def board_info() -> dict:
    model = board_model()
    return {"board": model, "slug": slug(model), "cpu": cpu_model(),
            "machine": platform.machine(), "system": f"{platform.system()} {platform.release()}",
            "python": sys.version.split()[0]}


def wait_quiet(max_load: float = 1.0, timeout_s: float = 180.0, poll_s: float = 10.0,
               log=None) -> float:
    """Wait (up to ``timeout_s``) for the 1-minute load average to drop under ``max_load``.

    Returns the load measured last; the caller records it either way.
    """
    if not hasattr(os, "getloadavg"):
        return float("nan")
    t0 = time.monotonic()
    load = os.getloadavg()[0]
    while load >= max_load and time.monotonic() - t0 < timeout_s:
        if log:
            log(f"load average {load:.2f} >= {max_load}; waiting for a quieter machine ...")
        time.sleep(poll_s)
        load = os.getloadavg()[0]
    return load
