"""The audited feature set: each feature's formula, warm-up length and place in the schema.

A feature is a pure function of the newest ``warmup`` closed candles (the current one included):
it takes :class:`Bars` of shape ``(symbols, T)`` and returns ``(symbols, T - warmup + 1)`` values,
the last one for the newest bar. Nothing looks at a later bar, nothing fills backwards, nothing
uses a sample-wide statistic. Prices enter only through ratios, so the features mean the same on
any price level; the models standardise them with statistics from their own training fold.

Changing a formula, a window or the order of :data:`FEATURES` changes what a trained model's
inputs mean: bump :data:`FEATURE_DEFINITIONS_VERSION` so :data:`FEATURE_SCHEMA_HASH` changes and
old model directories are refused instead of silently misread.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbotd.features.primitives import (
    FloatArray,
    ema,
    safe_divide,
    smoothed,
    tail,
    window_mean,
    window_std,
    window_sum,
)

FEATURE_DEFINITIONS_VERSION = 1

_MINUTE_MS = 60_000
_DAY_MS = 86_400_000
# Lookup tables: time features are table reads, so they are identical on every path.
_MINUTE_ANGLE = [2 * math.pi * m / 1440 for m in range(1440)]
_TOD_SIN = np.array([math.sin(a) for a in _MINUTE_ANGLE])
_TOD_COS = np.array([math.cos(a) for a in _MINUTE_ANGLE])
_DOW_SIN = np.array([math.sin(2 * math.pi * d / 7) for d in range(7)])
_DOW_COS = np.array([math.cos(2 * math.pi * d / 7) for d in range(7)])
_WILDER_BARS = 128  # (13/14)**128 ≈ 8e-5 of Wilder's weight is left out
_VOLUME_Z_CLIP = 10.0


@dataclass(frozen=True, slots=True)
class Bars:
    """Consecutive closed candles of one or more symbols, as float64 arrays of shape (S, T).

    ``open_time`` is integer epoch milliseconds (UTC). Row ``s`` is one symbol, oldest bar first.
    """

    open_time: NDArray[np.int64]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    @property
    def length(self) -> int:
        """Bars per symbol (T)."""
        return int(self.close.shape[-1])

    def newest(self, n: int) -> Bars:
        """The newest ``n`` bars of every symbol."""
        start = max(self.length - n, 0)
        return Bars(
            self.open_time[..., start:],
            self.open[..., start:],
            self.high[..., start:],
            self.low[..., start:],
            self.close[..., start:],
            self.volume[..., start:],
        )


FeatureFn = Callable[[Bars], FloatArray]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature: its column name, bars of history it needs, formula text and function."""

    name: str
    warmup: int
    formula: str
    fn: FeatureFn


def _simple_returns(close: FloatArray) -> FloatArray:
    return close[..., 1:] / close[..., :-1] - 1.0


def _ret(k: int) -> FeatureFn:
    def fn(b: Bars) -> FloatArray:
        return b.close[..., k:] / b.close[..., :-k] - 1.0

    return fn


def _realised_vol(n: int) -> FeatureFn:
    def fn(b: Bars) -> FloatArray:
        r = _simple_returns(b.close)
        return np.sqrt(window_sum(r * r, n) / n)

    return fn


def _rsi(b: Bars) -> FloatArray:
    d = b.close[..., 1:] - b.close[..., :-1]
    up = smoothed(np.maximum(d, 0.0), 1 / 14, _WILDER_BARS)
    down = smoothed(np.maximum(-d, 0.0), 1 / 14, _WILDER_BARS)
    return safe_divide(100.0 * up, up + down, 50.0)


def _atr(b: Bars) -> FloatArray:
    prev = b.close[..., :-1]
    high, low = b.high[..., 1:], b.low[..., 1:]
    tr = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    atr = smoothed(tr, 1 / 14, _WILDER_BARS)
    return atr / tail(b.close, atr.shape[-1])


def _macd_line(b: Bars) -> FloatArray:
    slow = ema(b.close, 26)
    fast = tail(ema(b.close, 12), slow.shape[-1])
    return (fast - slow) / tail(b.close, slow.shape[-1])


def _macd_signal(b: Bars) -> FloatArray:
    return ema(_macd_line(b), 9)


def _macd_hist(b: Bars) -> FloatArray:
    line = _macd_line(b)
    signal = ema(line, 9)
    return tail(line, signal.shape[-1]) - signal


