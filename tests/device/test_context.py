"""The wearer's rhythm context: a rise in rate is learnt, ectopy is not."""

import numpy as np
import pytest

from ecg_edge.device.config import ContextConfig, SignalConfig
from ecg_edge.device.context import WearerContext
from ecg_edge.device.signal_path import process_signal

CFG = SignalConfig()


@pytest.fixture(scope="module")
def windows(record_100):
    """Real beat windows (record 100's first minutes), replayed under chosen rhythms."""
    return process_signal(record_100.lead_mv()[: 360 * 120], 360.0, CFG).window


def rr_local_over(windows, rr_s: list[float], cfg: ContextConfig = CFG.context) -> np.ndarray:
    ctx = WearerContext(cfg, CFG.samples())
    fs, peak, out = CFG.fs, 0, []
    for i, rr in enumerate(rr_s):
        peak += int(round(rr * fs))
        out.append(ctx.observe(peak, windows[i % len(windows)], rr * fs).rr_local / fs)
    return np.array(out)


def test_a_steady_faster_rate_becomes_the_local_rr(windows):
    # 40 beats at 60 /min, then the heart speeds up to 86 /min and stays there.
    rr = rr_local_over(windows, [1.0] * 40 + [0.7] * 40)
    assert rr[39] == pytest.approx(1.0)
    k = CFG.context.rate_change_beats
    assert rr[40 + k - 1] == pytest.approx(1.0)  # a short run may still be ectopy
    assert rr[40 + k + 1] == pytest.approx(0.7)  # a steady run is the new rate


def test_bigeminy_and_short_runs_stay_premature(windows):
    bigeminy = [1.0] * 40 + [0.6, 1.4] * 30
    assert rr_local_over(windows, bigeminy)[-1] == pytest.approx(1.0)
    runs = [1.0] * 40 + ([0.6] * 5 + [1.4] + [1.0] * 10) * 4  # salvos of five early beats
    assert rr_local_over(windows, runs)[-1] == pytest.approx(1.0)


def test_an_irregular_early_run_is_not_taken_for_a_new_rate(windows):
    # Early beats whose intervals scatter by 23 % around their median: not a steady rate.
    irregular = [1.0] * 40 + [0.5, 0.8] * 10
    assert rr_local_over(windows, irregular)[-1] == pytest.approx(1.0)
    off = ContextConfig(rate_change_beats=10_000)  # without the rule the old rate sticks
    assert rr_local_over(windows, [1.0] * 40 + [0.7] * 40, off)[-1] == pytest.approx(1.0)
