"""Shared fixtures: real records from the repo's data/ (a fresh clone has them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_bridge.records import read_record

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
MITDB = DATA / "mitdb"


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
