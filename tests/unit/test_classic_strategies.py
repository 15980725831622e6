"""Classic strategies: the daemon's streamed indicators equal the backtest's batch ones bit for
bit, setups and exits follow their rules, and a short history abstains (warm-up)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tbotd.domain.actions import Reason
from tbotd.domain.market import Candle
from tbotd.features.definitions import FEATURE_SCHEMA_HASH
from tbotd.strategy.classic import (
    MeanReversion,
    MeanReversionParams,
    Momentum,
    MomentumParams,
    Tracker,
    with_previous,
)
from tbotd.strategy.classic.base import ClassicStrategy
from tbotd.strategy.signal import ABSTAIN, BIT, FLAT, LONG, SHORT
from tests.synthetic import random_walk

YEAR = 105_120
STRATEGIES: list[ClassicStrategy] = [
    MeanReversion(MeanReversionParams()),
    Momentum(MomentumParams()),
    MeanReversion(MeanReversionParams(50, 1.5, 7, 20.0, 80.0, exit_at_middle_band=False)),
    Momentum(MomentumParams(5, 200, 30, 2.5)),
]


def same(a: float, b: float) -> bool:
    """Bit-for-bit equal, NaN equal to NaN (both still warming up)."""
    return (np.isnan(a) and np.isnan(b)) or a == b


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: f"{s.name}")
def test_streamed_values_equal_batch_values_over_a_year(strategy: ClassicStrategy) -> None:
    """A year of 5-minute candles fed one at a time (the daemon) gives, at every bar, exactly
    the values the backtest computes for the whole year at once, warm-up included."""
    frame = random_walk(YEAR, seed=3, vol=0.003)
    high, low, close = (frame[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    batch = with_previous(strategy.batch(high, low, close), strategy.previous)
    tracker = Tracker(strategy)
    names = list(batch)
    streamed = np.empty((YEAR, len(names)))
    for i, t in enumerate(frame["open_time"].to_numpy()):
        tracker.push(int(t), high[i], low[i], close[i])
        now = tracker.current()
        streamed[i] = [now[k][0] for k in names]
    for j, name in enumerate(names):
        expected = batch[name]
        assert np.array_equal(np.isnan(streamed[:, j]), np.isnan(expected)), name
        assert np.array_equal(
            np.nan_to_num(streamed[:, j], nan=-1.0), np.nan_to_num(expected, nan=-1.0)
        ), name
    opinions = strategy.rule(batch)
    assert (opinions.direction != ABSTAIN).sum() > 100  # the year has setups to compare


def candles(frame: pd.DataFrame) -> list[Candle]:
    """The daemon's Candle objects for a frame (prices as the shortest decimals)."""
    return [
        Candle(
            "BTC/USDT:USDT",
            "5m",
            datetime.fromtimestamp(int(r.open_time) / 1000, UTC),
            Decimal(repr(float(r.open))),
            Decimal(repr(float(r.high))),
            Decimal(repr(float(r.low))),
            Decimal(repr(float(r.close))),
            Decimal(repr(float(r.volume))),
        )
        for r in frame.itertuples()
    ]


