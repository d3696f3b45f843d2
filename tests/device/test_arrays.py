"""The block-sized NumPy helpers give NumPy's own values, to the bit, on the inputs the
pipeline hands them (NaN, infinities, odd strides), so swapping them in changed no event."""

import numpy as np
import pytest

from ecg_edge.device.arrays import finite, first_peaks, mean_last, running_max, sliding
from ecg_edge.device.rhythm import rolling_median


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_finite_is_nan_to_num(dtype):
    x = np.array([[1.5, np.nan, np.inf], [-np.inf, -2.0, 0.0]], dtype)
    got, want = finite(x), np.nan_to_num(x)
    assert got.dtype == want.dtype
    assert np.array_equal(got, want)
    assert not np.shares_memory(got, x)  # a copy, as nan_to_num's default


def test_finite_leaves_integers_alone():
    assert np.array_equal(finite(np.array([3, -1])), [3, -1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_last_is_mean_to_the_bit(dtype):
    rng = np.random.default_rng(1)
    for shape in [(7,), (3, 37), (2, 5, 96)]:
        x = (rng.normal(size=shape) * 1e3 + 1e-3).astype(dtype)
        for keepdims in (False, True):
            got, want = mean_last(x, keepdims), x.mean(axis=-1, keepdims=keepdims)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == np.asarray(want).tobytes()


def test_sliding_is_sliding_window_view():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 50))
    for view in (x, x[:, ::3], x[1]):
        got = sliding(view, 5)
        assert np.array_equal(got, np.lib.stride_tricks.sliding_window_view(view, 5, axis=-1))
        assert not got.flags.writeable
    with pytest.raises(ValueError, match="does not fit"):
        sliding(x[0, :3], 5)


@pytest.mark.parametrize("window", [4, 5, 15, 16])
def test_rolling_median_is_np_median(window):
    """NaN intervals (a gap) make their windows' median NaN, as np.median does."""
    rng = np.random.default_rng(window)
    for _ in range(100):
        x = rng.normal(size=int(rng.integers(0, 40)))
        x[rng.random(len(x)) < 0.1] = np.nan
        want = np.full(len(x), np.nan)
        if len(x) >= window:
            idx = np.arange(len(x) - window + 1)[:, None] + np.arange(window)
            want[window - 1 :] = np.median(x[idx], axis=1)
        assert np.array_equal(rolling_median(x, window), want, equal_nan=True)


def test_running_max_and_first_peaks_are_the_window_views():
    """Ties (small integers) are where argmax's first-maximum rule matters: a plateau's first
    sample is its peak, the rest are not."""
    swv = np.lib.stride_tricks.sliding_window_view
    rng = np.random.default_rng(1)
    for trial in range(2000):
        n = int(rng.integers(1, 80))
        x = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n)
        w = int(rng.integers(1, n + 1))
        assert np.array_equal(running_max(x, w), swv(x, w).max(axis=1))
        h = int(rng.integers(0, (n - 1) // 2 + 1))
        assert np.array_equal(first_peaks(x, h), np.argmax(swv(x, 2 * h + 1), axis=1) == h)
    assert first_peaks(np.array([0.0, 2.0, 2.0, 0.0, 0.0]), 1).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="does not fit"):
        running_max(np.zeros(3), 4)
