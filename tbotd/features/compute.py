"""Batch and incremental feature computation over closed candles.

:func:`compute_features` fills a whole history (training, backtests, ``predict_history``);
:func:`latest_features` computes only the newest bar of many symbols at once (the live cycle).
Both run the same functions on the same window of bars, so they agree exactly, not just closely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import Candle
from tbotd.domain.values import datetime_to_ms
from tbotd.features.definitions import FEATURE_NAMES, FEATURES, WARMUP, Bars, FeatureSpec
from tbotd.features.primitives import FloatArray

if TYPE_CHECKING:  # imported where a frame is made: the daemon's remote-only path needs none
    import pandas as pd

CANDLE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")


def candles_to_frame(candles: Iterable[Candle]) -> pd.DataFrame:
    """Candles (oldest first) → the DataFrame :func:`compute_features` takes.

    Columns: ``open_time`` (int64 epoch ms, UTC) and float64 ``open, high, low, close, volume``.
    Decimals become float64 here, at the edge of the numeric code.
    """
    import pandas as pd

    rows = [
        (
            datetime_to_ms(c.open_time),
            float(c.open),
            float(c.high),
            float(c.low),
            float(c.close),
            float(c.volume),
        )
        for c in candles
    ]
    frame = pd.DataFrame(rows, columns=list(CANDLE_COLUMNS))
    frame["open_time"] = frame["open_time"].astype(np.int64)
    for name in CANDLE_COLUMNS[1:]:
        frame[name] = frame[name].astype(np.float64)
    return frame


def _open_time_ms(column: pd.Series) -> NDArray[np.int64]:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        if column.dt.tz is not None:
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        return np.asarray(column.to_numpy("datetime64[ms]").astype(np.int64), dtype=np.int64)
    if not pd.api.types.is_integer_dtype(column):
        raise InvalidDataError("open_time must be integer epoch milliseconds or UTC datetimes")
    return np.asarray(column, dtype=np.int64)


def bars_from_frame(frame: pd.DataFrame) -> Bars:
    """One symbol's candle DataFrame → :class:`Bars` of shape (1, T)."""
    missing = [c for c in CANDLE_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidDataError(f"candle frame lacks column(s) {', '.join(missing)}")
    values = [np.asarray(frame[c], dtype=np.float64)[None, :] for c in CANDLE_COLUMNS[1:]]
    return Bars(_open_time_ms(frame["open_time"])[None, :], *values)


def stack_bars(bars: Sequence[Bars], length: int) -> Bars:
    """The newest ``length`` bars of several single-symbol :class:`Bars`, stacked to (S, length)."""
    short = [i for i, b in enumerate(bars) if b.length < length]
    if short:
        raise InvalidDataError(f"series {short} have fewer than {length} bars")
    parts = [b.newest(length) for b in bars]
    return Bars(
        np.concatenate([p.open_time for p in parts]),
        np.concatenate([p.open for p in parts]),
        np.concatenate([p.high for p in parts]),
        np.concatenate([p.low for p in parts]),
        np.concatenate([p.close for p in parts]),
        np.concatenate([p.volume for p in parts]),
    )


def _evaluate(spec: FeatureSpec, bars: Bars) -> FloatArray:
    values = spec.fn(bars)
    expected = max(bars.length - spec.warmup + 1, 0)
    if values.shape[-1] != expected:  # a definition whose declared warm-up is wrong
        raise RuntimeError(
            f"feature {spec.name} returned {values.shape[-1]} values for {bars.length} bars, "
            f"expected {expected} (warm-up {spec.warmup})"
        )
    return values


def feature_matrix(bars: Bars) -> FloatArray:
    """Features for every bar: shape (S, T, F); a feature is NaN until its warm-up is complete."""
    s, t = bars.close.shape
    out = np.full((s, t, len(FEATURES)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, spec in enumerate(FEATURES):
            values = _evaluate(spec, bars)
            if values.shape[-1]:
                out[:, t - values.shape[-1] :, j] = values
    return out


def latest_features(bars: Bars) -> FloatArray:
    """Features of the newest bar of every symbol: shape (S, F).

    Each feature reads only its own newest ``warmup`` bars, so this is cheap enough for every
    cycle and equals the last row of :func:`feature_matrix` over any longer history exactly.
    Needs at least :data:`WARMUP` bars per symbol.
    """
    if bars.length < WARMUP:
        raise InvalidDataError(f"{bars.length} bars given; features need {WARMUP}")
    out = np.empty((bars.close.shape[0], len(FEATURES)))
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, spec in enumerate(FEATURES):
            out[:, j] = _evaluate(spec, bars.newest(spec.warmup))[:, -1]
    return out


def compute_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Batch features of one symbol's closed candles, one row per candle, same index.

    ``frame`` has ``open_time`` (int epoch ms or UTC datetimes) and float ``open, high, low,
    close, volume``, oldest first, consecutive bars. Columns are :data:`FEATURE_NAMES` in schema
    order; a row is NaN in a feature until that feature's warm-up is complete (never back-filled).
    """
    import pandas as pd

    values = feature_matrix(bars_from_frame(frame))[0]
    return pd.DataFrame(values, index=frame.index, columns=list(FEATURE_NAMES))
