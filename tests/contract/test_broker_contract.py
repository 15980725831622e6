"""One contract, every broker: entries are protected, exits settle right, restarts lose nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tbotd.domain import ExitPlan, ExitSource, OrderState, Side
from tbotd.domain.errors import BelowMinimumError, InsufficientMarginError
from tbotd.domain.positions import funding_amount, pnl
from tbotd.domain.values import book
from tbotd.execution.paper import PaperBroker
from tbotd.execution.paper_model import BPS
from tests.contract.conftest import Start
from tests.contract.harness import (
    FEE_BPS,
    FUNDING_RATE,
    INVERSE,
    LINEAR,
    STEP,
    Bar,
    Harness,
    Venue,
)

FIXED = ExitPlan(ExitSource.FIXED, sl_distance=Decimal("0.01"), tp_distance=Decimal("0.02"))
QTY = Decimal("0.1")
QUIET = ("20000", "20050", "19950", "20000")  # touches neither 19,800 nor 20,400


def fee(h: Harness, qty: Decimal, price: Decimal) -> Decimal:
    m = h.venue.market
    if m.market_type.value == "linear":
        return book(qty * m.contract_size * price * FEE_BPS / BPS)
    return book(qty * m.contract_size / price * FEE_BPS / BPS)


async def enter(h: Harness, side: Side = Side.LONG, qty: Decimal = QTY) -> None:
    """Move to the next candle and enter at its open (decided at the previous close)."""
    await h.next_candle()
    await h.broker.open_position(h.venue.symbol, side, qty, FIXED, h.candle_time - STEP)


async def test_entry_is_protected_on_the_venue(market: Start) -> None:
    """A long fills at the next open and its stop and target rest on the venue at once."""
    h = await market(QUIET)
    await enter(h)
    [position] = (await h.broker.positions()).values()
    assert (position.side, position.qty, position.entry_price) == (Side.LONG, QTY, Decimal(20000))
    assert (position.stop_loss, position.take_profit) == (Decimal(19800), Decimal(20400))
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }
    await h.finish()
    assert h.venue.symbol in await h.broker.positions()


async def test_short_is_protected_the_other_way_round(market: Start) -> None:
    """A short's stop is above and its target below the entry."""
    h = await market(QUIET)
    await enter(h, Side.SHORT)
    assert await h.resting_protection() == {
        "stop_loss": Decimal(20200),
        "take_profit": Decimal(19600),
    }


async def test_take_profit_closes_and_cancels_the_stop(market: Start) -> None:
    """Reaching the target closes at it; PnL and fees match the hand computation."""
    h = await market(QUIET, ("20000", "20500", "19990", "20450"))
    await enter(h)
    await h.finish()
    await h.next_candle()
    await h.finish()
    assert await h.broker.positions() == {}
    assert await h.resting_protection() == {}
    [trade] = h.store.trades()
    assert (trade.exit_reason, trade.exit_price, trade.pnl) == (
        "take_profit",
        Decimal(20400),
        Decimal(40),
    )
    assert trade.fees == fee(h, QTY, Decimal(20000)) + fee(h, QTY, Decimal(20400))
    equity = await h.broker.equity()
    assert equity.balance == h.venue.balance + Decimal(40) - trade.fees


async def test_stop_loss_closes_at_the_stop(market: Start) -> None:
    """Falling through the stop closes the long at the stop price."""
    h = await market(QUIET, ("20000", "20010", "19700", "19750"))
    await enter(h)
    await h.finish()
    await h.next_candle()
    await h.finish()
    [trade] = h.store.trades()
    assert (trade.exit_reason, trade.exit_price, trade.pnl) == (
        "stop_loss",
        Decimal(19800),
        Decimal(-20),
    )
    assert await h.resting_protection() == {}


async def test_stop_and_target_in_one_candle_counts_as_the_stop(market: Start) -> None:
    """A candle touching both levels closes at the stop (pessimistic)."""
    h = await market(QUIET, ("20000", "20500", "19700", "20100"))
    await enter(h)
    await h.finish()
    await h.next_candle()
    await h.finish()
    [trade] = h.store.trades()
    assert trade.exit_reason == "stop_loss"


