"""No look-ahead: a prediction acts after its candle closed; the future never changes the past."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tbotd.backtest import prediction_table, run_backtest
from tbotd.domain.values import ms_to_datetime
from tests.unit.backtest_support import candles, predictions, random_scenario, settings

FLAT = ("20000", "20010", "19990", "20000")


@pytest.mark.parametrize("max_age", [0, 5])
def test_a_prediction_acts_only_after_its_own_candle_closed(max_age: int) -> None:
    """The only row is for bar 10: nothing happens before bar 11's open, where the entry fills,
    whatever lookup is used."""
    frame = candles(*[FLAT] * 20)
    r = run_backtest(
        frame,
        predictions(frame, {10: ("long", 0.9)}),
        settings(),
        max_prediction_age=max_age,
    )
    [trade] = r.trades
    assert trade.entry_time == ms_to_datetime(int(frame["open_time"].iloc[11]))
    assert not r.equity.position[:11].any()


def test_the_as_of_lookup_is_backward_only_and_bounded() -> None:
    """Every bar sees the newest row at or before its own open time, at most N bars old."""
    rng = np.random.default_rng(3)
    frame = candles(*[FLAT] * 200)
    bars = np.sort(rng.choice(200, size=40, replace=False))
    table = prediction_table(
        predictions(frame, {int(b): ("long", 0.9) for b in bars}).astype(str), "rows", first_line=2
    )
    open_ms = frame["open_time"].to_numpy()
    for age in (0, 1, 4):
        rows = table.rows_for(open_ms, 300_000, age)
        for i, k in enumerate(rows):
            if k < 0:
                older = table.time_ms[table.time_ms <= open_ms[i]]
                assert len(older) == 0 or open_ms[i] - older[-1] > age * 300_000
            else:
                assert open_ms[i] - age * 300_000 <= table.time_ms[k] <= open_ms[i]


@pytest.mark.parametrize("max_age", [0, 3])
@pytest.mark.parametrize("seed", [11, 12])
def test_changing_predictions_after_t_never_changes_anything_before_t(
    seed: int, max_age: int
) -> None:
    """Rewriting every row after candle T (random signals and confidences) leaves the equity up
    to the fill at T+1's open and every trade closed by then exactly as they were."""
    frame, preds, funding = random_scenario(seed, 300, sure=0.3)
    config = settings(execution={"leverage": 3, "slippage_bps": "2"})
    base = run_backtest(frame, preds, config, funding, max_prediction_age=max_age)
    rng = np.random.default_rng(seed)
    open_ms = frame["open_time"].to_numpy()
    for t in (40, 150, 260):
        later = preds["timestamp"].to_numpy() > open_ms[t]
        changed = preds.copy()
        changed.loc[later, "signal"] = rng.choice(["long", "short", "neutral"], later.sum())
        changed.loc[later, "confidence"] = np.round(rng.uniform(0.6, 1.0, later.sum()), 3)
        other = run_backtest(frame, changed, config, funding, max_prediction_age=max_age)
        assert np.array_equal(other.equity.equity[: t + 2], base.equity.equity[: t + 2])
        cutoff = ms_to_datetime(int(open_ms[t + 1]))
        assert [x for x in other.trades if x.exit_time <= cutoff] == [
            x for x in base.trades if x.exit_time <= cutoff
        ]
        assert other.trades != base.trades  # the rewrite did change the future


def test_rows_after_the_last_candle_are_refused() -> None:
    """A row for a candle the data does not have (the future) is an error, not silently unused."""
    frame = candles(*[FLAT] * 5)
    rows = predictions(frame, {4: ("long", 0.9)})
    late = pd.DataFrame(
        {"timestamp": [int(frame["open_time"].iloc[4]) + 300_000], "signal": ["long"]}
    ).assign(confidence=0.9)
    with pytest.raises(ValueError, match=r"after the last candle"):
        run_backtest(frame, pd.concat([rows, late]), settings())
