"""A fast ventricular salvo right after a normal beat keeps all its beats.

In DS1 203 a salvo reaches 240 bpm: two QRS complexes 0.23-0.25 s apart, inside the detector's
refractory period, where a larger candidate used to replace the last beat (taken for its P wave
or Q/S slope) and one V beat of the run was lost, and with it the VT episode. A larger, steeper
candidate at least ``steeper_beat_s`` after a beat that was itself steeper than the one before
it is now a beat of its own.
"""

from dataclasses import replace

import numpy as np

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.records import record_beats
from ecg_edge.device.rhythm_eval import read_reference
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import MITDB


def test_salvo_beats_inside_the_refractory_period_are_found():
    rec, ref = read_record(MITDB / "203"), read_reference(MITDB / "203")
    on = SignalConfig()
    off = replace(on, detector=replace(on.detector, steeper_beat_s=on.detector.refractory_s))
    t_on = record_beats(rec, on).time_s
    t_off = record_beats(rec, off).time_s

    def found(times, at):
        return np.min(np.abs(times - at)) <= 0.15

    salvo = [741.49, 1696.29]  # annotated V beats 0.25 and 0.27 s before the next V beat
    assert all(found(t_on, s) for s in salvo)
    assert not any(found(t_off, s) for s in salvo)
    added = [t for t in t_on if not found(t_off, t)]
    assert added and all(found(ref.time_s, t) for t in added), added
