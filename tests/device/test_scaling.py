import numpy as np
import pytest

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.scaling import Scaling
from ecg_edge.device.signal_path import process_signal


def test_scalings_on_real_beats(record_106):
    beats = process_signal(record_106.lead_mv()[: 360 * 120], 360.0, SignalConfig())
    robust = Scaling("robust").apply(beats.window)
    q75, q25 = np.percentile(robust, [75, 25], axis=1)
    np.testing.assert_allclose(q75 - q25, 1.0, atol=1e-4)
    wearer = Scaling("wearer").apply(beats.window, beats.amplitude)
    # In the wearer's units a usual beat's QRS spans about one amplitude unit.
    c = beats.window.shape[1] // 2
    assert 0.6 < np.median(np.ptp(wearer[:, c - 20 : c + 20], axis=1)) < 1.6
    stored = Scaling("stored", mean=0.1, std=0.5).apply(beats.window)
    np.testing.assert_allclose(stored, (beats.window - 0.1) / 0.5, rtol=1e-5)


def test_scaling_refuses_bad_settings():
    with pytest.raises(ValueError, match="unknown scaling"):
        Scaling("minmax")
    with pytest.raises(ValueError, match="positive std"):
        Scaling("stored", std=0.0)
    with pytest.raises(ValueError, match="amplitude"):
        Scaling("wearer").apply(np.zeros((2, 96)))
