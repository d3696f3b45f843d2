"""device/dsp.py: streaming equals whole-array, and the numpy designs and filters equal scipy's.

scipy is the reference here only (tests and training have it; the device does not import it).
"""

import numpy as np
import pytest

from ecg_edge.device.config import DetectorConfig, SignalConfig
from ecg_edge.device.dsp import (
    FirFilter,
    MovingMean,
    PolyphaseResampler,
    SosFilter,
    Tail,
    bandpass_sos,
    kaiser_lowpass,
    notch_sos,
    rational_ratio,
    sos_group_delay_s,
)
from ecg_edge.device.evaluation import average_ranks
from ecg_edge.device.signal_path import input_filter_sos

RATES = [100.0, 120.0, 128.0, 250.0, 360.0, 500.0, 1000.0]
#: (band, order) as the signal path and the R-peak detector design them.
BANDS = [(SignalConfig().bandpass_hz, SignalConfig().bandpass_order),
         (DetectorConfig().qrs_band_hz, 1)]


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
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-12 * np.abs(x).max())
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


def _scipy_signal():
    return pytest.importorskip("scipy.signal")


def _tf(sos):
    """The cascade's overall (b, a), as scipy.signal.sos2tf."""
    b, a = np.ones(1), np.ones(1)
    for row in sos:
        b, a = np.convolve(b, row[:3]), np.convolve(a, row[3:])
    return b, a


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("band,order", BANDS + [((0.5, 40.0), 3), ((0.5, 40.0), 4)])
def test_butterworth_design_equals_scipy(fs, band, order):
    signal = _scipy_signal()
    ours = bandpass_sos(*band, order, fs)
    ref = signal.butter(order, [band[0], min(band[1], 0.45 * fs)], btype="bandpass", fs=fs,
                        output="sos")
    assert ours.shape == ref.shape == (order, 6)
    for mine, theirs in zip(_tf(ours), _tf(ref)):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9 * np.abs(theirs).max())
    _, h_ours = signal.sosfreqz(ours, 1024, fs=fs)
    _, h_ref = signal.sosfreqz(ref, 1024, fs=fs)
    np.testing.assert_allclose(h_ours, h_ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("band,order", BANDS)
def test_group_delay_equals_scipy(fs, band, order):
    signal = _scipy_signal()
    sos = bandpass_sos(*band, order, fs)
    _, gd = signal.group_delay(signal.sos2tf(sos), w=[12.0], fs=fs)
    assert sos_group_delay_s(sos, 12.0, fs) == pytest.approx(gd[0] / fs, rel=1e-9)


@pytest.mark.parametrize("fs", RATES)
def test_mains_notches_equal_scipy_where_the_rate_carries_them(fs):
    signal = _scipy_signal()
    cfg = SignalConfig()
    ours = notch_sos(cfg.notch_hz, cfg.notch_width_hz, fs)
    fits = [f for f in cfg.notch_hz if f + cfg.notch_width_hz / 2 < fs / 2]
    assert len(ours) == len(fits)  # 120 Hz and slower cannot carry 60 Hz; 100 Hz neither 50
    for row, f in zip(ours, fits):
        b, a = signal.iirnotch(f, f / cfg.notch_width_hz, fs)
        np.testing.assert_allclose(row, np.r_[b, a], rtol=0, atol=1e-12)


@pytest.mark.parametrize("fs", [128.0, 250.0, 360.0, 500.0])
def test_the_input_filter_takes_out_mains_hum_and_keeps_the_qrs_band(fs):
    """A hum of 1 mV at 50 or 60 Hz, or 0.1 Hz off, comes out at under 1 / 10 of what the
    band-pass alone lets through; the QRS band (5-30 Hz) within 2 % of it."""
    signal = _scipy_signal()
    cfg = SignalConfig()
    sos, band = input_filter_sos(cfg, fs), bandpass_sos(*cfg.bandpass_hz, cfg.bandpass_order, fs)
    t = np.arange(int(20 * fs)) / fs
    for hz in (50.0, 60.0, 50.1, 59.9):
        hum = np.sin(2 * np.pi * hz * t)
        settled = slice(int(5 * fs), None)
        assert np.abs(SosFilter(sos)(hum)[settled]).max() < 0.1 * np.abs(
            SosFilter(band)(hum)[settled]).max()
    f = [5.0, 10.0, 15.0, 20.0, 30.0]
    ratio = np.abs(signal.sosfreqz(sos, f, fs=fs)[1]) / np.abs(signal.sosfreqz(band, f, fs=fs)[1])
    assert np.all(np.abs(ratio - 1) < 0.02), ratio


def test_a_bundle_without_the_notch_setting_gets_no_notch():
    """A bundle written before the notch existed learnt without one: it keeps running so."""
    old = SignalConfig().to_dict()
    del old["notch_hz"], old["notch_width_hz"]
    cfg = SignalConfig.from_dict(old)
    assert cfg.notch_hz == ()
    np.testing.assert_array_equal(input_filter_sos(cfg, 360.0), bandpass_sos(0.5, 40.0, 2, 360.0))
    assert SignalConfig.from_dict(SignalConfig().to_dict()).notch_hz == (50.0, 60.0)


def test_group_delay_of_high_orders_matches_the_phase_slope():
    """Summed per section it stays accurate where scipy's single polynomial loses digits."""
    signal = _scipy_signal()
    fs, f, df = 1000.0, 12.0, 1e-4
    sos = bandpass_sos(0.5, 40.0, 4, fs)
    _, h = signal.sosfreqz(sos, [f - df, f + df], fs=fs)
    slope = -np.diff(np.unwrap(np.angle(h)))[0] / (2 * np.pi * 2 * df)
    assert sos_group_delay_s(sos, f, fs) == pytest.approx(slope, rel=1e-6)


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("band,order", BANDS)
def test_filtered_record_equals_scipy_sosfilt(record_100, fs, band, order):
    """Our design through our filter, and scipy's design through our filter, vs scipy's sosfilt."""
    signal = _scipy_signal()
    x = record_100.lead_mv()[: 360 * 120]
    ref_sos = signal.butter(order, [band[0], min(band[1], 0.45 * fs)], btype="bandpass", fs=fs,
                            output="sos")
    ref = signal.sosfilt(ref_sos, x)
    scale = np.abs(x).max()
    for sos in (bandpass_sos(*band, order, fs), ref_sos):
        np.testing.assert_allclose(SosFilter(sos)(x), ref, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("order", [2, 3, 4])  # 3: one section has a real pole pair
def test_iir_is_stable_with_poles_near_the_unit_circle(order):
    """A 0.5 Hz edge at 1000 Hz puts poles within 0.003 of z = 1: ten minutes of a drifting
    signal with a large offset, whole and in random blocks, still match sosfilt."""
    signal = _scipy_signal()
    fs = 1000.0
    rng = np.random.default_rng(3)
    n = int(600 * fs)
    x = 50.0 + np.cumsum(rng.standard_normal(n)) * 0.01 + rng.standard_normal(n)
    sos = bandpass_sos(0.5, 40.0, order, fs)
    scale = np.abs(x).max()
    whole = SosFilter(sos)(x)
    np.testing.assert_allclose(whole, signal.sosfilt(sos, x), rtol=0, atol=1e-9 * scale)
    f = SosFilter(sos)
    parts = np.concatenate([f(c) for c in _chunks(x, rng, 2000)])
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-12 * scale)
    impulse = SosFilter(sos)(np.r_[1.0, np.zeros(int(60 * fs))])
    assert np.abs(impulse[-int(fs):]).max() < 1e-12  # it decays, no growing mode


def test_iir_realises_any_sections_like_sosfilt():
    """Real, complex, repeated, first-order and pure-gain sections, not only our band-passes."""
    signal = _scipy_signal()
    x = np.random.default_rng(4).standard_normal(5000)
    designs = [signal.butter(5, 0.1, output="sos"),
               signal.cheby1(3, 1.0, 0.3, "high", output="sos"),
               signal.ellip(4, 0.5, 40, [0.1, 0.2], "bandpass", output="sos"),
               np.array([[1.0, -1.8, 0.81, 1.0, -1.8, 0.81], [0.5, 0.0, 0.0, 1.0, 0.0, 0.0],
                         [1.0, 0.3, 0.0, 1.0, -0.9, 0.0], [2.0, 1.0, 0.5, 2.0, -1.9, 0.9025]])]
    for sos in designs:
        f = SosFilter(sos)  # a0 = 2 in the last design: normalised like lfilter, not refused
        np.testing.assert_allclose(np.concatenate([f(x[:777]), f(x[777:])]),
                                   signal.sosfilt(sos / sos[:, 3:4], x), rtol=0, atol=1e-11)


@pytest.mark.parametrize("block", [1, 2, 7, 64, 65, 129, 1000])
def test_iir_any_block_size_matches_whole(record_119, block):
    x = record_119.lead_mv()[: 360 * 30]
    sos = bandpass_sos(0.5, 40.0, 2, 360.0)
    whole = SosFilter(sos)(x)
    f = SosFilter(sos)
    parts = np.concatenate([f(x[i : i + block]) for i in range(0, len(x), block)])
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-12 * np.abs(x).max())
    f.reset()
    np.testing.assert_array_equal(f(x), whole)  # reset forgets the stream
    assert len(f(np.zeros(0))) == 0