async def test_flip_closes_then_opens_the_other_side(market: Start) -> None:
    """Closing a long and opening a short in one decision leaves one protected short."""
    h = await market(QUIET, ("20100", "20150", "20050", "20100"))
    await enter(h)
    await h.finish()
    await h.next_candle()
    decision = h.candle_time - STEP
    await h.broker.close_position(h.venue.symbol, "flip to short", decision)
    await h.broker.open_position(h.venue.symbol, Side.SHORT, QTY, FIXED, decision)
    [trade] = h.store.trades()
    assert (trade.side, trade.exit_price, trade.pnl) == (Side.LONG, Decimal(20100), Decimal(10))
    [position] = (await h.broker.positions()).values()
    assert (position.side, position.entry_price) == (Side.SHORT, Decimal(20100))
    assert await h.resting_protection() == {
        "stop_loss": Decimal(20301),
        "take_profit": Decimal(19698),
    }


async def test_close_on_neutral_leaves_nothing_behind(market: Start) -> None:
    """Closing flattens the position and cancels both protective orders."""
    h = await market(QUIET, ("19900", "19950", "19850", "19900"))
    await enter(h)
    await h.finish()
    await h.next_candle()
    trade = await h.broker.close_position(h.venue.symbol, "neutral", h.candle_time - STEP)
    assert trade is not None
    assert trade.pnl == Decimal(-10)
    assert await h.broker.positions() == {}
    assert await h.resting_protection() == {}
    assert await h.broker.close_position(h.venue.symbol, "again", h.candle_time) is None


async def test_size_is_rounded_down_and_tiny_orders_refused(market: Start) -> None:
    """0.1009 trades as 0.100; 0.0004 is refused with a reason and nothing opens."""
    h = await market(QUIET)
    await enter(h, qty=Decimal("0.1009"))
    [position] = (await h.broker.positions()).values()
    assert position.qty == Decimal("0.100")
    await h.broker.close_position(h.venue.symbol, "reset", h.candle_time - STEP)
    with pytest.raises(BelowMinimumError, match="below the minimum"):
        await h.broker.open_position(
            h.venue.symbol, Side.LONG, Decimal("0.0004"), FIXED, h.candle_time
        )
    assert await h.broker.positions() == {}


async def test_insufficient_margin_is_a_clear_rejection(market: Start) -> None:
    """An entry the wallet cannot margin is rejected and nothing is recorded as open."""
    h = await market(QUIET)
    await h.next_candle()
    with pytest.raises(InsufficientMarginError):
        await h.broker.open_position(h.venue.symbol, Side.LONG, Decimal(10), FIXED, h.candle_time)
    assert await h.broker.positions() == {}
    assert h.store.positions() == {}
    assert await h.resting_protection() == {}
    assert [o.state for o in h.store.orders()] == [OrderState.REJECTED]


async def test_restart_mid_position_restores_state_and_protection(market: Start) -> None:
    """A new process on the same database finds the position, its protection, and keeps going."""
    h = await market(QUIET, ("20000", "20500", "19990", "20450"))
    await enter(h)
    await h.finish()
    before = await h.broker.positions()
    await h.restart()
    assert await h.broker.positions() == before
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }
    await h.next_candle()
    await h.finish()
    assert [t.exit_reason for t in h.store.trades()] == ["take_profit"]
    assert [o.client_id for o in h.store.live_orders()] == []


