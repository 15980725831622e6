"""Window arithmetic whose value at bar t depends only on the bars of its window.

Every primitive works in numpy's "valid" mode along the last axis: an input of ``T`` bars gives
``T - n + 1`` outputs, the last one for the newest bar. Output ``i`` is computed by the *same
sequence* of IEEE-754 additions and multiplications whatever came before the window, so a value
computed from the whole history and the same value computed from only the last ``n`` bars are
bit-for-bit equal. That is what makes batch and incremental features identical.

Running sums (``cumsum``, pandas ``rolling``) and recursive EMAs do not have this property: their
rounding depends on where the series started. Here a window sum of ``n`` bars is built by
doubling (sums over 1, 2, 4, ... bars, each defined relative to its own newest bar), so it costs
``O(log n)`` vector operations, not ``O(n)``. An EMA is a finite-impulse-response EMA: the same
exponential weights, truncated after ``n`` bars (4 spans by default, leaving ``e**-8`` ≈ 0.03 %
of the weight out) and renormalised.

Only correctly-rounded operations are used (``+ - * /``, ``sqrt``, ``max``, ``abs``): no
``log``/``exp``/``sin`` on data, whose SIMD implementations may round differently for different
array lengths.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def tail(x: FloatArray, length: int) -> FloatArray:
    """The newest ``length`` values along the last axis (aligns a series with a valid output)."""
    return x[..., x.shape[-1] - length :]


def _powers_of_two(n: int) -> list[int]:
    """The binary decomposition of ``n``, largest block first (20 → [16, 4])."""
    return [1 << b for b in range(n.bit_length() - 1, -1, -1) if n >> b & 1]


def window_sum(x: FloatArray, n: int, decay: float = 1.0) -> FloatArray:
    """``sum(decay**k * x[t - k] for k in range(n))`` for every bar ``t`` with a full window.

    ``decay == 1`` gives a plain rolling sum. The result has ``T - n + 1`` values along the last
    axis (zero when ``T < n``).
    """
    if n < 1:
        raise ValueError(f"window must be at least 1 bar, got {n}")
    length = x.shape[-1] - n + 1
    if length <= 0:
        return np.empty((*x.shape[:-1], 0))
    blocks = _powers_of_two(n)
    levels = {1: x}
    p = 1
    while p * 2 <= blocks[0]:
        prev = levels[p]
        older = prev[..., :-p] if decay == 1.0 else prev[..., :-p] * (decay**p)
        levels[p * 2] = prev[..., p:] + older
        p *= 2
    result: FloatArray | None = None
    offset = 0
    for p in blocks:
        start = n - offset - p
        term = levels[p][..., start : start + length]
        if offset and decay != 1.0:
            term = term * (decay**offset)
        result = term if result is None else result + term
        offset += p
    if result is None:  # unreachable: n >= 1 has at least one block
        raise ValueError(f"window {n} has no blocks")
    return result


def window_mean(x: FloatArray, n: int) -> FloatArray:
    """Simple moving average over ``n`` bars (valid mode)."""
    return window_sum(x, n) / n


def window_std(x: FloatArray, n: int) -> FloatArray:
    """Population standard deviation over ``n`` bars (valid mode), never negative.

    Computed as E[x²] - E[x]², so a spread below 1e-6 of the mean is rounding noise and is
    returned as exactly 0 (a flat window).
    """
    mean = window_mean(x, n)
    var = window_sum(x * x, n) / n - mean * mean
    return np.sqrt(np.where(var > 1e-12 * mean * mean, var, 0.0))


def ema(x: FloatArray, span: int, n: int | None = None) -> FloatArray:
    """Finite-impulse-response EMA with pandas' ``alpha = 2 / (span + 1)`` over ``n`` bars."""
    return smoothed(x, 2.0 / (span + 1), 4 * span if n is None else n)


def smoothed(x: FloatArray, alpha: float, n: int) -> FloatArray:
    """Exponential smoothing with weight ``alpha``, truncated after ``n`` bars and renormalised.

    ``alpha = 1 / period`` is Wilder's smoothing (RSI, ATR).
    """
    decay = 1.0 - alpha
    norm = (1.0 - decay**n) / alpha
    return window_sum(x, n, decay) / norm


def safe_divide(num: FloatArray, den: FloatArray, default: float) -> FloatArray:
    """``num / den`` elementwise, ``default`` where ``den`` is zero (flat windows, no volume)."""
    out = np.full(np.broadcast(num, den).shape, default, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out