@pytest.mark.parametrize("block", [1, 7, 64, 360, 1000])
def test_iir_bank_is_its_cascades_side_by_side(record_119, block):
    """Several cascades over one input in one call (the detectors' two band-passes): each
    output is that cascade's own filter to rounding, in any blocks, and reset forgets all."""
    x = record_119.lead_mv()[: 360 * 30]
    designs = [bandpass_sos(5.0, 18.0, 1, 360.0), bandpass_sos(8.0, 20.0, 2, 360.0),
               bandpass_sos(0.5, 40.0, 2, 360.0)]
    bank = SosFilter(designs, parallel=True)
    parts = np.concatenate([bank(x[i : i + block]) for i in range(0, len(x), block)], axis=1)
    assert parts.shape == (3, len(x))
    scale = np.abs(x).max()
    for sos, y in zip(designs, parts):
        np.testing.assert_allclose(y, SosFilter(sos)(x), rtol=0, atol=1e-12 * scale)
    bank.reset()
    np.testing.assert_allclose(bank(x), parts, rtol=0, atol=1e-12 * scale)
    assert bank(np.zeros(0)).shape == (3, 0)
    assert SosFilter(designs[0].tolist())(x[:100]).shape == (100,)  # a list is one cascade


@pytest.mark.parametrize("taps", [1, 3, 14, 30])
def test_fir_chunked_is_bit_exact_and_equals_lfilter(record_106, taps):
    x = record_106.lead_mv()[: 360 * 60]
    b = np.random.default_rng(taps).standard_normal(taps)
    whole = FirFilter(b)(x)
    f = FirFilter(b)
    parts = np.concatenate([f(c) for c in _chunks(x, np.random.default_rng(5), 500)])
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_allclose(whole, np.convolve(x, b)[: len(x)], rtol=0, atol=1e-12)
    signal = _scipy_signal()
    np.testing.assert_allclose(whole, signal.lfilter(b, [1.0], x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 14, 1200])
