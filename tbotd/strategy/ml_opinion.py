"""The ML opinion: a prediction (or a table of them) as :class:`~tbotd.strategy.signal.Opinions`.

When ML **abstains** it is never a vote of 0.5 (README: Strategies): no prediction, the chain's
neutral "no new risk" fallback, a confidence below ``enhance.confidence_threshold``, or a secondary
model that does not confirm all give ``ABSTAIN`` with the reason, and each enhancement mode has its
own stated fallback for it. The same function serves the daemon (one prediction: arrays of length 1)
and the backtest (a prediction per bar).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.actions import Reason
from tbotd.domain.enums import PredictionSource, Regime, Signal
from tbotd.domain.prediction import Prediction
from tbotd.strategy.kinds import SecondaryModel
from tbotd.strategy.model_inputs import ModelArrays
from tbotd.strategy.signal import (
    ABSTAIN,
    BIT,
    FLAT,
    LONG,
    SHORT,
    Codes,
    ExitHints,
    Floats,
    Opinions,
)

SIGNAL_CODES = {Signal.SHORT: SHORT, Signal.NEUTRAL: FLAT, Signal.LONG: LONG}
REGIME_ORDER = (Regime.TREND_DOWN, Regime.SIDEWAYS, Regime.TREND_UP)


@dataclass(frozen=True)
class MLInputs:
    """Per bar: the model's call (``code`` -1 where there is none), its confidence, whether it
    is the degraded fallback, the legacy combined regime probabilities ([n, 3] in
    :data:`REGIME_ORDER`, NaN where absent), the exits it asks for, each model's own answer
    (``models``; None: no model answered on any bar) and the meta-label model's P(take-profit
    first) for a long and a short (``meta``, [n, 2]; None: not asked,
    :mod:`tbotd.strategy.meta_label`)."""

    code: Codes
    confidence: Floats
    degraded: NDArray[np.bool_]
    regime: Floats
    exits: ExitHints
    models: ModelArrays | None = None
    meta: Floats | None = None

    @property
    def answers(self) -> ModelArrays:
        """Each model's answer per bar (NaN where it gave none)."""
        return ModelArrays.none(len(self)) if self.models is None else self.models

    def __len__(self) -> int:
        return len(self.code)

    @classmethod
    def of(cls, prediction: Prediction | None) -> MLInputs:
        """One prediction (the daemon's, for the candle that just closed) as length-1 inputs."""
        if prediction is None:
            return cls.none(1)
        regime = np.full((1, 3), np.nan)
        if prediction.regime:
            regime[0] = [prediction.regime.get(r, 0.0) for r in REGIME_ORDER]
        stop, take = prediction.stop_loss, prediction.take_profit
        exits = ExitHints(
            np.array([np.nan if prediction.sd is None else prediction.sd]),
            None if stop is None else np.array([str(stop)]),
            None if take is None else np.array([str(take)]),
        )
        return cls(
            np.array([SIGNAL_CODES[prediction.signal]], dtype=np.int8),
            np.array([prediction.confidence]),
            np.array([prediction.source is PredictionSource.NEUTRAL]),
            regime,
            exits,
            ModelArrays.of(prediction) if prediction.models else None,
        )

    @classmethod
    def none(cls, n: int) -> MLInputs:
        """``n`` bars without any prediction."""
        return cls(
            np.full(n, ABSTAIN, dtype=np.int8),
            np.full(n, np.nan),
            np.zeros(n, dtype=bool),
            np.full((n, 3), np.nan),
            ExitHints.none(n),
        )


def ml_opinions(
    ml: MLInputs,
    confidence_threshold: float | None = None,
    secondary: SecondaryModel = SecondaryModel.NONE,
) -> Opinions:
    """What ML says on each bar, or why it abstains.

    ``confidence_threshold`` None: every confident-or-not call counts (the ``ml_directional``
    kind, whose position rules apply their own threshold). ``secondary = "regime"``: a call
    counts only when the regime detector does not lean against it — a long needs
    P(trend_up) > P(trend_down), a short the reverse, a neutral P(sideways) at least as high as
    either trend; no regime probabilities, no confirmation.
    """
    n = len(ml)
    direction = ml.code.astype(np.int8, copy=True)
    reasons = np.full(n, BIT[Reason.ML_SIGNAL], dtype=np.int64)
    none = ml.code == ABSTAIN
    reasons[none] = BIT[Reason.ML_NO_PREDICTION]
    degraded = ~none & ml.degraded
    reasons[degraded] = BIT[Reason.ML_DEGRADED]
    abstain = none | degraded
    if confidence_threshold is not None:
        with np.errstate(invalid="ignore"):
            low = ~abstain & (ml.confidence < confidence_threshold)
        reasons[low] = BIT[Reason.ML_LOW_CONFIDENCE]
        abstain |= low
    if secondary is SecondaryModel.REGIME:
        down, side, up = ml.regime[:, 0], ml.regime[:, 1], ml.regime[:, 2]
        missing = ~abstain & ~np.isfinite(ml.regime).all(axis=1)
        with np.errstate(invalid="ignore"):
            confirmed = np.where(
                direction == LONG,
                up > down,
                np.where(direction == SHORT, down > up, side >= np.maximum(up, down)),
            )
        unconfirmed = ~abstain & ~missing & ~confirmed
        reasons[missing] = BIT[Reason.SECONDARY_MISSING]
        reasons[unconfirmed] = BIT[Reason.SECONDARY_UNCONFIRMED]
        abstain |= missing | unconfirmed
    direction[abstain] = ABSTAIN
    confidence = np.where(abstain, 0.0, ml.confidence)
    return Opinions(direction, confidence, reasons)
