"""Bounded exits (README: Protection): whatever a model says, stops and targets stay where a user
would put them, clamps are recorded, absurd prices are refused and a flood of flips is capped."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tbotd.config import ConfigInvalidError
from tbotd.config.settings import Settings
from tbotd.domain import ClosePosition, Hold, MoveProtection, OpenPosition, Position, Prediction
from tbotd.domain.actions import ClampReason, ExitLevel
from tbotd.domain.enums import MarketType, Side
from tbotd.domain.markets import BTCUSD_PERP, BTCUSDT_PERP
from tbotd.domain.positions import notional
from tbotd.execution import paper_model as pm
from tbotd.execution.broker import protection_after_fill
from tbotd.strategy import DecisionInput, ExitParams, ManagerConfig, decide
from tbotd.strategy.exits import LIQUIDATION_SHARE, ExitBounds, plan_exits
from tbotd.strategy.kinds import OnNeutral
from tests.unit.backtest_support import candles, predictions, settings

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
D = Decimal
BOUNDS = ExitBounds()  # 0.3 % .. 5 % stops, 0.3 % .. 20 % targets, a 20 % band


def config(leverage: int = 1, cap: int = 4) -> ManagerConfig:
    bounds = replace(BOUNDS, leverage=D(leverage))
    return ManagerConfig(
        threshold=0.7,
        on_neutral=OnNeutral.CLOSE,
        refresh_exits_on_hold=True,
        position_fraction=D(1),
        leverage=D(leverage),
        exits=ExitParams(D("1.5"), D("2.0"), D("1.0"), D("2.0"), bounds),
        max_entries_per_hour=cap,
    )


def pred(signal: str = "long", **extra: object) -> Prediction:
    return Prediction.model_validate(
        {
            "symbol": BTCUSDT_PERP.symbol,
            "timestamp": T0,
            "signal": signal,
            "confidence": 0.9,
            "model_version": "hostile",
            "source": "remote",
            **extra,
        }
    )


def decide_for(
    p: Prediction, position: Position | None = None, entries: int = 0, leverage: int = 1
) -> list[Any]:
    inp = DecisionInput(BTCUSDT_PERP.symbol, p, position, D(10000), D(20000), BTCUSDT_PERP, entries)
    return decide(inp, config(leverage))


def test_an_sd_read_as_percent_is_clamped_to_the_largest_stop() -> None:
    """sd = 0.45 asks for a stop 67.5 % away: the entry gets 5 %, and the clamp is recorded."""
    [action] = decide_for(pred(sd=0.45))
    assert isinstance(action, OpenPosition)
    [stop, take] = action.exits.clamps
    assert (stop.level, stop.asked, stop.used, stop.reason) == (
        ExitLevel.STOP_LOSS,
        D("0.675"),
        D("0.05"),
        ClampReason.ABOVE_MAX,
    )
    assert (take.level, take.used, take.reason) == (
        ExitLevel.TAKE_PROFIT,
        D("0.20"),
        ClampReason.ABOVE_MAX,
    )
    fill = protection_after_fill(action.exits, Side.LONG, D(20000), BTCUSDT_PERP, config().exits)
    assert (fill.stop_loss, fill.take_profit) == (D(19000), D(24000))


def test_a_tiny_sd_gets_the_smallest_stop_not_a_stop_at_the_entry() -> None:
    """sd = 1e-5 would put the stop on the entry (open and stop out every candle): 0.3 % instead."""
    [action] = decide_for(pred("short", sd=1e-5))
    assert isinstance(action, OpenPosition)
    assert [c.reason for c in action.exits.clamps] == [ClampReason.BELOW_MIN] * 2
    fill = protection_after_fill(action.exits, Side.SHORT, D(20000), BTCUSDT_PERP, config().exits)
    assert (fill.stop_loss, fill.take_profit) == (D(20060), D(19940))


@pytest.mark.parametrize(
    ("stop", "take"),
    [("1", "21000"), ("19900", "90000"), ("0.5", "40000")],
)
def test_absurd_absolute_prices_refuse_the_entry(stop: str, take: str) -> None:
    """A model's absolute stop of 1 for a BTC long (or a target 4.5× away) is not believed."""
    [action] = decide_for(pred(stop_loss=stop, take_profit=take))
    assert isinstance(action, Hold)
    assert "outside the 20% band" in action.reason


def test_a_stop_past_the_liquidation_is_pulled_in() -> None:
    """At 10× a short's stop 30 % away sits beyond its liquidation: it gets half the way there."""
    [action] = decide_for(pred("short", sd=0.2), leverage=10)
    assert isinstance(action, OpenPosition)
    assert action.exits.clamps[0].reason is ClampReason.LIQUIDATION
    cfg = config(10)
    fill = protection_after_fill(action.exits, Side.SHORT, D(20000), BTCUSDT_PERP, cfg.exits)
    margin = notional(MarketType.LINEAR, D("4.8"), D(1), D(20000)) / 10
    liquidation = pm.liquidation_price(
        BTCUSDT_PERP, Side.SHORT, D("4.8"), D(20000), margin, D("0.004")
    )
    assert liquidation is not None
    assert D(20000) < fill.stop_loss < liquidation
    assert fill.stop_loss - D(20000) <= (liquidation - D(20000)) * LIQUIDATION_SHARE


