"""An artifact at the start of a stream must not hide the beats after it.

Both strips are normal sinus rhythm (cinc2017 label N) recorded on a handheld device and open
with a contact artifact tens of times a QRS. A detector that takes its first signal level from
the largest peak of its learning period waits under a threshold the QRS never reaches: on
A01259 it found 3 beats in 30 s and the rhythm analysis called pauses of up to 10 s.
"""

from dataclasses import replace

import numpy as np
import pytest

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.records import record_beats
from ecg_edge.device.rhythm_eval import read_reference
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import DATA, MITDB

STRIPS = DATA / "cinc2017_artifacts"


@pytest.mark.parametrize("name", ["A00316", "A01259"])
def test_beats_after_a_start_artifact_are_found(name):
    rec = read_record(STRIPS / name)
    beats = record_beats(rec, SignalConfig())
    t = beats.time_s
    after = t > 3.0
    # Sinus rhythm at 50-100 bpm from 3 s to the end ...
    assert after.sum() >= 0.8 * (rec.duration_s - 3.0) * 50 / 60, t.round(2).tolist()
    # ... and no RR interval the rhythm analysis would call a pause (A01259 has a motion
    # artifact at 8-11 s: peaks there that only one detector saw leave no RR across them).
    rr = beats.rr_prev[after]
    assert np.nanmax(rr) < 2.0, list(zip(t.round(2).tolist(), beats.rr_prev.round(2).tolist()))


def test_one_huge_peak_moves_the_signal_level_by_a_bounded_step(record_100):
    """Mid-stream: a spike of 50 x the QRS amplitude on a real record loses at most the next
    two beats, not seconds of them."""
    mv = record_100.lead_mv()[: 360 * 60].copy()
    native = record_beats(type(record_100)("x", (mv * 200).astype(np.int32)[:, None], 360.0,
                                           np.array([5.0]), ["MLII"]), SignalConfig()).time_s
    spike_at = 30 * 360
    mv[spike_at: spike_at + 15] += 50 * np.hanning(15) * np.ptp(mv[:3600]) / 2
    rec = type(record_100)("x", (mv * 200).astype(np.int32)[:, None], 360.0, np.array([5.0]),
                           ["MLII"])
    t = record_beats(rec, SignalConfig()).time_s
    lost = [x for x in native[(native > 30.3) & (native < 60)] if np.min(np.abs(t - x)) > 0.05]
    assert len(lost) <= 2, lost


NO_RECOVERY = SignalConfig(detector=replace(SignalConfig().detector, missed_beat_rr_s=1e9))


@pytest.mark.parametrize("name", ["A02793", "A03806"])
def test_beats_missed_after_an_artifact_are_recovered(name):
    """After a start artifact the first detector still misses beats for seconds on these two
    normal strips (the monitor called 4 and 3 pauses); the second detector sees their QRS
    blocks in good signal, and they are taken: no interval a pause."""
    rec = read_record(STRIPS / name)
    before = np.diff(record_beats(rec, NO_RECOVERY).time_s)
    assert np.count_nonzero(before > 2.5) >= 2
    beats = record_beats(rec, SignalConfig())
    assert np.diff(beats.time_s).max() < 2.0, beats.time_s.round(2).tolist()
    assert np.nanmax(beats.rr_prev) < 2.0


def test_recovered_beats_are_real_and_real_pauses_stay(record_201):
    """On 201 every beat the second detector recovers is an annotated beat the first one
    missed (aberrated APCs; the first detector's threshold from its running level alone, as
    before ``usual_level_beats``, which finds most of them itself), and its two annotated
    pauses (3.7 s, at 378 s and 1787 s) hold no QRS for either detector: they stay RR
    intervals the rhythm analysis calls pauses."""
    running = replace(SignalConfig().detector, usual_level_beats=0)
    plain = record_beats(record_201, replace(NO_RECOVERY, detector=replace(
        running, missed_beat_rr_s=1e9))).time_s
    recovered = record_beats(record_201, SignalConfig(detector=running)).time_s
    extra = np.setdiff1d(np.round(recovered, 3), np.round(plain, 3))
    annotated = read_reference(MITDB / "201").time_s  # beat annotations only
    assert len(extra) >= 3
    assert all(np.min(np.abs(annotated - t)) < 0.15 for t in extra), extra.tolist()
    beats = record_beats(record_201, SignalConfig())
    long = beats.time_s[beats.rr_prev > 3.5]
    assert any(abs(t - 381.7) < 0.3 for t in long) and any(abs(t - 1790.5) < 0.3 for t in long), \
        long.round(2).tolist()


@pytest.mark.parametrize(("name", "off"), [
    ("A02569", replace(SignalConfig().detector, missed_beat_amplitude=1e9, missed_beat_shrunk=0.0)),
    ("A01818", replace(SignalConfig().detector, missed_beat_shrunk=0.0)),
])
def test_no_pause_where_the_second_detector_is_blinded_too(name, off):
    """After a 6 mV artifact the QRS is 0.2 mV and the second detector's offset (a share of the
    last 10 s of energy) hides it as well; the monitor called a pause on both strips. A02569:
    peaks shaped like the beat that ends the interval become beats. A01818: its QRS stay
    buried in the artifact's tail, and the beat ending the interval is a fifth of the wearer's
    QRS: the signal had shrunk, so the interval is no RR."""
    rec = read_record(STRIPS / name)
    before = record_beats(rec, replace(SignalConfig(), detector=off)).rr_prev
    assert np.nanmax(before) > 2.5
    assert np.nanmax(record_beats(rec, SignalConfig()).rr_prev) < 2.5


def test_peaks_like_finds_beats_of_the_closing_shape_only(record_100):
    """Inside 6 s of record 100 the peaks like one of its beats are its annotated beats; with
    the correlation bar above 1 none are."""
    from ecg_edge.device.signal_path import SignalPath, peaks_like

    cfg = SignalConfig()
    path, ys = SignalPath(cfg, record_100.fs), []
    path.on_output = lambda y, i: ys.append(y.copy())
    path.push(record_100.lead_mv()[: int(20 * record_100.fs)])
    path.flush()
    y, n = np.concatenate(ys), cfg.samples()
    beats = record_beats(record_100, cfg)
    peaks = beats.peak[(beats.time_s > 5) & (beats.time_s < 12)]
    h, ref_at = n.missed_beat_half_qrs, int(peaks[-1])
    ref = y[ref_at - h: ref_at + h + 1]
    lo, hi = int(peaks[0]) - n.refractory, ref_at - n.refractory
    found = peaks_like(y[lo - h: hi + h], ref, h, n.refractory, 0.4, 0.8, lo)
    assert len(found) == len(peaks) - 1
    assert np.abs(np.array(found) - peaks[:-1]).max() <= 2, (found, peaks.tolist())
    assert peaks_like(y[lo - h: hi + h], ref, h, n.refractory, 0.4, 1.01, lo) == []
