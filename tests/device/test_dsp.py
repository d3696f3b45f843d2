import numpy as np
import pytest

from device.dsp import PolyphaseResampler, SosFilter, Tail, bandpass_sos, rational_ratio


def _chunks(x, rng, n):
    cuts = np.sort(rng.integers(0, len(x), n))
    return np.split(x, cuts)


@pytest.mark.parametrize("fs_in", [128.0, 250.0, 360.0, 500.0, 1000.0])
def test_resampler_streams_like_whole_and_keeps_a_sine(fs_in):
    up, down = rational_ratio(120.0, fs_in)
    assert up / down == pytest.approx(120.0 / fs_in)
    t = np.arange(int(20 * fs_in)) / fs_in
    x = np.sin(2 * np.pi * 7.0 * t)
    whole = PolyphaseResampler(up, down)(x)
    stream = PolyphaseResampler(up, down)
    parts = np.concatenate([stream(c) for c in _chunks(x, np.random.default_rng(1), 200)])
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-12)
    assert len(whole) == int(np.ceil(len(x) * up / down))
    r = PolyphaseResampler(up, down)
    tt = np.arange(len(whole)) / 120.0 - r.delay_in / fs_in
    err = np.abs(whole - np.sin(2 * np.pi * 7.0 * tt))[240:-5]
    assert err.max() < 5e-3


def test_resampler_is_causal():
    """Changing the future does not change outputs already produced."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3000)
    y = rng.standard_normal(3000)
    a, b = PolyphaseResampler(1, 3), PolyphaseResampler(1, 3)
    out_a, out_b = a(x), b(x)
    np.testing.assert_array_equal(out_a, out_b)
    a(y)
    b(-y)  # different future
    np.testing.assert_array_equal(out_a, out_b)


def test_bandpass_chunked_equals_whole_and_removes_baseline(record_100):
    x = record_100.lead_mv()[: 360 * 60]
    sos = bandpass_sos(0.5, 40.0, 2, 360.0)
    whole = SosFilter(sos)(x)
    f = SosFilter(sos)
    parts = np.concatenate([f(c) for c in _chunks(x, np.random.default_rng(2), 300)])
    np.testing.assert_allclose(parts, whole, atol=1e-12)
    # A 0.05 Hz baseline wander of 1 mV is gone after the band-pass.
    t = np.arange(len(x)) / 360.0
    wandered = SosFilter(sos)(x + np.sin(2 * np.pi * 0.05 * t))
    assert np.abs(wandered - whole)[360 * 20:].max() < 0.05


def test_bandpass_refuses_band_above_nyquist():
    with pytest.raises(ValueError, match="does not fit"):
        bandpass_sos(70.0, 80.0, 2, 120.0)


def test_tail_addresses_by_global_index():
    t = Tail()
    t.append(np.arange(10.0))
    t.trim(4)
    t.append(np.arange(10.0, 15.0))
    np.testing.assert_array_equal(t.get(8, 12), [8, 9, 10, 11])
    with pytest.raises(IndexError):
        t.get(2, 5)
