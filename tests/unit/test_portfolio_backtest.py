"""The portfolio backtest and the risk guard in it: equal to the daemon's cycle trade for trade,
equal to the one-symbol fast path when the guard never binds, and a drawdown trip where the
equity says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tbotd.backtest import run_backtest
from tbotd.backtest.portfolio_run import run_portfolio
from tbotd.config.settings import Settings
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.markets import BTCUSD_PERP, BTCUSDT_PERP, KNOWN_MARKETS
from tbotd.domain.values import datetime_to_ms, timeframe_ms
from tbotd.store import Store
from tests.unit.backtest_support import (
    candles,
    predictions,
    random_scenario,
    settings,
    to_candles,
)
from tests.unit.cycle_support import daemon_cycles
from tests.unit.test_backtest_paper_parity import CASES, daemon_predictions

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def with_risk(config: Settings, symbols: tuple[str, ...] | None = None, **risk: Any) -> Settings:
    data = config.model_dump()
    data["risk"] = risk
    if symbols is not None:
        data["exchange"]["symbols"] = list(symbols)
    return Settings.model_validate(data)


@pytest.mark.parametrize(("seed", "inverse", "exits", "sure", "execution", "strategy"), CASES)
def test_a_guard_that_never_binds_changes_nothing(
    seed: int,
    inverse: bool,
    exits: str,
    sure: float,
    execution: dict[str, Any],
    strategy: dict[str, Any],
) -> None:
    """Through the guarded driver (every rule set, none reached) the trades and the balance are
    those of the unguarded fast path."""
    config = settings(inverse, execution=execution, strategy=strategy)
    market = BTCUSD_PERP if inverse else BTCUSDT_PERP
    frame, preds, funding = random_scenario(seed, 400, inverse=inverse, exits=exits, sure=sure)
    plain = run_backtest(frame, preds, config, funding, market)
    loose = with_risk(
        config,
        max_drawdown_pct="99",
        daily_loss_pct="99",
        stop_loss_streak=1000,
        cooldown_min=1,
        max_gross_exposure_pct="100000",
        max_entries_per_day=100_000,
    )
    guarded = run_backtest(frame, preds, loose, funding, market)
    assert guarded.trades == plain.trades
    assert guarded.final_equity == plain.final_equity
    assert np.array_equal(guarded.equity.equity, plain.equity.equity)
    assert guarded.risk == ()


def losing(sd: str = "0.004") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A market falling 0.2 % a bar, and a model calling long on every bar."""
    price, rows = 20_000.0, []
    for _ in range(300):
        nxt = round(price * 0.998, 1)
        rows.append((str(price), str(price + 5), str(nxt - 5), str(nxt)))
        price = nxt
    frame = candles(*rows)
    preds = predictions(frame, dict.fromkeys(range(300), ("long", 0.9)), sd=sd)
    return frame, preds


def test_steady_losses_trip_the_drawdown_at_the_first_close_beyond_it_and_stop_entries() -> None:
    """From the equity curve: the first bar whose drawdown from the running peak exceeds 3 % is
    the trip, and no trade is entered after it."""
    frame, preds = losing()
    config = with_risk(settings(), max_drawdown_pct="3")
    result = run_backtest(frame, preds, config)
    equity = result.equity.equity
    peak = np.maximum.accumulate(np.concatenate([[float(result.initial_equity)], equity]))[1:]
    beyond = int(np.argmax((peak - equity) / peak > 0.03))
    assert [c.kind for c in result.risk] == ["risk-trip"]
    trip_ms = result.risk[0].at_ms
    assert trip_ms == int(result.equity.open_ms[beyond]) + 300_000
    entries = [datetime_to_ms(t.entry_time) for t in result.trades]
    assert len(entries) >= 3
    assert max(entries) < trip_ms
    assert result.trades[-1].exit_reason != "end_of_data"  # halt: positions keep their stops


def test_flatten_closes_the_position_at_the_trip() -> None:
    """``on_trip = flatten``: the open position closes at the next open after the trip (its
    stop 3 % away, the limit 1 %), and nothing opens after."""
    frame, preds = losing(sd="0.02")
    config = with_risk(settings(), max_drawdown_pct="1", on_trip="flatten")
    result = run_backtest(frame, preds, config)
    trip_ms = result.risk[0].at_ms
    last = result.trades[-1]
    assert datetime_to_ms(last.exit_time) == trip_ms
    assert last.exit_reason == "decision"
    assert all(datetime_to_ms(t.entry_time) < trip_ms for t in result.trades)


def two_symbols(
    seed: int,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], dict[str, Any]]:
    frames, preds, funding = {}, {}, {}
    for symbol, s, scale in ((BTC, seed, 1.0), (ETH, seed + 100, 0.1)):
        frame, pred, rates = random_scenario(s, 500, exits="sd", sure=0.5)
        for col in ("open", "high", "low", "close"):
            frame[col] = (frame[col] * scale).round(2)
        frames[symbol], preds[symbol], funding[symbol] = frame, pred, rates
    return frames, preds, funding


