"""The meta-label model as the strategy asks it: per closed candle in the daemon
(:meth:`MetaModelScorer.latest`), per bar of a history in the backtest
(:meth:`MetaModelScorer.batch`).

Both compute the same 25 features (the incremental :func:`~tbotd.features.latest_features` equals
the batch matrix's row bit for bit) and run the same fixed-block forward
(:func:`~tbotd.ml.meta.model.meta_probabilities`), so the backtest's gate sees exactly the
numbers the daemon's would. The model is loaded on first use (``build_strategy`` runs for a
dashboard's name too; torch is imported only then); a directory that does not check out is
logged once and answers NaN, which the gate reads as "not confirmed" (``meta_missing``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.market import Candle
from tbotd.features import WARMUP, Bars, bars_from_frame, candles_to_frame, latest_features

if TYPE_CHECKING:
    from tbotd.ml.meta.model import LoadedMeta


class MetaModelScorer:
    """A meta-label model directory, loaded lazily (see the module docstring)."""

    def __init__(self, models_dir: Path, device: str = "cpu") -> None:
        self.models_dir, self.device = models_dir, device
        self._loaded: LoadedMeta | None = None
        self.error: str | None = None

    def loaded(self) -> LoadedMeta | None:
        """The checked model, or None (``error`` says why) — tried once."""
        if self._loaded is None and self.error is None:
            from tbotd.ml.device import resolve_device
            from tbotd.ml.errors import ModelLoadError
            from tbotd.ml.meta.model import load_meta
            from tbotd.ops.logs import get_logger

            try:
                self._loaded = load_meta(self.models_dir, resolve_device(self.device))
            except ModelLoadError as e:
                self.error = str(e)
                get_logger(__name__).warning("meta-label model unusable", error=self.error)
        return self._loaded

    def threshold(self) -> float:
        """The level the model was trained to confirm at (NaN: no model)."""
        loaded = self.loaded()
        return math.nan if loaded is None else loaded.threshold

    def features(self, bars: Bars) -> NDArray[np.float64]:
        """[n, 2] for every bar of one symbol's ``bars`` (NaN until the features warm up)."""
        from tbotd.features import feature_matrix

        loaded = self.loaded()
        if loaded is None:
            return np.full((bars.length, 2), np.nan)
        return loaded.probabilities(feature_matrix(bars)[0])

    def batch(
        self,
        open_ms: NDArray[np.int64],
        ohlcv: tuple[NDArray[np.float64], ...],
    ) -> NDArray[np.float64]:
        """[n, 2] for a backtest's candles (open, high, low, close, volume arrays)."""
        return self.features(Bars(open_ms[None, :], *(a[None, :] for a in ohlcv)))

    def latest(self, history: Sequence[Candle]) -> NDArray[np.float64]:
        """[1, 2] for the newest candle of ``history`` (NaN with fewer than WARMUP candles)."""
        loaded = self.loaded()
        if loaded is None or len(history) < WARMUP:
            return np.full((1, 2), np.nan)
        bars = bars_from_frame(candles_to_frame(history[-WARMUP:]))
        return loaded.probabilities(latest_features(bars))
