"""The AF gate on biphasic QRS complexes (``RhythmConfig.align_lag_s``).

The detector's fiducial is the largest |band-passed ECG|; where R and S are of like size (both
strips here, CinC 2017, a handheld single lead) it lands on R for one beat and on S for the
next. Measured against the wearer's template such beats look ectopic, and the AF rule leaves
every interval that touches an ectopic beat out of its irregularity window: on the AF strip
no window was ever complete. Moving a beat whose fiducial sits on the other wave than the
template's to its best match gives the rule its windows back; beats the classifier types V
stay out whatever lag matches them best.
"""

from dataclasses import replace

import numpy as np
import pytest

from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.cli import SHIPPED_BUNDLE
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.monitor import Monitor, bundle_settings, record_blocks, run_blocks
from ecg_edge.device.records import record_beats
from ecg_edge.device.rhythm import RhythmAnalyzer, RhythmConfig, align_windows, gate_evidence
from ecg_edge.device.rhythm_features import ODD_QRS, atrial_evidence
from ecg_edge.device.scoring import ModelScorer
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import DATA

STRIPS = DATA / "cinc2017_biphasic"


@pytest.fixture(scope="module")
def strip_beats():
    cfg = SignalConfig()
    return {n: record_beats(read_record(STRIPS / n), cfg) for n in ("A00156", "A00489")}


@pytest.mark.parametrize("name", ["A00156", "A00489"])
def test_aligned_beats_match_the_template_the_fiducial_flip_hid(strip_beats, name):
    b, cfg = strip_beats[name], SignalConfig()
    # once the template has settled (it forms over the first beats of a cold strip)
    ready = (b.time_s > 10.0) & np.isfinite(b.template).all(axis=1)
    raw = atrial_evidence(b.window, b.template, b.amplitude, cfg.fs, cfg.window_before_s,
                          RhythmConfig().p_wave_region_s)[ready, 2]
    _, aligned = gate_evidence(b.window, b.template, cfg.fs, cfg.window_before_s,
                               RhythmConfig(align_lag_s=0.03))
    aligned = aligned[ready]
    # at the fiducial a good share of the beats look ectopic (A00156 0.62, A00489 0.33; 0.68
    # and 0.50 before the mains notches) ...
    assert np.mean(raw < ODD_QRS) > 0.3, np.round(raw, 2).tolist()
    # ... aligned, under half as many do (0.22, 0.03), and no beat matches worse than it did
    assert np.mean(aligned < ODD_QRS) < 0.5 * np.mean(raw < ODD_QRS), np.round(aligned, 2)
    assert np.all(aligned >= raw - 1e-9)


def test_without_a_lag_nothing_moves(strip_beats):
    b, cfg = strip_beats["A00156"], SignalConfig()
    out = align_windows(b.window, b.template, cfg.fs, cfg.window_before_s, 0.0)
    assert np.array_equal(out, b.window)
    assert gate_evidence(b.window, b.template, cfg.fs, cfg.window_before_s,
                         RhythmConfig()) == (None, None)


def _af_episodes(name: str, align_lag_s: float) -> list[dict]:
    bundle = load_bundle(SHIPPED_BUNDLE)
    settings = bundle_settings(bundle)
    settings["rhythm"] = replace(settings["rhythm"], align_lag_s=align_lag_s)
    events: list[dict] = []
    monitor = Monitor(bundle.manifest.signal, ModelScorer(bundle, "int8"),
                      bundle.threshold("int8").value, events.append, **settings)
    run_blocks(monitor, record_blocks(read_record(STRIPS / name), None, 10.0))
    return [e for e in events if e["type"] == "rhythm_start" and e["rhythm"] == "AF"]


def test_the_af_strip_opens_af_once_its_beats_are_aligned_and_the_normal_one_does_not():
    assert _af_episodes("A00156", 0.0) == []
    assert len(_af_episodes("A00156", 0.03)) == 1
    assert _af_episodes("A00489", 0.03) == []


def test_a_beat_typed_v_stays_out_of_the_window_however_well_it_matches():
    """Aligned, a PVC can match the template above ODD_QRS (DS1 106 and 223 then opened
    false AF); its type still keeps its intervals out."""
    an = RhythmAnalyzer(RhythmConfig())
    rr = np.full(6, 0.8)
    qrs = np.full(6, 0.95)
    cls = np.array(["N", "N", "V", "N", "N", "N"])
    _, skip = an._clean_irregularity(rr, None, cls, qrs)
    assert skip.tolist() == [False, False, True, True, False, False]
    _, skip = RhythmAnalyzer(RhythmConfig())._clean_irregularity(rr, None, None, qrs)
    assert not skip.any()


def test_only_a_beat_on_the_other_wave_moves(strip_beats):
    """A beat whose fiducial has the template's sign stays put, however a lag would match."""
    b, cfg = strip_beats["A00489"], SignalConfig()
    r = int(round(cfg.window_before_s * cfg.fs))
    out = align_windows(b.window, b.template, cfg.fs, cfg.window_before_s, 0.03)
    same = np.sign(b.window[:, r]) == np.sign(b.template[:, r])
    moved = ~np.all(out == b.window, axis=1)
    assert same.any() and (~same).any()
    assert not moved[same].any()
    assert moved[~same].mean() > 0.8


def test_a_block_without_a_flipped_beat_costs_no_copy(record_100):
    """Record 100's QRS is upright: in 30 min two beats have a fiducial of the other sign
    (the first beat, before any template, and one at 1519 s). A block without them comes back
    as given (the gate then reads the atrial evidence's own QRS column); with them, only
    their rows may move."""
    cfg = SignalConfig()
    b = record_beats(record_100, cfg)
    block = (b.time_s > 30.0) & (b.time_s < 1500.0)
    w, t = b.window[block], b.template[block]
    assert align_windows(w, t, cfg.fs, cfg.window_before_s, 0.03) is w
    assert gate_evidence(w, t, cfg.fs, cfg.window_before_s, RhythmConfig(align_lag_s=0.03)) \
        == (None, None)
    out = align_windows(b.window, b.template, cfg.fs, cfg.window_before_s, 0.03)
    assert np.count_nonzero(~np.all(out == b.window, axis=1)) <= 2