@pytest.mark.parametrize(
    ("venue", "bar", "qty", "mark"),
    [
        (LINEAR, QUIET, QTY, Decimal(20000)),
        (INVERSE, ("30000", "30050", "29950", "30000"), Decimal(30), Decimal(30000)),
    ],
    ids=["usdt", "btc"],
)
async def test_funding_is_charged_in_the_settlement_currency(
    market: Start, venue: Venue, bar: Bar, qty: Decimal, mark: Decimal
) -> None:
    """A long held through 08:00 UTC pays rate × notional at the funding price, in USDT or BTC."""
    h = await market(*[bar] * 12, venue=venue)
    await enter(h, qty=qty)
    for _ in range(11):
        await h.finish()
        await h.next_candle()
    await h.finish()  # the 07:55 candle closes at 08:00, a funding time
    [row] = h.store.query("SELECT amount, currency FROM funding")
    m = h.venue.market
    expected = book(
        funding_amount(m.market_type, Side.LONG, qty, m.contract_size, mark, FUNDING_RATE)
    )
    assert (Decimal(row["amount"]), row["currency"]) == (expected, m.settle)


async def test_inverse_pnl_fees_and_funding_are_in_btc(market: Start) -> None:
    """30 contracts of 100 USD: long 30,000 → 30,600 earns 3000·(1/30000 − 1/30600) BTC."""
    h = await market(
        ("30000", "30050", "29950", "30000"), ("30000", "30700", "29990", "30650"), venue=INVERSE
    )
    qty = Decimal(30)
    await enter(h, qty=qty)
    await h.finish()
    await h.next_candle()
    await h.finish()
    [trade] = h.store.trades()
    m = h.venue.market
    expected = book(
        pnl(m.market_type, Side.LONG, qty, m.contract_size, Decimal(30000), Decimal(30600))
    )
    assert trade.currency == "BTC"
    assert trade.pnl == expected
    assert trade.fees == fee(h, qty, Decimal(30000)) + fee(h, qty, Decimal(30600))
    assert (await h.broker.equity()).balance == h.venue.balance + expected - trade.fees


async def test_funding_at_a_flip_belongs_to_the_closed_position(market: Start) -> None:
    """A long paying the 08:00 funding and flipped to a short at 08:00: only the long's trade
    carries that payment (regression: the short's trade counted it again)."""
    h = await market(*[QUIET] * 14)
    await enter(h)
    for _ in range(11):
        await h.finish()
        await h.next_candle()
    await h.finish()  # the 07:55 candle closes at 08:00: funding is settled on the long
    await h.next_candle()
    decision = h.candle_time - STEP
    await h.broker.close_position(h.venue.symbol, "flip to short", decision)
    await h.broker.open_position(h.venue.symbol, Side.SHORT, QTY, FIXED, decision)
    await h.finish()
    await h.next_candle()
    await h.broker.close_position(h.venue.symbol, "close", h.candle_time - STEP)
    long_trade, short_trade = h.store.trades()
    m = h.venue.market
    paid = book(
        funding_amount(m.market_type, Side.LONG, QTY, m.contract_size, Decimal(20000), FUNDING_RATE)
    )
    assert (long_trade.side, long_trade.funding) == (Side.LONG, paid)
    assert (short_trade.side, short_trade.funding) == (Side.SHORT, Decimal(0))


@pytest.mark.parametrize(
    ("stop_distance", "stop", "take"),
    [("0.675", "19000", "24000"), ("0.00001", "19940", "20060")],
)
async def test_whatever_the_plan_the_resting_stop_is_bounded(
    market: Start, stop_distance: str, stop: str, take: str
) -> None:
    """A plan asking for a stop 67.5 % away rests at 5 %; one 0.001 % away at 0.3 % (the
    defaults of strategy.max_stop_pct / min_stop_pct), and the broker reports it protected."""
    h = await market(QUIET)
    await h.next_candle()
    plan = ExitPlan(
        ExitSource.VOLATILITY,
        sl_distance=Decimal(stop_distance),
        tp_distance=Decimal(stop_distance) * 2,
    )
    await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, plan, h.candle_time)
    assert await h.resting_protection() == {
        "stop_loss": Decimal(stop),
        "take_profit": Decimal(take),
    }
    if isinstance(h.broker, PaperBroker):  # live judges at the next close's snapshot
        assert h.broker.protection_status()[h.venue.symbol]["protected"] is True