RISKS = [
    {"max_drawdown_pct": "2"},
    {"max_drawdown_pct": "1.5", "on_trip": "flatten"},
    {"daily_loss_pct": "1"},
    {"stop_loss_streak": 2, "cooldown_min": 60},
    {"daily_loss_pct": "0.5", "stop_loss_streak": 1, "cooldown_min": 15, "on_trip": "flatten"},
    {"max_gross_exposure_pct": "200", "max_symbol_exposure_pct": "150", "max_entries_per_day": 9},
]


@pytest.mark.parametrize("seed", [4, 9])
@pytest.mark.parametrize("risk", RISKS)
async def test_two_symbols_trade_alike_in_the_daemon_cycle_and_the_portfolio_backtest(
    tmp_path: Path, risk: dict[str, Any], seed: int
) -> None:
    """The daemon's Cycle (one paper wallet, equal shares, the guard looking at every close) and
    ``run_portfolio`` (the guard looking only where it can change) on the same candles and
    predictions: the same trades, balance and risk events."""
    frames, preds, funding = two_symbols(seed)
    config = with_risk(
        settings(execution={"slippage_bps": "2", "position_fraction": "0.9", "leverage": 3}),
        (BTC, ETH),
        **risk,
    )
    markets = {s: KNOWN_MARKETS[s] for s in (BTC, ETH)}
    result = run_portfolio(frames, preds, config, funding, markets)
    predict = {s: daemon_predictions(preds[s], s) for s in frames}
    trades, balance, events = await daemon_cycles(
        frames, predict, config, markets, funding, tmp_path / "d.db"
    )
    expected = [
        replace(t, exit_reason="decision") if t.exit_reason == "end_of_data" else t
        for t in result.trades
    ]
    assert len(expected) >= 5
    assert {t.symbol for t in expected} == {BTC, ETH}
    assert sorted(trades, key=lambda t: (t.exit_time, t.symbol)) == expected
    assert balance == result.final_equity
    backtest_events = [(c.kind, c.at_ms, getattr(c.trip, "symbol", None)) for c in result.risk]
    assert events == backtest_events
    if "max_gross_exposure_pct" not in risk:
        assert any(kind == "risk-trip" for kind, _, _ in events), "the scenario must trip"


def test_candle_files_over_different_spans_are_an_error_or_aligned() -> None:
    """Different spans: a clear error naming the symbols' spans, or --align's common span."""
    frames, preds, _ = two_symbols(5)
    frames[ETH] = frames[ETH].iloc[20:].reset_index(drop=True)
    config = with_risk(settings(), (BTC, ETH))
    with pytest.raises(InvalidDataError, match="do not cover the same bars"):
        run_portfolio(frames, preds, config)
    aligned = run_portfolio(frames, preds, config, align_spans=True)
    assert aligned.bars == 480


def test_a_symbol_without_market_rules_is_an_error_naming_it() -> None:
    """No bundled rules and none given: refused, never BTC's assumed."""
    frames, preds, _ = two_symbols(6)
    frames["FOO/USDT:USDT"] = frames.pop(ETH)
    config = with_risk(settings(), (BTC, "FOO/USDT:USDT"))
    with pytest.raises(InvalidDataError, match="FOO/USDT:USDT"):
        run_portfolio(frames, preds, config)


async def test_the_daemon_cycle_grades_due_predictions_without_changing_a_trade(
    tmp_path: Path,
) -> None:
    """With the monitor after every cycle the trades still equal the backtest's, and every
    prediction whose 12-bar horizon passed has exactly one outcome."""
    frames, preds, funding = two_symbols(4)
    config = with_risk(settings(execution={"position_fraction": "0.9"}), (BTC, ETH))
    markets = {s: KNOWN_MARKETS[s] for s in (BTC, ETH)}
    result = run_portfolio(frames, preds, config, funding, markets)
    predict = {s: daemon_predictions(preds[s], s) for s in frames}
    trades, _, _ = await daemon_cycles(frames, predict, config, markets, funding, tmp_path / "d.db")
    assert len(trades) == len(result.trades)
    store = Store.open(tmp_path / "d.db")
    first = datetime_to_ms(to_candles(frames[BTC], BTC)[0].open_time)
    bar = timeframe_ms(config.exchange.timeframe)
    last_cycle = len(frames[BTC]) - 2  # the last candle only settles exits
    due = store.query(  # graded at the last cycle: candle T + 12 bars stored by then
        "SELECT COUNT(*) AS n FROM predictions WHERE candle_time <= ?",
        (first + (last_cycle - 12) * bar,),
    )[0]["n"]
    assert due > 0
    assert store.outcome_count() == due
    assert store.query("SELECT COUNT(DISTINCT prediction_id) AS n FROM outcomes")[0]["n"] == due