def _ema_distance(span: int) -> FeatureFn:
    def fn(b: Bars) -> FloatArray:
        avg = ema(b.close, span)
        return tail(b.close, avg.shape[-1]) / avg - 1.0

    return fn


def _bollinger_pctb(b: Bars) -> FloatArray:
    mean = window_mean(b.close, 20)
    sd = window_std(b.close, 20)
    close = tail(b.close, mean.shape[-1])
    return safe_divide(close - (mean - 2.0 * sd), 4.0 * sd, 0.5)


def _volume_z(b: Bars) -> FloatArray:
    mean = window_mean(b.volume, 288)
    sd = window_std(b.volume, 288)
    z = safe_divide(tail(b.volume, mean.shape[-1]) - mean, sd, 0.0)
    return np.clip(z, -_VOLUME_Z_CLIP, _VOLUME_Z_CLIP)


def _range(b: Bars) -> FloatArray:
    return (b.high - b.low) / b.close


def _close_location(b: Bars) -> FloatArray:
    return safe_divide(b.close - b.low, b.high - b.low, 0.5)


def _table(
    values: FloatArray, index: Callable[[NDArray[np.int64]], NDArray[np.int64]]
) -> FeatureFn:
    def fn(b: Bars) -> FloatArray:
        return values[index(b.open_time)]

    return fn


def _minute_of_day(t: NDArray[np.int64]) -> NDArray[np.int64]:
    return (t // _MINUTE_MS) % 1440


def _day_of_week(t: NDArray[np.int64]) -> NDArray[np.int64]:
    return (t // _DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0


FEATURES: tuple[FeatureSpec, ...] = (
    *(
        FeatureSpec(f"ret_{k}", k + 1, f"close[t]/close[t-{k}] - 1", _ret(k))
        for k in (1, 3, 6, 12, 48, 288)
    ),
    *(
        FeatureSpec(
            f"rv_{n}", n + 1, f"sqrt(mean of the last {n} squared 1-bar returns)", _realised_vol(n)
        )
        for n in (12, 48, 288)
    ),
    FeatureSpec(
        "rsi_14", _WILDER_BARS + 1, "RSI(14), Wilder smoothing over 128 bars, 0..100", _rsi
    ),
    FeatureSpec(
        "atr_14", _WILDER_BARS + 1, "ATR(14), Wilder smoothing over 128 bars / close", _atr
    ),
    FeatureSpec("macd", 104, "(EMA12 - EMA26) / close", _macd_line),
    FeatureSpec("macd_signal", 139, "EMA9 of macd", _macd_signal),
    FeatureSpec("macd_hist", 139, "macd - macd_signal", _macd_hist),
    *(
        FeatureSpec(f"ema_dist_{s}", 4 * s, f"close / EMA{s} - 1", _ema_distance(s))
        for s in (12, 48, 144)
    ),
    FeatureSpec(
        "bb_pctb_20", 20, "Bollinger %b: (close - (SMA20 - 2 sd)) / (4 sd)", _bollinger_pctb
    ),
    FeatureSpec("volume_z_288", 288, "(volume - mean288) / sd288, clipped to ±10", _volume_z),
    FeatureSpec("range_hl", 1, "(high - low) / close", _range),
    FeatureSpec("close_loc", 1, "(close - low) / (high - low), 0.5 when flat", _close_location),
    FeatureSpec(
        "tod_sin", 1, "sin(2π minute-of-day / 1440) of open_time", _table(_TOD_SIN, _minute_of_day)
    ),
    FeatureSpec(
        "tod_cos", 1, "cos(2π minute-of-day / 1440) of open_time", _table(_TOD_COS, _minute_of_day)
    ),
    FeatureSpec("dow_sin", 1, "sin(2π weekday / 7), Monday = 0", _table(_DOW_SIN, _day_of_week)),
    FeatureSpec("dow_cos", 1, "cos(2π weekday / 7), Monday = 0", _table(_DOW_COS, _day_of_week)),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_WARMUPS: dict[str, int] = {f.name: f.warmup for f in FEATURES}
WARMUP: int = max(FEATURE_WARMUPS.values())
"""Closed candles needed (the newest included) before every feature has a value."""


def _schema_hash() -> str:
    canonical = json.dumps(
        {
            "definitions_version": FEATURE_DEFINITIONS_VERSION,
            "features": [[f.name, f.warmup, f.formula] for f in FEATURES],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


FEATURE_SCHEMA_HASH: str = _schema_hash()
"""sha256 of the ordered names, warm-ups, formulas and definitions version."""
