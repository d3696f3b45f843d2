"""NumPy helpers for the few-beat arrays of one block.

The device hands the pipeline a block every second or few (a handful of beats), so the fixed
cost of a NumPy call, not its arithmetic, is most of the per-block cost
(``benchmarks/results/session48.md``: 3 s blocks cost 2.6 times the CPU of 48 s blocks).
``np.nan_to_num`` and ``sliding_window_view`` spend several microseconds in Python wrappers
per call, and an argmax over a window view of a block's samples does (2h + 1) times the work
of a running maximum; these give the same values for a fraction of the cost.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

#: Each float dtype's largest finite value (np.finfo costs a microsecond a call).
_BIG = {np.dtype(t): float(np.finfo(t).max) for t in (np.float16, np.float32, np.float64)}


def finite(x: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(x)`` of a float array: a copy with NaN as 0 and ±inf as the dtype's
    largest finite values."""
    x = np.asarray(x)
    big = _BIG.get(x.dtype)
    if big is None:  # ints, bools, long doubles: the wrapper's own rules
        return np.nan_to_num(x)
    out = np.where(x == x, x, 0.0)
    np.minimum(out, big, out=out)
    return np.maximum(out, -big, out=out)


def sliding(x: np.ndarray, width: int) -> np.ndarray:
    """``sliding_window_view(x, width, axis=-1)``: read-only windows of ``width`` along the
    last axis, one per start (shape ``(..., n - width + 1, width)``)."""
    n = x.shape[-1]
    if not 0 <= width <= n:
        raise ValueError(f"window {width} does not fit in {n} samples")
    shape, strides = (*x.shape[:-1], n - width + 1, width), (*x.strides, x.strides[-1])
    if not x.flags.c_contiguous:
        return as_strided(x, shape, strides, writeable=False)
    view = np.ndarray(shape, x.dtype, x, 0, strides)  # as_strided costs 3x this
    view.flags.writeable = False
    return view


def mean_last(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """``x.mean(axis=-1)``, as ``.mean()`` computes it (the add-reduced sum divided by the
    count, so the same bits) without its wrapper."""
    return np.add.reduce(x, axis=-1, keepdims=keepdims) / x.shape[-1]


def running_max(x: np.ndarray, width: int) -> np.ndarray:
    """``max(x[j : j + width])`` for each start ``j`` (length ``len(x) - width + 1``), by
    doubling: log2(width) + 1 elementwise maxima instead of a (n, width) window view."""
    if not 1 <= width <= len(x):
        raise ValueError(f"window {width} does not fit in {len(x)} samples")
    m, span = np.asarray(x), 1
    while 2 * span <= width:
        m = np.maximum(m[:-span], m[span:])  # m[j] = max(x[j : j + 2 * span])
        span *= 2
    return np.maximum(m[: len(x) - width + 1], m[width - span : len(m)])


def first_peaks(x: np.ndarray, h: int) -> np.ndarray:
    """For each centre ``i`` in ``h .. len(x) - h - 1``: is ``x[i]`` the first maximum of
    ``x[i - h : i + h + 1]`` (what ``argmax`` of that window == h says: above every value
    before it, at least every value after it)? One entry per centre."""
    c = x[h : len(x) - h]
    if h == 0:
        return np.ones(len(c), bool)
    return (c > running_max(x[: len(x) - h - 1], h)) & (c >= running_max(x[h + 1 :], h))
