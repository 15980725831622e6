"""A backtest report that would mislead says so: too few trades, a period the models were trained
on, and what holding the asset did beside it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tbotd.backtest.honesty import (
    MIN_TRADES,
    Span,
    buy_and_hold_return,
    small_sample,
    training_overlap,
    warnings,
)
from tbotd.cli import main
from tests.conftest import CONFIGS
from tests.synthetic import write_csv

JAN = Span(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
FEB = Span(datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
MID_JAN_ON = Span(datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))


def test_fewer_than_30_trades_is_flagged_and_30_is_not() -> None:
    """One trade → a warning naming the count; 30 trades → none."""
    one = small_sample(1)
    assert one is not None
    assert "only 1 trade:" in one
    assert small_sample(MIN_TRADES) is None


def test_a_backtest_inside_the_training_window_is_flagged_with_both_spans() -> None:
    """Overlap names both spans; back-to-back spans do not overlap."""
    said = training_overlap(MID_JAN_ON, JAN)
    assert said is not None
    assert "2024-01-15" in said
    assert "2024-01-01" in said
    assert training_overlap(FEB, JAN) is None
    assert training_overlap(FEB, None) is None
    assert warnings(100, FEB, JAN) == []
    assert len(warnings(3, MID_JAN_ON, JAN)) == 2


def test_buy_and_hold_is_from_the_second_open_to_the_last_close() -> None:
    """The first price a strategy can trade at is the second candle's open."""
    assert buy_and_hold_return([100.0, 200.0, 210.0], [200.0, 210.0, 220.0]) == pytest.approx(0.1)
    assert buy_and_hold_return([100.0], [110.0]) is None


def test_backtest_on_the_models_training_candles_warns(
    models_dir: Path, model_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """`tbotd backtest --models` over the candles the models were trained on: report.json's
    warnings name the overlap, and buy-and-hold sits beside the result."""
    data = tmp_path / "candles.csv"
    write_csv(model_frame, data)
    out = tmp_path / "out"
    code = main(
        [
            "backtest", "--config", str(CONFIGS / "ml_usdt_directional.toml"),
            "--data", str(data), "--models", str(models_dir), "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert any("overlaps the models' training window" in w for w in report["warnings"])
    first_open, last_close = model_frame["open"].iloc[1], model_frame["close"].iloc[-1]
    assert report["buy_and_hold_return"] == pytest.approx(last_close / first_open - 1)