def test_moving_mean_chunked_is_bit_exact_and_equals_the_fir(record_106, n):
    """The QRS-energy detector's 10 s mean (1200 taps at 120 Hz) on a real lead's energy: any
    cut into blocks gives the same bits, including blocks longer than n and blocks that end on
    a segment boundary, and the values are the n-tap FIR's (1/n each) to rounding."""
    x = record_106.lead_mv()[: 360 * 60] ** 2
    whole = MovingMean(n)(x)
    rng = np.random.default_rng(n)
    for cut in (_chunks(x, rng, 500), _chunks(x, rng, 7), np.split(x, range(n, len(x), n))):
        f = MovingMean(n)
        np.testing.assert_array_equal(np.concatenate([f(c) for c in cut]), whole)
    fir = FirFilter(np.ones(n) / n)(x)
    np.testing.assert_allclose(whole, fir, rtol=0, atol=1e-13 * x.max())


def test_moving_mean_reset_forgets_and_rejects_an_empty_window():
    f = MovingMean(5)
    x = np.arange(12, dtype=float)
    first = f(x)
    f.reset()
    np.testing.assert_array_equal(f(x), first)
    np.testing.assert_array_equal(first[:5], np.cumsum(x[:5]) / 5)  # zeros before the stream
    assert len(f(np.zeros(0))) == 0
    with pytest.raises(ValueError, match="n >= 1"):
        MovingMean(0)


@pytest.mark.parametrize("fs_in", [fs for fs in RATES if fs != 120.0])  # 120 Hz: no resampling
def test_kaiser_lowpass_equals_scipy_firwin(fs_in):
    signal = _scipy_signal()
    up, down = rational_ratio(120.0, fs_in)
    rate = max(up, down)
    for n_taps in (20 * up + 1, 2 * 10 * rate + 1, 31):
        np.testing.assert_allclose(kaiser_lowpass(n_taps, 1.0 / rate),
                                   signal.firwin(n_taps, 1.0 / rate, window=("kaiser", 5.0)),
                                   rtol=0, atol=1e-12)


def test_average_ranks_equal_scipy_rankdata():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 500):
        for values in (3, 50, 10**6):
            x = rng.integers(0, values, n).astype(float)
            np.testing.assert_array_equal(average_ranks(x), stats.rankdata(x))
