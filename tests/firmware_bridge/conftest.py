"""Shared fixtures: the real MIT-BIH records and the C reference firmware built with gcc."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ecg_edge.firmware_bridge.records import Record, read_record

ROOT = Path(__file__).resolve().parents[2]
MITDB = ROOT / "data" / "mitdb"
FIRMWARE = ROOT / "firmware_bridge" / "firmware"
C_TESTS = Path(__file__).resolve().parent / "c"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-Wsign-conversion",
          "-Wshadow", "-pedantic", "-O2"]


@pytest.fixture(scope="session")
def rec100() -> Record:
    return read_record(MITDB / "100")


@pytest.fixture(scope="session")
def rec119() -> Record:
    return read_record(MITDB / "119")


def _gcc(out: Path, *sources: Path, defines: tuple[str, ...] = ()) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (needed to build the C reference firmware)")
    cmd = [gcc, *CFLAGS, *defines, f"-I{FIRMWARE}", *map(str, sources), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"gcc failed:\n{' '.join(cmd)}\n{done.stderr}"
    return out


@pytest.fixture(scope="session")
def vector_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C encoder/parser behind a line-command driver."""
    out = tmp_path_factory.mktemp("c") / "vector_tool"
    return _gcc(out, FIRMWARE / "ecg_frame.c", C_TESTS / "vector_tool.c")


@pytest.fixture(scope="session")
def example_firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example main loop, built against the host HAL (stdout is the UART)."""
    out = tmp_path_factory.mktemp("c") / "ecg_main_host"
    return _gcc(out, FIRMWARE / "ecg_frame.c", FIRMWARE / "ecg_main.c",
                C_TESTS / "host_hal.c")
