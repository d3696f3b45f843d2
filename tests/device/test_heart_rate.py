"""The summary's heart-rate statistics (device.heart_rate) on real beat sequences."""

import numpy as np
import pytest

from ecg_edge.device.rhythm import analyze_beats
from tests.device.test_rhythm import annotated_beats


def test_heart_rate_statistics_are_those_of_the_reference_intervals():
    """Mean rate, the slowest and fastest 8-beat median rate and SDNN of 119's annotated beats,
    against their definitions computed over the whole sequence, in any blocks."""
    t, s, rr, cls = annotated_beats("119")
    hr = analyze_beats(t, s, rr, classes=cls, block=29)[1]["heart_rate"]
    assert hr == analyze_beats(t, s, rr, classes=cls, block=len(t))[1]["heart_rate"]
    r = rr[1:]
    assert hr["intervals"] == len(r) and hr["mean_bpm"] == pytest.approx(60 * len(r) / r.sum(),
                                                                          abs=0.05)
    nn = r[(cls[1:] == "N") & (cls[:-1] == "N")]
    assert hr["nn_intervals"] == len(nn) > 1000
    assert hr["sdnn_ms"] == pytest.approx(1000 * np.std(nn, ddof=1), abs=0.05)
    med = 60 / np.median(np.lib.stride_tricks.sliding_window_view(r, 8), axis=1)
    assert hr["slowest_bpm"] == pytest.approx(med.min(), abs=0.05)
    assert hr["fastest_bpm"] == pytest.approx(med.max(), abs=0.05)
    assert hr["fastest_t"] == pytest.approx(t[1 + 7 + int(med.argmax())], abs=1e-3)
    # RR-only input without beat types: every interval is NN
    assert analyze_beats(t, s, rr)[1]["heart_rate"]["nn_intervals"] == len(r)


def test_af_starts_carry_the_ventricular_rate():
    """201's AF onsets say the ventricular rate then (the median of the 8 intervals before the
    beat that decided it), so a rapid response reads from the event."""
    t, s, rr, cls = annotated_beats("201")
    events, _ = analyze_beats(t, s, rr, classes=cls)
    starts = [e for e in events if e["type"] == "rhythm_start" and e["rhythm"] == "AF"]
    assert len(starts) >= 2
    for e in starts:
        i = int(np.argmin(np.abs(t - e["detected_t"])))
        assert e["hr_bpm"] == pytest.approx(60 / np.median(rr[i - 8:i]), abs=0.05)
        assert 60 < e["hr_bpm"] < 200
