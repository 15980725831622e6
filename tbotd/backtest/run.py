"""``run_backtest``: the paper cycle over history, as a pure function of its inputs.

This is the entry point for ``tbotd backtest`` and for parity tests against the daemon: give it
the candles, the predictions, the config and (optionally) funding rates and it returns the
trades (:class:`tbotd.store.wallet.Trade`, the rows the daemon's store keeps), the exact final
balance, fees and funding, a per-bar equity curve, the decisions that acted (with where each
came from) and counts. The strategy is the config's (``build_strategy``) unless one is given.
No I/O, no clock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from tbotd.backtest.drive import run_fast, run_reference
from tbotd.backtest.engine import Progress, Simulator
from tbotd.backtest.portfolio import Portfolio
from tbotd.backtest.predictions import PredictionTable, ml_inputs, with_meta
from tbotd.backtest.predictions_csv import prediction_table
from tbotd.backtest.state import Candles, Decided, Deferred, each_decision
from tbotd.config.settings import Settings
from tbotd.domain.actions import Action, DecisionTrace
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import MarketSpec
from tbotd.domain.markets import market_spec
from tbotd.domain.values import timeframe_ms
from tbotd.marketdata.funding_csv import funding_rates
from tbotd.ml.data import CandleData, validate_frame
from tbotd.risk.guard import Change, RiskLimits
from tbotd.store.wallet import Trade
from tbotd.strategy.build import build_strategy
from tbotd.strategy.signal import SignalSeries
from tbotd.strategy.strategy import Strategy


@dataclass(frozen=True)
class EquityCurve:
    """Per candle, at its close after its exits and funding: equity (balance + unrealised PnL at
    the close), balance and the signed position in contracts. float64, for curves and ratios."""

    open_ms: NDArray[np.int64]
    equity: NDArray[np.float64]
    balance: NDArray[np.float64]
    position: NDArray[np.float64]

    def frame(self) -> pd.DataFrame:
        """As a DataFrame with an ISO time column."""
        return pd.DataFrame(
            {
                "timestamp": self.open_ms,
                "time": pd.to_datetime(self.open_ms, unit="ms", utc=True).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "equity": self.equity,
                "balance": self.balance,
                "position": self.position,
            }
        )


Traced = tuple[Strategy, SignalSeries, NDArray[np.int64]]  # what the records are built from


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision that acted or was refused: the candle it was made after (open time, ms), its
    actions and where its signal came from."""

    open_ms: int
    actions: tuple[Action, ...]
    trace: DecisionTrace


@dataclass(frozen=True)
class BacktestResult:
    """Everything a backtest produced; money fields are exact Decimals."""

    symbol: str
    currency: str
    market: MarketSpec
    timeframe: str
    bars: int
    trades: tuple[Trade, ...]
    equity: EquityCurve
    initial_equity: Decimal
    final_equity: Decimal
    fees: Decimal
    funding: Decimal
    funding_payments: int
    funding_missing: int  # funding times with an open position but no rate in the funding data
    predictions: dict[str, int]  # rows by signal (long/short/neutral/hold)
    confident: dict[str, int]  # rows at or above the threshold, by signal
    bars_without_prediction: int
    skipped: dict[str, int] = field(default_factory=dict)
    exits_fallback: int = 0  # entries whose TP/SL fell back to the fixed percentages
    exact_steps: int = 0  # bars that ran the exact Decimal step (all of them for the reference)
    risk: tuple[Change, ...] = ()  # the risk guard's trips and resets, in order
    seconds: float = 0.0
    strategy: str = ""
    decided: tuple[Decided | Deferred, ...] = field(default=(), repr=False, compare=False)
    traced: Traced | None = field(default=None, repr=False, compare=False)

    @cached_property
    def decisions(self) -> tuple[DecisionRecord, ...]:
        """Every decision that acted or was refused, with where its signal came from (built on
        first use: a busy year has tens of thousands)."""
        if self.traced is None:
            return ()
        strategy, series, open_ms = self.traced
        return tuple(
            DecisionRecord(int(open_ms[bar]), actions, strategy.trace(series, bar))
            for bar, actions in each_decision(self.decided)
        )


