"""The ML opinion: when a prediction counts and why it abstains — the same for one prediction
(the daemon) and a table of them (the backtest)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tbotd.backtest.predictions import ml_inputs
from tbotd.backtest.predictions_csv import prediction_table
from tbotd.domain import Prediction
from tbotd.domain.actions import Direction, Reason
from tbotd.domain.errors import InvalidDataError
from tbotd.strategy.kinds import SecondaryModel
from tbotd.strategy.ml_opinion import MLInputs, ml_opinions

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def prediction(signal: str = "long", confidence: float = 0.8, **extra: Any) -> Prediction:
    return Prediction.model_validate(
        {
            "symbol": "BTC/USDT:USDT",
            "timestamp": T0,
            "signal": signal,
            "confidence": confidence,
            "model_version": "t",
            "source": "remote",
            **extra,
        }
    )


def opinion(
    p: Prediction | None, threshold: float | None = 0.6, **kw: Any
) -> tuple[str, float, tuple[Reason, ...]]:
    o = ml_opinions(MLInputs.of(p), threshold, **kw).at(0)
    return (str(o.direction), o.confidence, o.reasons)


def test_why_ml_abstains() -> None:
    """No prediction, the neutral fallback, or a confidence under confidence_threshold: ML has
    no opinion (confidence 0, the reason said), never a vote of 0.5."""
    assert opinion(None) == ("abstain", 0.0, (Reason.ML_NO_PREDICTION,))
    fallback = Prediction.neutral("BTC/USDT:USDT", T0, "all sources failed")
    assert opinion(fallback) == ("abstain", 0.0, (Reason.ML_DEGRADED,))
    assert opinion(prediction(confidence=0.59)) == ("abstain", 0.0, (Reason.ML_LOW_CONFIDENCE,))
    assert opinion(prediction(confidence=0.6)) == ("long", 0.6, (Reason.ML_SIGNAL,))
    assert opinion(prediction("neutral", 0.9)) == ("flat", 0.9, (Reason.ML_SIGNAL,))
    assert opinion(prediction(confidence=0.3), None) == ("long", 0.3, (Reason.ML_SIGNAL,))


REGIME = SecondaryModel.REGIME


def regime(down: float, side: float, up: float) -> dict[str, float]:
    return {"trend_down": down, "sideways": side, "trend_up": up}


@pytest.mark.parametrize(
    ("signal", "probabilities", "expected"),
    [
        ("long", regime(0.1, 0.3, 0.6), "long"),
        ("long", regime(0.6, 0.3, 0.1), Reason.SECONDARY_UNCONFIRMED),
        ("short", regime(0.6, 0.3, 0.1), "short"),
        ("short", regime(0.2, 0.4, 0.4), Reason.SECONDARY_UNCONFIRMED),
        ("neutral", regime(0.2, 0.6, 0.2), "flat"),
        ("neutral", regime(0.1, 0.2, 0.7), Reason.SECONDARY_UNCONFIRMED),
        ("long", None, Reason.SECONDARY_MISSING),
    ],
)
def test_a_secondary_regime_model_must_confirm(
    signal: str, probabilities: dict[str, float] | None, expected: str | Reason
) -> None:
    """With ``secondary_model = "regime"`` a call counts only if the regime detector does not
    lean against it; without regime probabilities it cannot confirm."""
    extra = {} if probabilities is None else {"regime": probabilities}
    got = opinion(prediction(signal, 0.8, **extra), secondary=REGIME)
    if isinstance(expected, Reason):
        assert got == ("abstain", 0.0, (expected,))
    else:
        assert got[0] == expected


def test_the_backtest_sees_each_row_as_the_daemon_sees_its_prediction() -> None:
    """A predictions CSV (regime columns included) read into the backtest gives, bar by bar,
    the opinion the daemon forms from the same prediction; a hold row is no prediction."""
    rows = pd.DataFrame(
        {
            "timestamp": [str(1_714_557_600_000 + k * 300_000) for k in range(6)],
            "signal": ["long", "short", "neutral", "hold", "long", "short"],
            "confidence": ["0.9", "0.55", "0.8", "", "0.7", "0.95"],
            "sd": ["0.004", "", "0.01", "", "", "0.002"],
            "p_trend_down": ["0.1", "0.5", "0.2", "", "0.7", "0.6"],
            "p_sideways": ["0.2", "0.3", "0.6", "", "0.2", "0.3"],
            "p_trend_up": ["0.7", "0.2", "0.2", "", "0.1", "0.1"],
        }
    )
    table = prediction_table(rows, "p.csv")
    batch = ml_opinions(ml_inputs(table, np.arange(6)), 0.6, REGIME)
    for k in range(6):
        single = table.prediction(k, "BTC/USDT:USDT")
        daemon = ml_opinions(MLInputs.of(single), 0.6, REGIME).at(0)
        assert batch.at(k) == daemon, k
    assert [batch.at(k).direction for k in range(6)] == [
        Direction.LONG,
        Direction.ABSTAIN,  # 0.55 < 0.6
        Direction.FLAT,
        Direction.ABSTAIN,  # hold
        Direction.ABSTAIN,  # long against a falling regime
        Direction.SHORT,
    ]


def test_bad_regime_columns_are_refused_with_their_lines() -> None:
    """Regime probabilities come as a set of three, each in [0, 1], summing to 1."""
    rows = pd.DataFrame(
        {
            "timestamp": ["1714557600000", "1714557900000"],
            "signal": ["long", "long"],
            "confidence": ["0.9", "0.9"],
            "p_trend_down": ["0.1", "0.5"],
            "p_sideways": ["0.2", "0.5"],
            "p_trend_up": ["0.3", "0.5"],
        }
    )
    with pytest.raises(InvalidDataError, match="line 2: regime probabilities must sum to 1"):
        prediction_table(rows, "p.csv")
    with pytest.raises(InvalidDataError, match="need all of p_trend_down"):
        prediction_table(rows.drop(columns=["p_sideways"]), "p.csv")
