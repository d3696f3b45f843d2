"""Shared fixtures: real records from the repo's data/ (a fresh clone has them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecg_edge.firmware_bridge.records import read_record

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
MITDB = DATA / "mitdb"


def device_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """``ecg-device ARGS`` in a child Python, as a user runs it (output captured as text)."""
    return subprocess.run([sys.executable, "-m", "ecg_edge.device.cli", *args],
                          capture_output=True, text=True, timeout=timeout, **kw)


def copy_records(dest: Path, *names: str) -> Path:
    """A folder holding copies of shipped MIT-BIH records (header, signal, annotations)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        for ext in ("hea", "dat", "atr"):
            shutil.copy(MITDB / f"{name}.{ext}", dest / f"{name}.{ext}")
    return dest


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker per usable core, at most four (each worker may load TensorFlow)."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def pytest_collection_modifyitems(config, items) -> None:
    """Long tests first: the suite's wall time is then close to its CPU time over the workers.

    Run last, the README test (minutes on CI's two cores) would add its whole length at the end.
    """
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None,
                                 item.path.name != "test_readme.py"))


@pytest.fixture(scope="session")
def mitdb_dir() -> Path:
    return MITDB


@pytest.fixture(scope="session")
def record_106():
    """Ventricular-rich MIT-BIH record (520 V beats)."""
    return read_record(MITDB / "106")


@pytest.fixture(scope="session")
def record_119():
    """Ventricular bigeminy episodes (444 V beats)."""
    return read_record(MITDB / "119")


@pytest.fixture(scope="session")
def record_100():
    return read_record(MITDB / "100")


@pytest.fixture(scope="session")
def record_209():
    """Frequent APCs and runs of SVTA in sinus rhythm (383 S beats)."""
    return read_record(MITDB / "209")


@pytest.fixture(scope="session")
def record_201():
    """Atrial fibrillation, nodal rhythm and two real pauses (3.7 s)."""
    return read_record(MITDB / "201")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A real bundle: CNN-AE trained briefly on record 106, converted to int8 (needs TF)."""
    pytest.importorskip("tensorflow")
    tmp = tmp_path_factory.mktemp("bundle")
    steps = [
        ["ecg_edge.train.cli", "fit", str(MITDB), "--records", "106", "--epochs", "2",
         "--max-normals-per-record", "300", "--out", str(tmp / "run")],
        ["ecg_edge.convert.cli", "bundle", str(tmp / "run"), "--out", str(tmp / "bundle"),
         "--static-batch", "--per-tensor", "--max-size-ratio", "0", "--calibration-count",
         "100"],
    ]
    for step in steps:
        out = subprocess.run([sys.executable, "-m", *step], capture_output=True, text=True,
                             timeout=600, cwd=REPO)
        assert out.returncode == 0, out.stderr[-2000:]
    return tmp / "bundle"
