"""The numbers of ``report.json``, each defined once here (and in README and the report itself).

Ratios come from the per-bar equity curve (float64); money (initial and final equity, fees,
funding, PnL) comes from the exact Decimal ledger and is written as decimal text.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np

from tbotd.backtest.run import BacktestResult
from tbotd.domain.values import timeframe_ms
from tbotd.store.wallet import Trade

YEAR_MS = 365 * 24 * 3_600_000
TRIGGERED = frozenset({"stop_loss", "take_profit", "liquidation"})
REPORT_VERSION = 1

DEFINITIONS = {
    "equity": "wallet balance + unrealised PnL at each candle's close, after that candle's exits "
    "and funding; the last bar includes the end-of-data close",
    "total_return": "final_equity / initial_equity - 1 (exact ledger)",
    "cagr": "(final_equity / initial_equity) ** (1 / years) - 1, years = bars / bars_per_year",
    "sharpe": "mean / standard deviation (ddof 1) of per-bar equity returns, times "
    "sqrt(bars_per_year); risk-free rate 0; null when returns never vary",
    "sortino": "mean per-bar return / sqrt(mean(min(return, 0)^2)), times sqrt(bars_per_year); "
    "null without a losing bar",
    "bars_per_year": "24/7 markets: 365 days of bars (105,120 five-minute bars)",
    "max_drawdown": "largest fall of equity from its running peak (the initial equity included), "
    "as a fraction of that peak",
    "win_rate": "share of trades whose net (pnl - fees + funding) is above zero",
    "profit_factor": "sum of winning trades' net / |sum of losing trades' net|; null without a "
    "losing trade",
    "exposure": "share of bars during which a position was open (the bar of a stop, target or "
    "liquidation counts; a position closed by a decision leaves at the next bar's open)",
    "fees": "taker fees of every entry and exit, settlement currency",
    "funding": "funding received (+) or paid (-) in total, settlement currency",
    "trades": "closed positions; one still open at the end is closed at the last close "
    "(exit_reason end_of_data, with slippage and fee)",
}


def bars_per_year(timeframe: str) -> float:
    """Bars in a 365-day year of a market that never closes."""
    return YEAR_MS / timeframe_ms(timeframe)


def _returns(equity: np.ndarray, initial: float) -> np.ndarray:
    before = np.concatenate([[initial], equity[:-1]])
    out = np.zeros(len(equity))
    np.divide(equity, before, out=out, where=before > 0)
    return np.where(before > 0, out - 1.0, 0.0)


def curve_metrics(result: BacktestResult) -> dict[str, Any]:
    """Sharpe, Sortino, max drawdown and CAGR from the equity curve and the exact ledger."""
    initial = float(result.initial_equity)
    equity = result.equity.equity
    r = _returns(equity, initial)
    per_year = bars_per_year(result.timeframe)
    sd = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    mean = float(r.mean())
    path = np.concatenate([[initial], equity])
    peak = np.maximum.accumulate(path)
    drawdown = np.where(peak > 0, 1.0 - path / peak, 0.0)
    growth = result.final_equity / result.initial_equity
    years = result.bars / per_year
    cagr: float | None = -1.0
    if growth > 0:
        log_rate = math.log(float(growth)) / years
        cagr = math.expm1(log_rate) if log_rate < 700 else None  # a few bars can't annualise
    return {
        "total_return": float(growth - 1),
        "cagr": cagr,
        "sharpe": mean / sd * math.sqrt(per_year) if sd > 0 else None,
        "sortino": mean / downside * math.sqrt(per_year) if downside > 0 else None,
        "max_drawdown": float(drawdown.max()),
        "bars_per_year": per_year,
        "years": years,
    }


def bars_held(trade: Trade, step_ms: int) -> int:
    """Bars during which ``trade`` was open (see ``exposure``)."""
    span = (trade.exit_time - trade.entry_time).total_seconds() * 1000 // step_ms
    return int(span) + (1 if trade.exit_reason in TRIGGERED else 0)


def trade_metrics(result: BacktestResult) -> dict[str, Any]:
    """Win rate, profit factor, exposure and breakdowns of the closed trades."""
    trades = result.trades
    nets = [t.net for t in trades]
    wins = sum((n for n in nets if n > 0), Decimal(0))
    losses = sum((n for n in nets if n < 0), Decimal(0))
    step = timeframe_ms(result.timeframe)
    held = sum(bars_held(t, step) for t in trades)
    return {
        "win_rate": sum(1 for n in nets if n > 0) / len(nets) if nets else None,
        "profit_factor": float(wins / -losses) if losses < 0 else None,
        "exposure": min(held / result.bars, 1.0) if result.bars else 0.0,
        "trades_by_side": dict(Counter(str(t.side) for t in trades)),
        "trades_by_exit_reason": dict(Counter(t.exit_reason for t in trades)),
        "gross_pnl": str(sum((t.pnl for t in trades), Decimal(0))),
        "net_pnl": str(sum(nets, Decimal(0))),
        "average_trade_net": str(sum(nets, Decimal(0)) / len(nets)) if nets else None,
        "best_trade_net": str(max(nets)) if nets else None,
        "worst_trade_net": str(min(nets)) if nets else None,
        "average_bars_held": held / len(trades) if trades else None,
    }
