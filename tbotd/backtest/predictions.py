"""Predictions for a backtest: a table read from CSV or computed by the local models.

A prediction row says what a model thought after the candle that opened at ``timestamp`` closed.
The table keeps rows as arrays (a year of bars is 105,120 rows; building a pydantic object per
row would dominate the run), the strategies read them as arrays (:func:`ml_inputs`, the same
inputs the daemon makes of one :class:`~tbotd.domain.prediction.Prediction`), and
:meth:`PredictionTable.prediction` builds the real Prediction of a row. Every CSV row is checked
up front against the rules of the Prediction schema, so a bad row fails the run at once with
its line number instead of half-way through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from tbotd.backtest.model_columns import ModelColumns
from tbotd.domain.enums import PredictionSource, Regime, Signal
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.prediction import Prediction
from tbotd.domain.values import ms_to_datetime
from tbotd.marketdata.cells import listing
from tbotd.ml.signals import clamp_return, normalised
from tbotd.strategy.ml_opinion import MLInputs
from tbotd.strategy.signal import ExitHints

if TYPE_CHECKING:
    from tbotd.backtest.state import Candles
    from tbotd.strategy.strategy import Strategy

# signal codes; 0-2 follow tbotd.ml.signals.SIGNALS (the direction classes)
SHORT, NEUTRAL, LONG, HOLD = 0, 1, 2, 3
SIGNAL_NAMES = ("short", "neutral", "long", "hold")
_SIGNALS = (Signal.SHORT, Signal.NEUTRAL, Signal.LONG)
_REGIMES = (Regime.TREND_DOWN, Regime.SIDEWAYS, Regime.TREND_UP)


@dataclass(frozen=True)
class PredictionTable:
    """Prediction rows sorted by time, as arrays; ``lines`` are CSV line numbers (or row numbers).

    ``confidence`` is NaN only on ``hold`` rows; ``sd`` is NaN where absent; ``stop_loss`` and
    ``take_profit`` hold the exact decimal text from the file ("" where absent); ``regime`` is
    the combined prediction's [N, 3] (trend_down, sideways, trend_up) or None; ``models`` each
    model's own answer (:mod:`~tbotd.backtest.model_columns`).
    """

    time_ms: NDArray[np.int64]
    signal: NDArray[np.int8]
    confidence: NDArray[np.float64]
    sd: NDArray[np.float64]
    stop_loss: NDArray[np.str_] | None
    take_profit: NDArray[np.str_] | None
    regime: NDArray[np.float64] | None
    source: PredictionSource
    model_version: str
    origin: str
    lines: NDArray[np.int64]
    unit: str = "line"
    models: ModelColumns = field(default_factory=ModelColumns)

    def __len__(self) -> int:
        return len(self.time_ms)

    def counts(self, threshold: float | None = None) -> dict[str, int]:
        """Rows by signal (all rows, or only those at/above ``threshold`` confidence)."""
        keep = np.ones(len(self), dtype=bool)
        if threshold is not None:
            with np.errstate(invalid="ignore"):
                keep = self.confidence >= threshold
        found = np.bincount(self.signal[keep], minlength=4)
        names = SIGNAL_NAMES if threshold is None else SIGNAL_NAMES[:3]
        return {name: int(found[i]) for i, name in enumerate(names)}

    def prediction(self, k: int, symbol: str) -> Prediction | None:
        """The Prediction of row ``k`` (None for a ``hold`` row: no prediction)."""
        code = int(self.signal[k])
        if code == HOLD:
            return None
        sd = float(self.sd[k])
        stop = self.stop_loss[k] if self.stop_loss is not None else ""
        take = self.take_profit[k] if self.take_profit is not None else ""
        regime = None
        if self.regime is not None and np.isfinite(self.regime[k]).all():
            regime = {r: float(p) for r, p in zip(_REGIMES, self.regime[k], strict=True)}
        return Prediction(
            symbol=symbol,
            timestamp=ms_to_datetime(int(self.time_ms[k])),
            signal=_SIGNALS[code],
            confidence=float(self.confidence[k]),
            sd=sd if np.isfinite(sd) else None,
            stop_loss=Decimal(str(stop)) if stop else None,
            take_profit=Decimal(str(take)) if take else None,
            regime=regime,
            model_version=self.model_version,
            source=self.source,
            models=self.models.answers(k, self.sd, self.model_version),
        )

    def rows_for(self, open_ms: NDArray[np.int64], step_ms: int, max_age: int) -> NDArray[np.int64]:
        """The row a decision sees after each candle closes (-1: none), never a later one.

        Every row must belong to one of the candles (``timestamp`` equal to a candle's open time,
        inside the candle range) or the whole table is refused with line numbers. ``max_age`` 0
        takes only the row of the candle that just closed, as the daemon does; N > 0 also accepts
        the newest earlier row up to N bars old (an as-of lookup: backward only).
        """
        if len(self) == 0:
            return np.full(len(open_ms), -1, dtype=np.int64)
        if len(self) == len(open_ms) and np.array_equal(self.time_ms, open_ms):
            return np.arange(len(open_ms), dtype=np.int64)  # a row per candle, the usual file
        self._check_range(open_ms)
        if max_age == 0:
            k = np.searchsorted(self.time_ms, open_ms, side="left")
            k_safe = np.minimum(k, len(self) - 1)
            hit = (k < len(self)) & (self.time_ms[k_safe] == open_ms)
            return np.where(hit, k_safe, -1).astype(np.int64)
        k = np.searchsorted(self.time_ms, open_ms, side="right") - 1
        age = open_ms - self.time_ms[np.maximum(k, 0)]
        return np.where((k >= 0) & (age <= max_age * step_ms), k, -1).astype(np.int64)

    def _matched(self, open_ms: NDArray[np.int64]) -> NDArray[np.bool_]:
        k = np.searchsorted(open_ms, self.time_ms, side="left")
        k_safe = np.minimum(k, len(open_ms) - 1)
        return np.asarray((k < len(open_ms)) & (open_ms[k_safe] == self.time_ms), dtype=bool)

    def without_gap_rows(
        self, open_ms: NDArray[np.int64], step_ms: int
    ) -> tuple[PredictionTable, int]:
        """This table without the rows of candles missing from the data (inside its range, on
        the timeframe's grid), and how many were dropped: for runs that accept gaps."""
        inside = (self.time_ms > open_ms[0]) & (self.time_ms < open_ms[-1])
        drop = inside & (self.time_ms % step_ms == 0) & ~self._matched(open_ms)
        if not drop.any():
            return self, 0
        return self._keep(~drop), int(drop.sum())

    def within(self, first_ms: int, last_ms: int) -> PredictionTable:
        """Only the rows from ``first_ms`` to ``last_ms`` (a portfolio cut to the span its
        symbols share)."""
        return self._keep((self.time_ms >= first_ms) & (self.time_ms <= last_ms))

    def _keep(self, keep: NDArray[np.bool_]) -> PredictionTable:
        def kept(values: NDArray[Any] | None) -> Any:
            return None if values is None else values[keep]

        arrays: dict[str, Any] = {
            name: kept(getattr(self, name))
            for name in (
                "time_ms", "signal", "confidence", "sd", "stop_loss", "take_profit", "regime",
                "lines",
            )
        }  # fmt: skip
        return replace(self, **arrays, models=self.models.keep(keep))

    def _check_range(self, open_ms: NDArray[np.int64]) -> None:
        matched = self._matched(open_ms)
        if matched.all():
            return
        first, last = _iso(int(open_ms[0])), _iso(int(open_ms[-1]))
        problems = []
        for j in np.flatnonzero(~matched):
            t = int(self.time_ms[j])
            if t < open_ms[0]:
                why = f"is before the first candle ({first})"
            elif t > open_ms[-1]:
                why = f"is after the last candle ({last})"
            else:
                why = "is not the open time of any candle in the candle data"
            problems.append(f"{self.unit} {int(self.lines[j])}: timestamp {_iso(t)} {why}")
        raise InvalidDataError(listing(self.origin, problems, "prediction(s) outside the candles"))

    @classmethod
    def from_history(
        cls,
        history: pd.DataFrame,
        open_ms: NDArray[np.int64],
        source: PredictionSource,
        model_version: str,
    ) -> PredictionTable:
        """Rows of :meth:`LocalPredictor.predict_history` that are ready (warm-up complete)."""
        ready = history["ready"].to_numpy(dtype=bool)
        rows = np.flatnonzero(ready)
        codes = {s.value: i for i, s in enumerate(_SIGNALS)}
        signal = np.array([codes[s] for s in history["signal"].to_numpy()[rows]], dtype=np.int8)
        regime_cols = ["p_trend_down", "p_sideways", "p_trend_up"]
        direction_cols = ["p_down", "p_neutral", "p_up"]
        models = ModelColumns(  # exactly as tbotd.ml.signals.model_answers makes them
            normalised(history[direction_cols].to_numpy(np.float64)[rows]),
            clamp_return(history["ret_mean"].to_numpy(np.float64)[rows]),
            normalised(history[regime_cols].to_numpy(np.float64)[rows]),
        )
        return cls(
            time_ms=np.asarray(open_ms, dtype=np.int64)[rows],
            signal=signal,
            confidence=history["confidence"].to_numpy(np.float64)[rows],
            sd=history["sd"].to_numpy(np.float64)[rows],
            stop_loss=None,
            take_profit=None,
            regime=history[regime_cols].to_numpy(np.float64)[rows],
            source=source,
            model_version=model_version,
            origin="local models",
            lines=rows.astype(np.int64) + 1,
            unit="bar",
            models=models,
        )


def ml_inputs(table: PredictionTable | None, rows: NDArray[np.int64]) -> MLInputs:
    """What the strategies see of the table on each bar (``rows[i]``: the row the daemon would
    have had after bar ``i`` closed, -1 for none). A ``hold`` row is no prediction; a table
    from the neutral source is the degraded fallback throughout."""
    n = len(rows)
    if table is None or len(table) == 0:
        return MLInputs.none(n)
    seen = rows >= 0
    k = np.where(seen, rows, 0)
    code = np.where(seen, table.signal[k], -1)
    code = np.where(code == HOLD, -1, code).astype(np.int8)
    confidence = np.where(code >= 0, table.confidence[k], np.nan)
    sd = np.where(seen, table.sd[k], np.nan)

    def text(values: NDArray[np.str_] | None) -> NDArray[np.str_] | None:
        return None if values is None else np.where(seen, values[k], "")

    regime = np.full((n, 3), np.nan)
    if table.regime is not None:
        regime[seen] = table.regime[k[seen]]
    return MLInputs(
        code,
        confidence,
        np.full(n, table.source is PredictionSource.NEUTRAL),
        regime,
        ExitHints(sd, text(table.stop_loss), text(table.take_profit)),
        table.models.arrays(k, code >= 0, table.sd),
    )


def with_meta(strategies: Iterable[Strategy], ml: MLInputs, bars: Candles) -> MLInputs:
    """``ml`` with the meta-label model's answer for every bar, when one of ``strategies``
    gates on it (computed once, vectorised: the daemon asks the same model candle by candle)."""
    for strategy in strategies:
        if strategy.meta is not None:
            ohlcv = (bars.open, bars.high, bars.low, bars.close, bars.volume)
            return replace(ml, meta=strategy.meta.scorer.batch(bars.open_ms, ohlcv))
    return ml


def _iso(ms: int) -> str:
    return ms_to_datetime(ms).isoformat()