@pytest.mark.parametrize("strategy", STRATEGIES[:2], ids=lambda s: f"{s.name}")
def test_the_daemon_tracker_follows_its_candle_history(strategy: ClassicStrategy) -> None:
    """Fed the cycle's history (the last candles up to now) every cycle, the tracker's values
    are the batch values; a gap in the candles reopens the streams on the history given."""
    frame = random_walk(760, seed=5, vol=0.004)
    bars = candles(frame)
    high, low, close = (frame[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    batch = with_previous(strategy.batch(high, low, close), strategy.previous)
    tracker = Tracker(strategy)
    for i in range(300, 700):
        now = tracker.values(bars[max(0, i - 299) : i + 1])  # a 300-candle window, as daemon
        if i == 300:  # opened on the window: its values start where the window does
            window = with_previous(
                strategy.batch(high[1:301], low[1:301], close[1:301]), strategy.previous
            )
            assert all(same(now[k][0], window[k][-1]) for k in window)
            continue
        reopened = with_previous(
            strategy.batch(high[1 : i + 1], low[1 : i + 1], close[1 : i + 1]), strategy.previous
        )
        assert all(same(now[k][0], reopened[k][-1]) for k in reopened)
    gap = tracker.values(bars[500:700] + bars[701:760])  # candle 700 never arrived
    kept = np.r_[500:700, 701:760]
    after = with_previous(strategy.batch(high[kept], low[kept], close[kept]), strategy.previous)
    assert all(same(gap[k][0], after[k][-1]) for k in after)
    assert not all(same(gap[k][0], batch[k][759]) for k in after)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: f"{s.name}")
def test_too_few_candles_abstain_with_the_warmup_reason(strategy: ClassicStrategy) -> None:
    """Until every indicator has its full window, the strategy abstains and says why; never a
    signal from a partial window."""
    frame = random_walk(400, seed=9, vol=0.01)
    high, low, close = (frame[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    opinions = strategy.rule(with_previous(strategy.batch(high, low, close), strategy.previous))
    warm = opinions.reasons == BIT[Reason.WARMUP]
    first = int(np.argmin(warm))
    assert 2 < first < 250
    assert warm[:first].all()
    assert not warm[first:].any()
    assert (opinions.direction[:first] == ABSTAIN).all()
    tracker = Tracker(strategy)
    for i in range(first):
        tracker.push(int(frame["open_time"].iloc[i]), high[i], low[i], close[i])
        assert int(strategy.rule(tracker.current()).reasons[0]) == BIT[Reason.WARMUP]


class _OpenSpy:
    """A strategy that records the history length of every stream opening it is asked for."""

    def __init__(self, inner: ClassicStrategy) -> None:
        self.inner = inner
        self.opened_on: list[int] = []
        self.name, self.outputs, self.previous = inner.name, inner.outputs, inner.previous
        self.bars_to_open, self.batch, self.rule = inner.bars_to_open, inner.batch, inner.rule

    def open(self, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> Any:
        self.opened_on.append(len(close))
        return self.inner.open(high, low, close)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: f"{s.name}")
def test_streams_open_only_on_a_history_every_indicator_can_start_from(
    strategy: ClassicStrategy,
) -> None:
    """TA-Lib is never asked to open a stream on too short a history (ta-lib 0.8.2 then answers
    by heap layout, sometimes TA_BAD_PARAM), and the streams open on the first bar where every
    indicator has a value."""
    frame = random_walk(400, seed=9, vol=0.01)
    high, low, close = (frame[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    values = strategy.batch(high, low, close)
    complete = np.isfinite(np.stack([values[k] for k in strategy.outputs])).all(axis=0)
    assert strategy.bars_to_open == int(np.argmax(complete)) + 1
    spy = _OpenSpy(strategy)
    tracker = Tracker(spy)
    for i in range(len(frame)):
        tracker.push(int(frame["open_time"].iloc[i]), high[i], low[i], close[i])
    assert spy.opened_on == [strategy.bars_to_open]


def path(prices: list[float]) -> dict[str, np.ndarray]:
    close = np.array(prices)
    return {"high": close + 0.5, "low": close - 0.5, "close": close}


def test_mean_reversion_buys_a_plunge_sells_a_spike_and_exits_at_the_mean() -> None:
    """A close far below the lower band with RSI oversold is a long (confidence above 0.5, the
    deeper the higher), far above the upper band with RSI overbought a short; the bar that
    crosses back over the middle band is a flat signal at confidence 1."""
    strategy = MeanReversion(MeanReversionParams())
    calm = [100.0 + 0.1 * ((-1) ** k) for k in range(40)]
    plunge = [*calm, 99.0, 97.5, 96.0, 100.5]
    p = path(plunge)
    o = strategy.rule(
        with_previous(strategy.batch(p["high"], p["low"], p["close"]), ("close", "middle"))
    )
    assert o.direction[40] == LONG or o.direction[41] == LONG
    longs = np.flatnonzero(o.direction == LONG)
    assert (o.confidence[longs] > 0.5).all()
    assert (o.confidence[longs] <= 1).all()
    assert o.confidence[longs[-1]] >= o.confidence[longs[0]]
    assert o.direction[43] == FLAT
    assert o.confidence[43] == 1.0
    assert int(o.reasons[43]) == BIT[Reason.CROSSED_MIDDLE_BAND]
    spike = [*calm, 101.0, 102.5, 104.0]
    p = path(spike)
    o = strategy.rule(
        with_previous(strategy.batch(p["high"], p["low"], p["close"]), ("close", "middle"))
    )
    assert o.direction[42] == SHORT
    assert int(o.reasons[42]) == BIT[Reason.ABOVE_UPPER_BAND] | BIT[Reason.RSI_OVERBOUGHT]
    calm_bars = slice(20, 40)  # inside the bands: no setup; each zig-zag crosses the mean
    assert set(o.direction[calm_bars].tolist()) <= {ABSTAIN, FLAT}
    no_setup = o.direction[calm_bars] == ABSTAIN
    assert (o.reasons[calm_bars][no_setup] == BIT[Reason.NO_SETUP]).all()


def test_momentum_follows_the_trend_with_confidence_from_the_spread() -> None:
    """A steady rise is long (confidence growing with the EMA spread in ATRs), a fall short."""
    strategy = Momentum(MomentumParams(fast_ema_bars=5, slow_ema_bars=20, atr_window_bars=5))
    up = [100.0 + 0.3 * k for k in range(80)]
    down = [up[-1] - 0.3 * k for k in range(1, 120)]
    p = path(up + down)
    o = strategy.rule(strategy.batch(p["high"], p["low"], p["close"]))
    assert (o.direction[25:80] == LONG).all()
    assert o.confidence[30] <= o.confidence[60]
    assert (o.direction[120:] == SHORT).all()
    assert (o.confidence[o.direction != ABSTAIN] <= 1.0).all()


def test_classic_indicators_stay_out_of_the_ml_feature_schema() -> None:
    """The models' feature schema (and its hash, which old model directories are checked
    against) is what it was: classic indicators are the strategies' own, not model inputs."""
    assert FEATURE_SCHEMA_HASH == EXPECTED_FEATURE_SCHEMA_HASH


# the hash at the branch point of the strategies work (unchanged by it)
EXPECTED_FEATURE_SCHEMA_HASH = "166d234d6e6df902c2f9b7126725754ece6a472eba8b2a9a3a3558897ead6fc4"
