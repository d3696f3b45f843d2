"""The VF rule's frequency band (`rhythm.vf_band_hz`): a sinusoid-like window is VF only at a
ventricular oscillation's rate, so muscle noise and motion waves on real handheld strips open no
VF alarm while an oscillation in the band still does."""

from dataclasses import replace

import pytest

from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.monitor import Monitor, bundle_settings, record_blocks, run_blocks
from ecg_edge.device.rhythm import RhythmConfig
from ecg_edge.device.scoring import ModelScorer
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import DATA

BUNDLE = DATA.parent / "device" / "bundles" / "ds1"
STRIPS = DATA / "cinc2017_vf_band"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE)


def vf_starts(bundle, name: str, **settings) -> list[float]:
    st = bundle_settings(bundle)
    st["rhythm"] = replace(st["rhythm"], **settings)
    events: list[dict] = []
    m = Monitor(bundle.manifest.signal, ModelScorer(bundle, "int8"), bundle.threshold().value,
                events.append, **st)
    run_blocks(m, record_blocks(read_record(STRIPS / name), None, 10.0))
    return [e["t"] for e in events if e["type"] == "rhythm_start" and e["rhythm"] == "VF"]


@pytest.mark.parametrize("name", ["A00549", "A01325", "A01716"])
def test_noise_outside_the_band_opens_no_vf(bundle, name):
    assert bundle_settings(bundle)["rhythm"].vf_band_hz == (2.5, 7.5)
    assert vf_starts(bundle, name, vf_band_hz=None)  # the leakage alone reads VF
    assert vf_starts(bundle, name) == []


def test_an_oscillation_in_the_band_still_opens_vf(bundle):
    assert vf_starts(bundle, "A02900") == vf_starts(bundle, "A02900", vf_band_hz=None) != []


def test_the_band_is_checked():
    assert RhythmConfig.from_dict({"vf_band_hz": None}).vf_band_hz is None
    for bad in ([7.5, 2.5], [-1, 5], [3.0]):
        with pytest.raises(ValueError, match="vf_band_hz"):
            RhythmConfig.from_dict({"vf_band_hz": bad})
