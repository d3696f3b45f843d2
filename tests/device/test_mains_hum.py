"""Mains hum on the lead: the shipped bundle types record 106's beats as it does on the clean
record, and without its notch it would not (so the check can fail)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.cli import SHIPPED_BUNDLE
from ecg_edge.device.evaluation import MATCH_WINDOW_S, match_beats
from ecg_edge.device.monitor import Monitor, bundle_settings, record_blocks, run_blocks
from ecg_edge.device.scoring import ModelScorer
from ecg_edge.firmware_bridge.records import Record


def _calls(rec: Record, notch: bool) -> dict[int, str]:
    """Beat sample -> class, replayed as the device runs the shipped bundle."""
    bundle = load_bundle(SHIPPED_BUNDLE)
    signal = bundle.manifest.signal
    if not notch:
        signal = dataclasses.replace(signal, notch_hz=())
    events: list[dict] = []
    run_blocks(Monitor(signal, ModelScorer(bundle, "int8"), bundle.threshold("int8").value,
                       events.append, **bundle_settings(bundle)), record_blocks(rec, None, 10.0))
    return {e["sample"]: e["class"] for e in events if e["type"] == "beat"}


def _with_hum(rec: Record, hz: float, mv: float) -> Record:
    t = np.arange(rec.n_samples) / rec.fs
    uv = rec.uv_per_count[rec.channel_index()]
    counts = rec.counts.copy()
    counts[:, rec.channel_index()] += np.round(
        mv * 1000.0 / uv * np.sin(2 * np.pi * hz * t)).astype(counts.dtype)
    return dataclasses.replace(rec, counts=counts)


def _pvcs(calls: dict[int, str], rec: Record) -> int:
    """Annotated PVCs called V (matched as EC57 matches, within 150 ms)."""
    got = np.array(sorted(s for s, c in calls.items() if c == "V"), dtype=np.int64)
    v = np.array([s for s, sym in zip(rec.ann_samples.tolist(), rec.ann_symbols) if sym == "V"])
    return int((match_beats(got, v, int(MATCH_WINDOW_S * rec.fs)) >= 0).sum())


@pytest.mark.slow
@pytest.mark.parametrize("hz", [50.0, 60.0, 50.1])
def test_pvcs_are_found_through_mains_hum(record_106, hz):
    clean = _pvcs(_calls(record_106, notch=True), record_106)
    assert clean > 400  # of 520
    noisy = _with_hum(record_106, hz, 0.3)
    assert _pvcs(_calls(noisy, notch=True), record_106) >= 0.97 * clean
    assert _pvcs(_calls(noisy, notch=False), record_106) < 0.8 * clean
