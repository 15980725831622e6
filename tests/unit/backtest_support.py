"""Shared by the backtest tests: configs, hand-written candles, random scenarios and the paper
cycle driven through :class:`tbotd.execution.paper.PaperBroker` and the daemon's strategy seam
(``build_strategy`` → ``Session.decide``, as :class:`tbotd.daemon.cycle.Cycle` calls it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tbotd.config.settings import Settings
from tbotd.domain import Candle, MarketSpec, Prediction
from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.execution.broker import PriceRef
from tbotd.execution.executor import execute
from tbotd.execution.paper import PaperBroker
from tbotd.execution.paper_model import FillParams
from tbotd.ops.clock import ManualClock
from tbotd.store import Store, Trade
from tbotd.strategy.build import build_strategy, exit_params
from tbotd.strategy.rules import ENTRY_WINDOW, DecisionInput
from tests.synthetic import random_walk

T0 = datetime(2024, 3, 4, 7, 30, tzinfo=UTC)  # the 07:55 candle closes on the 08:00 funding time
STEP = timedelta(minutes=5)
LINEAR_SYMBOL, INVERSE_SYMBOL = "BTC/USDT:USDT", "BTC/USD:BTC"


def settings(inverse: bool = False, **sections: dict[str, Any]) -> Settings:
    """A config like the shipped ones (no slippage unless asked), with section overrides."""
    strategy: dict[str, Any] = {
        "mode": "ml_btc_directional" if inverse else "ml_usdt_directional",
        "share_class": "BTC" if inverse else "USDT",
        "initial_capital": "1" if inverse else "10000",
        "threshold": 0.7,
    }
    execution: dict[str, Any] = {"slippage_bps": "0", "taker_fee_bps": "5"}
    strategy.update(sections.get("strategy", {}))
    execution.update(sections.get("execution", {}))
    return Settings.model_validate(
        {
            "exchange": {
                "id": "binancecoinm" if inverse else "binanceusdm",
                "market_type": "inverse" if inverse else "linear",
                "symbols": [INVERSE_SYMBOL if inverse else LINEAR_SYMBOL],
            },
            "strategy": strategy,
            "execution": execution,
        }
    )


# strategy sections of every kind, with parameters that trade often on short random histories
MEAN_REVERSION = {
    "name": "mean_reversion",
    "bollinger_window_bars": 12,
    "bollinger_width_sd": 1.0,
    "rsi_window_bars": 6,
    "rsi_oversold": 45.0,
    "rsi_overbought": 55.0,
}
MOMENTUM = {"name": "momentum", "fast_ema_bars": 4, "slow_ema_bars": 15, "atr_window_bars": 6}
KINDS: dict[str, dict[str, Any]] = {
    "ml_directional": {},
    "classic_mean_reversion": {"kind": "classic", "classic": MEAN_REVERSION, "threshold": 0.55},
    "classic_momentum": {"kind": "classic", "classic": MOMENTUM, "threshold": 0.3},
    "boost": {
        "kind": "ml_enhanced",
        "classic": MEAN_REVERSION,
        "enhance": {"mode": "boost", "confidence_threshold": 0.6},
        "threshold": 0.6,
    },
    "filter": {
        "kind": "ml_enhanced",
        "classic": MOMENTUM,
        "enhance": {"mode": "filter", "confidence_threshold": 0.5},
        "threshold": 0.3,
    },
    "filter_fail_open": {
        "kind": "ml_enhanced",
        "classic": MEAN_REVERSION,
        "enhance": {"mode": "filter", "fail_open": True, "confidence_threshold": 0.8},
        "threshold": 0.55,
    },
    "replace": {
        "kind": "ml_enhanced",
        "classic": MEAN_REVERSION,
        "enhance": {"mode": "replace"},
        "threshold": 0.6,
    },
    "replace_all_bars": {
        "kind": "ml_enhanced",
        "classic": MOMENTUM,
        "enhance": {"mode": "replace", "replace_on": "all_bars", "confidence_threshold": 0.75},
        "threshold": 0.7,
    },
    "hybrid": {
        "kind": "ml_enhanced",
        "classic": MOMENTUM,
        "enhance": {"mode": "hybrid", "ml_weight": 0.5},
        "threshold": 0.35,
    },
    "ml_momentum": {"kind": "ml_momentum", "threshold": 0.5},
    "ml_mean_reversion": {
        "kind": "ml_mean_reversion",
        "threshold": 0.7,
        "ml_mean_reversion": {"min_sideways": 0.45},
    },
}


def candles(*rows: tuple[str, str, str, str], start: datetime = T0) -> pd.DataFrame:
    """A candle frame from (open, high, low, close) rows, 5 minutes apart from ``start``."""
    t0 = datetime_to_ms(start)
    return pd.DataFrame(
        {
            "open_time": [t0 + i * 300_000 for i in range(len(rows))],
            "open": [float(r[0]) for r in rows],
            "high": [float(r[1]) for r in rows],
            "low": [float(r[2]) for r in rows],
            "close": [float(r[3]) for r in rows],
            "volume": [1.0] * len(rows),
        }
    )


def predictions(
    frame: pd.DataFrame, calls: dict[int, tuple[str, float]], **extra: Any
) -> pd.DataFrame:
    """Prediction rows for the bars in ``calls`` ({bar: (signal, confidence)}) plus columns."""
    bars = sorted(calls)
    out = pd.DataFrame(
        {
            "timestamp": [int(frame["open_time"].iloc[b]) for b in bars],
            "signal": [calls[b][0] for b in bars],
            "confidence": [calls[b][1] for b in bars],
        }
    )
    for name, values in extra.items():
        out[name] = [values.get(b, "") if isinstance(values, dict) else values for b in bars]
    return out


def random_scenario(
    seed: int,
    n: int,
    inverse: bool = False,
    exits: str = "sd",
    sure: float = 0.5,
    grid: float = 0.1,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, Decimal]]:
    """Candles (prices on a ``grid``: a coarse one makes candles touch TP/SL levels exactly),
    predictions of every kind (a ``sure`` share confident at 0.7) and funding with holes."""
    rng = np.random.default_rng(seed)
    frame = random_walk(n, seed=seed, vol=0.004, start_ms=datetime_to_ms(T0))
    prices = ["open", "high", "low", "close"]
    frame[prices] = ((frame[prices] / grid).round() * grid).round(1)
    frame["high"] = frame[["open", "high", "close"]].max(axis=1)
    frame["low"] = frame[["open", "low", "close"]].min(axis=1)
    keep = rng.random(n) < 0.9  # some candles have no prediction at all
    signal = rng.choice(["long", "short", "neutral", "hold"], size=n, p=[0.35, 0.35, 0.2, 0.1])
    conf = np.round(
        np.where(rng.random(n) < sure, rng.uniform(0.7, 1, n), rng.uniform(0.3, 0.7, n)), 3
    )
    conf[rng.random(n) < sure / 10] = 0.7  # exactly at the threshold
    preds = pd.DataFrame({"timestamp": frame["open_time"], "signal": signal, "confidence": conf})
    close = frame["close"].to_numpy()
    if exits in ("sd", "wide"):
        top = 0.2 if exits == "wide" else 0.06
        sd = np.round(rng.uniform(0.0005, top, n), 5).astype(object)
        sd[rng.random(n) < 0.2] = ""  # fixed exits
        preds["sd"] = sd
    elif exits == "absolute":  # absolute prices, sometimes on the wrong side of the next fill
        sign = np.where(signal == "short", -1.0, 1.0)
        preds["stop_loss"] = np.round(close * (1 - sign * rng.uniform(-0.002, 0.02, n)), 1)
        preds["take_profit"] = np.round(close * (1 + sign * rng.uniform(-0.002, 0.03, n)), 1)
    for name, values in model_columns(seed, n, preds.get("sd")).items():
        preds[name] = values
    preds = preds[keep].reset_index(drop=True)
    funding = {
        int(t) + 300_000: Decimal(str(round(float(r), 6)))
        for t, r in zip(frame["open_time"], rng.normal(0.0001, 0.0003, n), strict=True)
        if (int(t) + 300_000) % 28_800_000 == 0 and rng.random() < 0.8
    }
    return frame, preds, funding


def model_columns(seed: int, n: int, sd: pd.Series | None) -> dict[str, Any]:
    """Each model's answer per row (drawn from a generator of their own, so the scenario's other
    columns stay what they were): a latent lean the direction model states with a strength, the
    price model follows where the row has an ``sd``, and the regime model in blocks of trending
    and sideways bars; every column can be read as the pure ML kinds need it."""
    rng = np.random.default_rng([seed, 17])
    lean = rng.choice([0, 1, 2], size=n, p=[0.4, 0.2, 0.4])
    strength = np.round(rng.uniform(0.34, 0.95, n), 3)
    other = np.round((1 - strength) * rng.uniform(0, 1, n), 3)
    direction = np.zeros((n, 3))
    rows = np.arange(n)
    direction[rows, lean] = strength
    direction[rows, (lean + 1) % 3] = other
    direction[rows, (lean + 2) % 3] = np.round(1 - strength - other, 3)
    trend = np.repeat(rng.random(n // 20 + 1) < 0.5, 20)[:n]
    mass = np.round(np.where(trend, rng.uniform(0.45, 0.95, n), rng.uniform(0.05, 0.55, n)), 3)
    up = np.round(mass * np.where(lean == 2, 0.8, 0.2), 3)
    out: dict[str, Any] = {
        "p_down": direction[:, 0],
        "p_neutral": direction[:, 1],
        "p_up": direction[:, 2],
        "regime_down": np.round(mass - up, 3),
        "regime_sideways": np.round(1 - mass, 3),
        "regime_up": up,
    }
    if sd is not None:
        ret = np.round((lean - 1) * rng.uniform(0.0, 0.006, n) + rng.normal(0, 0.001, n), 5)
        out["expected_return"] = np.where(sd.to_numpy() == "", "", ret.astype(str))
    return out


def to_candles(frame: pd.DataFrame, symbol: str) -> list[Candle]:
    """The daemon's candles for a frame (prices as the shortest decimal of each float)."""
    return [
        Candle(
            symbol,
            "5m",
            ms_to_datetime(int(r.open_time)),
            repr(float(r.open)),
            repr(float(r.high)),
            repr(float(r.low)),
            repr(float(r.close)),
            repr(float(r.volume)),
        )
        for r in frame.itertuples()
    ]