def candle_arrays(data: CandleData | pd.DataFrame, timeframe: str) -> Candles:
    """Validated candles as the simulator's arrays (a frame is checked as a CSV would be)."""
    return _candles(data, timeframe)


def _candles(data: CandleData | pd.DataFrame, timeframe: str) -> Candles:
    if isinstance(data, pd.DataFrame):
        raw = data.rename(columns={"open_time": "timestamp"})
        data = validate_frame(raw, "candles", first_line=0, unit="row")
    if data.timeframe != timeframe:
        raise InvalidDataError(
            f"{data.source}: candles are {data.timeframe} apart but the config trades {timeframe}"
        )
    f = data.frame

    def col(name: str) -> NDArray[np.float64]:
        return np.asarray(f[name].to_numpy(np.float64), dtype=np.float64)

    return Candles(
        f["open_time"].to_numpy(np.int64),
        col("open"),
        col("high"),
        col("low"),
        col("close"),
        col("volume"),
        timeframe,
    )


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells as text the CSV readers check (NaN/None → empty), for frames given in code."""
    return frame.astype(object).where(frame.notna(), "").astype(str)


def _funding(funding: Mapping[int, Decimal] | pd.DataFrame | None) -> Mapping[int, Decimal]:
    if funding is None:
        return {}
    if isinstance(funding, pd.DataFrame):
        return funding_rates(_text(funding), "funding", first_line=0)
    return funding


def run_backtest(
    candles: CandleData | pd.DataFrame,
    predictions: PredictionTable | pd.DataFrame | None,
    settings: Settings,
    funding: Mapping[int, Decimal] | pd.DataFrame | None = None,
    market: MarketSpec | None = None,
    *,
    max_prediction_age: int = 0,
    progress: Progress | None = None,
    reference: bool = False,
    strategy: Strategy | None = None,
    series: SignalSeries | None = None,
    protect: bool = True,
    warmup_bars: int = 0,
) -> BacktestResult:
    """Replay the paper cycle over ``candles`` (see the module docstring and README).

    ``candles``: validated :class:`~tbotd.ml.data.CandleData` or a frame with ``open_time`` (epoch
    ms) and float OHLCV. ``predictions``: a :class:`PredictionTable` or a frame with the CSV
    columns; ``None`` runs with no predictions (ML never has an opinion). ``funding``: rates by
    funding time in epoch ms, or a ``timestamp,funding_rate`` frame. ``market`` defaults to the
    built-in rules of the config's first symbol. ``max_prediction_age`` N > 0 lets a prediction
    up to N bars old stand in when the candle's own is missing. ``reference=True`` runs every bar
    through the exact step (slow; what the fast path is tested against). ``strategy`` (default:
    the config's) and ``series`` (default: computed from the candles and predictions) let
    ``--compare`` share what its arms have in common; ``protect=False`` places no TP/SL.
    ``warmup_bars`` N: the first N candles only warm the indicators up, nothing is decided on
    them (as the history a daemon loads before its first cycle).
    """
    started = time.perf_counter()
    if market is None:
        market = market_spec(settings.exchange.symbols[0], settings.exchange.market_type)
    if max_prediction_age < 0:
        raise InvalidDataError(f"max_prediction_age must not be negative ({max_prediction_age})")
    bars = _candles(candles, settings.exchange.timeframe)
    table = (
        prediction_table(_text(predictions), "predictions", first_line=0)
        if isinstance(predictions, pd.DataFrame)
        else predictions
    )
    rows = prediction_rows(table, bars, max_prediction_age)
    strategy = build_strategy(settings) if strategy is None else strategy
    if series is None:
        ml = with_meta([strategy], ml_inputs(table, rows), bars)
        series = strategy.series(bars.high, bars.low, bars.close, ml)
    if warmup_bars < 0:
        raise InvalidDataError(f"warmup_bars must not be negative ({warmup_bars})")
    series = series.warming_up(warmup_bars)
    inputs = Inputs(bars, table, rows, market, _funding(funding))
    return simulate(
        inputs,
        settings,
        strategy,
        series,
        progress=progress,
        reference=reference,
        protect=protect,
        started=started,
        first_bar=warmup_bars,
    )


@dataclass(frozen=True)
class Inputs:
    """What every arm of a run shares: candles, predictions (and the row each bar sees), the
    market's rules and the funding rates."""

    bars: Candles
    table: PredictionTable | None
    rows: NDArray[np.int64]
    market: MarketSpec
    funding: Mapping[int, Decimal]


def prediction_rows(
    table: PredictionTable | None, bars: Candles, max_prediction_age: int
) -> NDArray[np.int64]:
    """The prediction row the daemon would have had after each bar closed (-1: none)."""
    if table is None:
        return np.full(len(bars), -1, dtype=np.int64)
    return table.rows_for(bars.open_ms, timeframe_ms(bars.timeframe), max_prediction_age)


def simulate(
    inputs: Inputs,
    settings: Settings,
    strategy: Strategy,
    series: SignalSeries,
    *,
    progress: Progress | None = None,
    reference: bool = False,
    protect: bool = True,
    started: float | None = None,
    first_bar: int = 0,
    limits: RiskLimits | None = None,
) -> BacktestResult:
    """One run of ``strategy`` (whose signal is ``series``) over ``inputs``, with the config's
    risk guard (or ``limits``) from bar ``first_bar`` on."""
    started = time.perf_counter() if started is None else started
    check_settlement(inputs.market, settings)
    sim = Simulator(
        inputs.bars, series, strategy, settings, inputs.market, inputs.funding, protect=protect
    )
    limits = settings.risk.limits() if limits is None else limits
    risk: tuple[Change, ...] = ()
    if limits.active:
        book = Portfolio([sim], limits, first_bar)
        book.run(progress)
        risk = tuple(book.changes)
    elif reference:
        run_reference(sim)
    else:
        run_fast(sim, progress)
    return leg_result(sim, inputs, settings, strategy, series, started, risk)


def check_settlement(market: MarketSpec, settings: Settings) -> None:
    """A market settling in another currency than the config accounts in cannot be run."""
    if market.settle != settings.strategy.share_class:
        raise InvalidDataError(
            f"{market.symbol} settles in {market.settle}, the config accounts in "
            f"{settings.strategy.share_class}"
        )


def leg_result(
    sim: Simulator,
    inputs: Inputs,
    settings: Settings,
    strategy: Strategy,
    series: SignalSeries,
    started: float,
    risk: tuple[Change, ...] = (),
) -> BacktestResult:
    """What one symbol's simulator produced, as a result."""
    bars, table, rows, market = inputs.bars, inputs.table, inputs.rows, inputs.market
    threshold = settings.strategy.threshold
    return BacktestResult(
        symbol=market.symbol,
        currency=sim.wallet.currency,
        market=market,
        timeframe=bars.timeframe,
        bars=len(bars),
        trades=tuple(sim.trades),
        equity=EquityCurve(bars.open_ms, sim.equity(), sim.balance.copy(), sim.sign * sim.qty),
        initial_equity=sim.initial if sim.own_wallet else Decimal(0),
        final_equity=sim.wallet.balance if sim.own_wallet else sim.cash,
        fees=sim.fees,
        funding=sim.funding,
        funding_payments=sim.funding_payments,
        funding_missing=sim.funding_missing,
        predictions=table.counts() if table is not None else {},
        confident=table.counts(threshold) if table is not None else {},
        bars_without_prediction=int(np.count_nonzero(rows < 0)),
        skipped=dict(sim.skipped),
        exits_fallback=sim.exits_fallback,
        exact_steps=sim.exact_steps,
        seconds=time.perf_counter() - started,
        strategy=strategy.name,
        decided=tuple(sim.decided),
        traced=(strategy, series, bars.open_ms),
        risk=risk,
    )