prices = st.decimals(min_value=D(100), max_value=D(100_000), places=1)


@given(
    side=st.sampled_from(list(Side)),
    fill=prices,
    sd=st.floats(min_value=1e-9, max_value=0.999),
    leverage=st.integers(min_value=1, max_value=50),
    inverse=st.booleans(),
)
def test_whatever_the_sd_the_stop_is_bounded_and_nearer_than_liquidation(
    side: Side, fill: Decimal, sd: float, leverage: int, inverse: bool
) -> None:
    """Any sd, any leverage a config accepts: the stop after the fill risks 0.3 %..5 % of it and
    lies nearer than the paper venue's liquidation price."""
    market = BTCUSD_PERP if inverse else BTCUSDT_PERP
    cfg = config(leverage)
    near, far, _ = cfg.exits.bounds.stop_range(market.market_type, side)
    if far < near:
        return  # a config with this leverage is refused (test_high_leverage_...)
    plan = plan_exits(pred(side.value, sd=sd), cfg.exits)
    prices = protection_after_fill(plan, side, fill, market, cfg.exits)
    risk = side.sign * (fill - prices.stop_loss) / fill
    exact = Decimal("1e-20")  # Decimal division's 28 digits, nothing more
    assert near - exact <= risk <= far + exact
    qty = D(1)
    margin = notional(market.market_type, qty, market.contract_size, fill) / leverage
    liquidation = pm.liquidation_price(market, side, qty, fill, margin, D("0.004"))
    if liquidation is not None:
        assert side.sign * (prices.stop_loss - liquidation) > 0


def test_a_refreshed_stop_stays_within_the_bounds_of_the_entry() -> None:
    """Refreshing around a mark 6 % above a long's entry may not trail the stop into profit past
    the smallest stop, nor leave it more than 5 % under the entry."""
    position = Position(BTCUSDT_PERP.symbol, Side.LONG, D("0.5"), D(20000), T0, D(19000), D(24000))
    inp = DecisionInput(
        BTCUSDT_PERP.symbol, pred(sd=0.001), position, D(10000), D(21200), BTCUSDT_PERP
    )
    [move] = decide(inp, config())
    assert isinstance(move, MoveProtection)
    assert move.stop_loss == D(19940)  # 20,000 × (1 − 0.3 %): the band's edge, not 21,168
    assert move.clamps


def test_the_hourly_entry_cap_refuses_entries_but_not_the_close_of_a_flip() -> None:
    """At the cap a flat symbol stays flat, and a flip closes without opening the new side."""
    [hold] = decide_for(pred(), entries=4)
    assert isinstance(hold, Hold)
    assert "max_entries_per_hour 4" in hold.reason
    position = Position(BTCUSDT_PERP.symbol, Side.SHORT, D("0.5"), D(20000), T0, D(20100), D(19000))
    close, capped = decide_for(pred(), position, entries=4)
    assert isinstance(close, ClosePosition)
    assert isinstance(capped, Hold)
    [entry] = decide_for(pred(), entries=3)
    assert isinstance(entry, OpenPosition)


def test_a_flip_every_candle_with_a_tiny_sd_is_throttled_in_the_backtest() -> None:
    """24 candles each flipping with sd = 1e-5: at most 4 entries in any hour, every trade's stop
    at least 0.3 % from its entry (trades.csv shows the clamped levels)."""
    from tbotd.backtest import run_backtest

    rows = [("20000", "20030", "19970", "20000")] * 25
    frame = candles(*rows, start=T0)
    signals = {i: ("long" if i % 2 else "short", 0.9) for i in range(24)}
    preds = predictions(frame, signals, sd=dict.fromkeys(range(24), "0.00001"))
    result = run_backtest(frame, preds, settings(), {}, BTCUSDT_PERP)
    opened = sorted(t.entry_time for t in result.trades)
    for i, start in enumerate(opened):
        assert sum(1 for t in opened[i:] if (t - start).total_seconds() < 3600) <= 4
    assert len(opened) == 8  # 4 in each of the two hours, instead of 24
    for t in result.trades:
        assert t.stop_loss is not None
        assert abs(t.entry_price - t.stop_loss) / t.entry_price >= D("0.003")


def _settings(execution: dict[str, Any] | None = None, **strategy: Any) -> Settings:
    return settings(strategy=strategy, execution=execution or {})


def test_high_leverage_that_leaves_no_room_for_a_stop_is_a_config_error() -> None:
    """At 125× a long is liquidated 0.4 % away: half of that is below min_stop_pct 0.3."""
    with pytest.raises((ConfigInvalidError, ValueError), match=r"execution\.leverage 125"):
        _settings({"leverage": 125})
    assert _settings({"leverage": 20}).execution.leverage == 20


def test_the_fixed_stop_must_lie_inside_the_bounds() -> None:
    """stop_loss_pct = 8 with max_stop_pct = 5 is refused, naming both keys."""
    with pytest.raises((ConfigInvalidError, ValueError), match=r"stop_loss_pct.*max_stop_pct"):
        _settings(stop_loss_pct="8")
