"""``run_portfolio``: several symbols backtested from one wallet, as the daemon trades them.

Each symbol gets the config's strategy over its own candles and predictions and its own market
rules; they share one wallet, each decision is sized from an equal share of the book's equity,
and the config's risk guard watches the whole book (:mod:`tbotd.backtest.portfolio`). The
candle files must cover the same bars (``align=True`` cuts them to their common span first).
No I/O, no clock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

import numpy as np
import pandas as pd

from tbotd.backtest.engine import Progress, Simulator
from tbotd.backtest.portfolio import Portfolio
from tbotd.backtest.predictions import PredictionTable, ml_inputs, with_meta
from tbotd.backtest.predictions_csv import prediction_table
from tbotd.backtest.run import (
    BacktestResult,
    EquityCurve,
    Inputs,
    _candles,
    _funding,
    _text,
    check_settlement,
    leg_result,
    prediction_rows,
)
from tbotd.backtest.state import Book, Candles
from tbotd.config.settings import Settings
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import MarketSpec
from tbotd.domain.markets import market_spec
from tbotd.domain.values import ms_to_datetime
from tbotd.execution import paper_model as pm
from tbotd.ml.data import CandleData
from tbotd.risk.guard import Change, RiskLimits
from tbotd.store.wallet import Trade
from tbotd.strategy.build import build_strategy

CandleInput: TypeAlias = CandleData | pd.DataFrame
PredictionInput: TypeAlias = PredictionTable | pd.DataFrame | None
FundingInput: TypeAlias = Mapping[int, Decimal] | pd.DataFrame | None


@dataclass(frozen=True)
class PortfolioResult:
    """The book (equity, money) and each symbol's part (its trades; its equity curve is what it
    added to the book: PnL, fees and funding, unrealised included)."""

    symbols: tuple[str, ...]
    legs: tuple[BacktestResult, ...]
    equity: EquityCurve
    currency: str
    initial_equity: Decimal
    final_equity: Decimal
    fees: Decimal
    funding: Decimal
    risk: tuple[Change, ...]
    bars: int
    seconds: float
    strategy: str

    @property
    def trades(self) -> tuple[Trade, ...]:
        """Every symbol's trades, by exit time (then symbol)."""
        every = [t for leg in self.legs for t in leg.trades]
        return tuple(sorted(every, key=lambda t: (t.exit_time, t.symbol)))


def align(bars: Mapping[str, Candles], *, common: bool) -> dict[str, Candles]:
    """The symbols' candles on one grid: the same bars, or (``common``) cut to the span they all
    cover; anything else is an error naming each symbol's span."""
    spans = {s: (int(c.open_ms[0]), int(c.open_ms[-1])) for s, c in bars.items() if len(c)}
    if len(spans) < len(bars):
        empty = sorted(set(bars) - set(spans))
        raise InvalidDataError(f"no candles for {', '.join(empty)}")
    if common:
        lo = max(a for a, _ in spans.values())
        hi = min(b for _, b in spans.values())
        if lo > hi:
            raise InvalidDataError(f"the candle files share no span: {_spans(spans)}")
        bars = {s: _cut(c, lo, hi) for s, c in bars.items()}
    grids = list(bars.values())
    for symbol, c in bars.items():
        if len(c) != len(grids[0]) or not np.array_equal(c.open_ms, grids[0].open_ms):
            raise InvalidDataError(
                f"the candle files do not cover the same bars ({symbol} differs): "
                f"{_spans(spans)}; pass --align to use the span they share"
            )
    return dict(bars)


def _spans(spans: Mapping[str, tuple[int, int]]) -> str:
    return "; ".join(
        f"{s} {ms_to_datetime(a).isoformat()} to {ms_to_datetime(b).isoformat()}"
        for s, (a, b) in sorted(spans.items())
    )


def _cut(c: Candles, lo: int, hi: int) -> Candles:
    keep = (c.open_ms >= lo) & (c.open_ms <= hi)
    return Candles(
        c.open_ms[keep],
        c.open[keep],
        c.high[keep],
        c.low[keep],
        c.close[keep],
        c.volume[keep],
        c.timeframe,
    )


def run_portfolio(
    candles: Mapping[str, CandleInput],
    predictions: Mapping[str, PredictionInput],
    settings: Settings,
    funding: Mapping[str, FundingInput] | None = None,
    markets: Mapping[str, MarketSpec] | None = None,
    *,
    max_prediction_age: int = 0,
    warmup_bars: int = 0,
    align_spans: bool = False,
    limits: RiskLimits | None = None,
    progress: Progress | None = None,
) -> PortfolioResult:
    """Backtest every symbol of ``candles`` from one wallet (see the module docstring).

    ``markets`` defaults to the bundled rules of each symbol (an unknown symbol is an error
    naming it); ``limits`` to the config's ``[risk]``.
    """
    started = time.perf_counter()
    if not candles:
        raise InvalidDataError("no symbols to backtest")
    tf = settings.exchange.timeframe
    bars = align({s: _candles(c, tf) for s, c in candles.items()}, common=align_spans)
    strategy = build_strategy(settings)
    wallet = pm.Wallet(settings.strategy.share_class, settings.strategy.initial_capital)
    book = Book(wallet) if len(bars) > 1 else None
    sims, parts = [], []
    for symbol in sorted(bars):
        market = (markets or {}).get(symbol) or market_spec(symbol, settings.exchange.market_type)
        check_settlement(market, settings)
        raw = predictions.get(symbol)
        table = (
            prediction_table(_text(raw), f"predictions {symbol}", first_line=0)
            if isinstance(raw, pd.DataFrame)
            else raw
        )
        leg = bars[symbol]
        if table is not None and align_spans:
            table = table.within(int(leg.open_ms[0]), int(leg.open_ms[-1]))
        rows = prediction_rows(table, leg, max_prediction_age)
        ml = with_meta([strategy], ml_inputs(table, rows), leg)
        series = strategy.series(leg.high, leg.low, leg.close, ml)
        series = series.warming_up(warmup_bars)
        inputs = Inputs(leg, table, rows, market, _funding((funding or {}).get(symbol)))
        sim = Simulator(leg, series, strategy, settings, market, inputs.funding, book=book)
        sims.append(sim)
        parts.append((sim, inputs, series))
    limits = settings.risk.limits() if limits is None else limits
    runner = Portfolio(sims, limits, warmup_bars)
    runner.run(progress)
    risk = tuple(runner.changes)
    legs = tuple(leg_result(s, i, settings, strategy, r, started, risk) for s, i, r in parts)
    first = sims[0]
    initial = settings.strategy.initial_capital
    base = float(initial) if book is not None else 0.0
    curve = EquityCurve(
        first.c.open_ms,
        base + sum((leg.equity.equity for leg in legs), np.zeros(first.n)),
        base + sum((leg.equity.balance for leg in legs), np.zeros(first.n)),
        np.zeros(first.n),
    )
    return PortfolioResult(
        symbols=tuple(s.symbol for s in sims),
        legs=legs,
        equity=curve,
        currency=first.wallet.currency,
        initial_equity=initial,
        final_equity=first.wallet.balance,
        fees=sum((s.fees for s in sims), Decimal(0)),
        funding=sum((s.funding for s in sims), Decimal(0)),
        risk=risk,
        bars=first.n,
        seconds=time.perf_counter() - started,
        strategy=strategy.name,
    )
