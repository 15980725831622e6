"""Each model's own answer as arrays (one row per bar), for the pure ML kinds and consensus.

A prediction (schema 2) carries, per model, what that model said (:mod:`tbotd.domain.answers`);
the backtest's prediction table carries the same as columns. Both become :class:`ModelArrays`, so
the daemon (length 1) and the backtest (one row per bar) run the same rules. A model that did not
answer (or whose answer was refused) is NaN on that bar: absent, never a default.

The legacy combined ``Prediction.regime`` does not count here: it names no model and comes from
sources (schema 1) that carry no direction probabilities either, so a pure ML kind could not
trade on it anyway. The enhancement layer's ``secondary_model = "regime"`` still reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tbotd.domain.answers import ModelName
from tbotd.domain.prediction import Prediction
from tbotd.strategy.signal import Floats


@dataclass(frozen=True)
class ModelArrays:
    """Per bar: the direction model's P(down, neutral, up) ([n, 3]), the price (volatility)
    model's expected forward return and ``sd`` ([n], fractions of price), the regime model's
    P(trend_down, sideways, trend_up) ([n, 3]); NaN where that model gave no answer."""

    direction: Floats
    expected_return: Floats
    sd: Floats
    regime: Floats

    def __len__(self) -> int:
        return len(self.expected_return)

    @classmethod
    def none(cls, n: int) -> ModelArrays:
        """``n`` bars on which no model answered."""
        return cls(np.full((n, 3), np.nan), np.full(n, np.nan), np.full(n, np.nan), nan3(n))

    @classmethod
    def of(cls, prediction: Prediction | None) -> ModelArrays:
        """One prediction's answers as length-1 arrays."""
        out = cls.none(1)
        if prediction is None:
            return out
        for answer in prediction.models:
            if answer.name is ModelName.DIRECTION and answer.probabilities is not None:
                out.direction[0] = answer.probabilities
            elif answer.name is ModelName.REGIME and answer.probabilities is not None:
                out.regime[0] = answer.probabilities
            elif answer.name is ModelName.VOLATILITY:
                out.expected_return[0] = (
                    np.nan if answer.expected_return is None else (answer.expected_return)
                )
                out.sd[0] = np.nan if answer.sd is None else answer.sd
        return out


def nan3(n: int) -> Floats:
    """[n, 3] of NaN."""
    return np.full((n, 3), np.nan)
