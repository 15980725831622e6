"""The predictions CSV's model columns (README: Backtesting): each model's answer read strictly,
absent where the file has none, and the same Prediction the daemon would have received."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tbotd.backtest.predictions_csv import read_predictions_csv
from tbotd.domain.answers import ModelName
from tbotd.domain.errors import InvalidDataError
from tbotd.strategy.ml_opinion import MLInputs

T = 1_709_510_400_000
HEAD = "timestamp,signal,confidence,sd"


def csv(tmp_path: Path, header: str, *rows: str) -> Path:
    path = tmp_path / "pred.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_each_models_answer_is_read_and_absent_cells_stay_absent(tmp_path: Path) -> None:
    """Direction, price and regime answers per row; an empty cell is that model absent on that
    row, and the row's Prediction carries exactly the answers given."""
    path = csv(
        tmp_path,
        f"{HEAD},p_down,p_neutral,p_up,regime_down,regime_sideways,regime_up,expected_return",
        f"{T},long,0.7,0.01,0.1,0.2,0.7,0.2,0.5,0.3,0.002",
        f"{T + 300_000},short,0.6,,0.6,0.3,0.1,,,,",
    )
    table = read_predictions_csv(path)
    first = table.prediction(0, "BTC/USDT:USDT")
    assert first is not None
    assert [a.name for a in first.models] == [
        ModelName.DIRECTION,
        ModelName.VOLATILITY,
        ModelName.REGIME,
    ]
    price = first.answer(ModelName.VOLATILITY)
    assert price is not None
    assert (price.expected_return, price.sd) == (0.002, 0.01)
    second = table.prediction(1, "BTC/USDT:USDT")
    assert second is not None
    assert [a.name for a in second.models] == [ModelName.DIRECTION]
    arrays = MLInputs.of(second).answers
    assert np.isnan(arrays.regime).all()
    assert np.isnan(arrays.expected_return).all()


def test_without_model_columns_no_model_answered(tmp_path: Path) -> None:
    """An old file (no model columns): the Prediction carries no answers, never defaults."""
    table = read_predictions_csv(csv(tmp_path, HEAD, f"{T},long,0.7,0.01"))
    p = table.prediction(0, "BTC/USDT:USDT")
    assert p is not None
    assert p.models == ()


def test_both_regime_spellings_are_accepted_but_not_together(tmp_path: Path) -> None:
    """regime_down,... and the older p_trend_down,... mean the same answer; a file with both is
    refused at its header."""
    old = read_predictions_csv(
        csv(
            tmp_path, f"{HEAD},p_trend_down,p_sideways,p_trend_up", f"{T},long,0.7,0.01,0.2,0.5,0.3"
        )
    )
    new = read_predictions_csv(
        csv(
            tmp_path,
            f"{HEAD},regime_down,regime_sideways,regime_up",
            f"{T},long,0.7,0.01,0.2,0.5,0.3",
        )
    )
    assert old.prediction(0, "X/Y:Y") == new.prediction(0, "X/Y:Y")
    both = f"{HEAD},p_trend_down,p_sideways,p_trend_up,regime_down,regime_sideways,regime_up"
    with pytest.raises(InvalidDataError, match=r"line 1 .*regime probabilities are given twice"):
        read_predictions_csv(csv(tmp_path, both, f"{T},long,0.7,0.01,0.2,0.5,0.3,0.2,0.5,0.3"))


def test_bad_model_cells_are_refused_with_their_line(tmp_path: Path) -> None:
    """Probabilities that do not sum to 1, a half-given triple, a return outside (-1, 1) or one
    without the row's sd: each named with its line."""
    path = csv(
        tmp_path,
        f"{HEAD},p_down,p_neutral,p_up,expected_return",
        f"{T},long,0.7,0.01,0.2,0.2,0.2,0.001",
        f"{T + 300_000},long,0.7,0.01,0.2,,0.8,0.001",
        f"{T + 600_000},long,0.7,0.01,0.2,0.3,0.5,1.5",
        f"{T + 900_000},long,0.7,,0.2,0.3,0.5,0.001",
        f"{T + 1_200_000},long,0.7,0.01,0.2,0.3,0.5,x",
    )
    with pytest.raises(InvalidDataError) as e:
        read_predictions_csv(path)
    text = str(e.value)
    assert "line 2: direction probabilities must sum to 1" in text
    assert "line 3: direction probabilities come together" in text
    assert "line 4: expected_return must lie strictly between -1 and 1" in text
    assert "line 5: expected_return needs the row's sd" in text
    assert "line 6: expected_return is not a finite number" in text


def test_a_half_given_model_header_is_refused(tmp_path: Path) -> None:
    """p_down without p_neutral and p_up: the header names the missing columns."""
    with pytest.raises(InvalidDataError, match="direction probabilities need all of p_down"):
        read_predictions_csv(csv(tmp_path, f"{HEAD},p_down", f"{T},long,0.7,0.01,0.2"))
