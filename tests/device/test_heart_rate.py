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