async def paper_cycle(
    frame: pd.DataFrame,
    predict: dict[int, Prediction | None],
    config: Settings,
    market: MarketSpec,
    funding: dict[int, Decimal],
    db: Path,
) -> tuple[list[Trade], Decimal]:
    """The daemon's paper cycle through PaperBroker: per candle, settle it, then let the config's
    strategy decide at its close (over the candles so far and the candle's prediction; ``predict``:
    {open ms: Prediction, or None where none came}) with the next open as the price."""
    symbol = market.symbol
    bars = to_candles(frame, symbol)
    clock = ManualClock(bars[0].open_time)
    price: dict[str, PriceRef] = {}

    async def rate(_symbol: str, at: datetime) -> Decimal | None:
        return funding.get(datetime_to_ms(at))

    ex = config.execution
    store = Store.open(db)
    broker = PaperBroker(
        store=store,
        markets={symbol: market},
        params=FillParams(
            slippage_bps=ex.slippage_bps,
            taker_fee_bps=ex.taker_fee_bps,
            leverage=Decimal(ex.leverage),
        ),
        currency=config.strategy.share_class,
        initial_balance=config.strategy.initial_capital,
        instance="parity",
        clock=clock,
        prices=lambda _s: price["ref"],
        funding=rate,
        fallback_exits=exit_params(config),
    )
    await broker.start()
    session = build_strategy(config).session()
    for i, candle in enumerate(bars):
        await clock.set(candle.close_time)
        await broker.on_closed_candle(candle)
        if i + 1 == len(bars):
            break
        nxt = bars[i + 1]
        price["ref"] = PriceRef(nxt.open, nxt.open_time)
        key = datetime_to_ms(candle.open_time)
        position = (await broker.positions()).get(symbol)
        equity = (await broker.equity()).total
        since = candle.open_time - ENTRY_WINDOW
        entries = store.entries_decided(symbol, since, candle.open_time)
        inp = DecisionInput(symbol, predict.get(key), position, equity, nxt.open, market, entries)
        decision = session.decide(inp, bars[: i + 1])
        store.record_decision(
            symbol, candle.open_time, decision.actions, candle.close_time, decision.trace
        )
        await execute(broker, decision.actions, candle.open_time)
    last = bars[-1]
    price["ref"] = PriceRef(last.close, last.close_time)
    await broker.close_position(symbol, "end of data", last.open_time)
    balance = (await broker.equity()).balance
    trades = store.trades()
    store.close()
    return trades, balance
