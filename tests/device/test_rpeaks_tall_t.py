"""A tall T wave is not a beat, not even through search-back.

Both strips are normal sinus rhythm (cinc2017 label N, handheld lead I) whose T waves stand
taller than their narrow QRS. The detector rejected each T wave as slow and soon after its
beat, but search-back then revived it once the threshold had waited 1.66 intervals: the mean
interval halved, search-back came due every cycle, and every T wave became a beat (A00665: 48
beats in 30 s at 62 bpm; A02608: 110 in 60 s at 57 bpm, 27 of them typed V).
"""

import numpy as np
import pytest

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.records import record_beats
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import DATA

STRIPS = DATA / "cinc2017_tall_t"


@pytest.mark.parametrize("name", ["A00665", "A02608"])
def test_tall_t_waves_are_not_beats(name):
    rec = read_record(STRIPS / name)
    t = record_beats(rec, SignalConfig()).time_s
    t = t[t > 3.0]  # after the detector's 2 s learning period and its first beat
    rr = np.diff(t)
    # one beat per cardiac cycle: a T wave 0.25-0.4 s after its QRS would leave such intervals
    assert np.sum(rr < 0.5) == 0, list(zip(t.round(2).tolist(), rr.round(2).tolist()))
    rate = 60.0 / np.median(rr)
    assert 50 <= rate <= 75, rate
    assert len(t) >= 0.9 * (rec.duration_s - 3.0) * rate / 60 - 1, len(t)
