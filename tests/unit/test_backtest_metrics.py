"""Report metrics match their definitions on a curve and trades small enough to check by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from tbotd.backtest import BacktestResult, EquityCurve
from tbotd.backtest.metrics import curve_metrics, trade_metrics
from tbotd.domain import Side
from tbotd.domain.markets import BTCUSDT_PERP
from tbotd.store import Trade

T = datetime(2024, 1, 1, tzinfo=UTC)
M5 = timedelta(minutes=5)


def trade(net: str, bars: int, reason: str) -> Trade:
    """A trade whose net result is ``net`` (fees 1, no funding), exiting ``bars`` bars later."""
    return Trade(
        "BTC/USDT:USDT",
        Side.LONG,
        Decimal(1),
        T,
        T + bars * M5,
        Decimal(100),
        Decimal(100),
        reason,
        Decimal(net) + 1,
        Decimal(1),
        Decimal(0),
        "USDT",
    )


def result(equity: list[float], trades: tuple[Trade, ...] = ()) -> BacktestResult:
    n = len(equity)
    return BacktestResult(
        symbol="BTC/USDT:USDT",
        currency="USDT",
        market=BTCUSDT_PERP,
        timeframe="5m",
        bars=n,
        trades=trades,
        equity=EquityCurve(
            np.arange(n, dtype=np.int64) * 300_000, np.array(equity), np.array(equity), np.zeros(n)
        ),
        initial_equity=Decimal(100),
        final_equity=Decimal(repr(equity[-1])),
        fees=Decimal(0),
        funding=Decimal(0),
        funding_payments=0,
        funding_missing=0,
        predictions={},
        confident={},
        bars_without_prediction=0,
    )


def test_curve_metrics_follow_their_definitions() -> None:
    """100 → 110 → 99 → 121: returns 10 %, −10 %, 22.2 % (and 0 for the first bar)."""
    m = curve_metrics(result([100.0, 110.0, 99.0, 121.0]))
    r = np.array([0.0, 0.1, -0.1, 121 / 99 - 1])
    per_year = 105_120
    assert m["bars_per_year"] == per_year
    assert m["total_return"] == pytest.approx(0.21)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(per_year))
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt(0.01 / 4) * math.sqrt(per_year))
    assert m["max_drawdown"] == pytest.approx(0.1)  # 110 → 99
    assert m["cagr"] is None  # 21 % in 20 minutes does not annualise to a finite number


def test_a_year_of_flat_equity_has_no_ratios() -> None:
    """No variation: Sharpe and Sortino are undefined (null), drawdown and return are 0."""
    m = curve_metrics(result([100.0] * 105_120))
    assert (m["sharpe"], m["sortino"], m["max_drawdown"], m["total_return"]) == (None, None, 0, 0)
    assert m["cagr"] == pytest.approx(0.0)


def test_cagr_annualises_over_the_bars() -> None:
    """+10 % over half a year of bars is 21 % a year."""
    m = curve_metrics(result([100.0] * 52_559 + [110.0]))
    assert m["cagr"] == pytest.approx(0.21)


def test_trade_metrics_follow_their_definitions() -> None:
    """Nets +10, −5, +3: win rate 2/3, profit factor 13/5; exposure counts held bars (a stop's
    own bar included) over 20 bars: (2 + 1 + 1) + 3 = 7 → 35 %."""
    trades = (trade("10", 2, "decision"), trade("-5", 1, "stop_loss"), trade("3", 3, "decision"))
    m = trade_metrics(result([100.0] * 20, trades))
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["profit_factor"] == pytest.approx(2.6)
    assert m["exposure"] == pytest.approx(7 / 20)
    assert m["trades_by_exit_reason"] == {"decision": 2, "stop_loss": 1}
    assert m["net_pnl"] == "8"
    none = trade_metrics(result([100.0] * 20))
    assert (none["win_rate"], none["profit_factor"], none["exposure"]) == (None, None, 0)
