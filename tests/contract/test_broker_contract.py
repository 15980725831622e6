"""One contract, every broker: entries are protected, exits settle right, restarts lose nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tbotd.domain import ExitPlan, ExitSource, OrderState, Side
from tbotd.domain.errors import BelowMinimumError, InsufficientMarginError
from tbotd.domain.positions import funding_amount, pnl
from tbotd.execution.paper_model import BPS
from tests.contract.harness import FEE_BPS, FUNDING_RATE, STEP, Harness

FIXED = ExitPlan(ExitSource.FIXED, sl_distance=Decimal("0.01"), tp_distance=Decimal("0.02"))
QTY = Decimal("0.1")


def fee(h: Harness, qty: Decimal, price: Decimal) -> Decimal:
    m = h.venue.market
    if m.market_type.value == "linear":
        return qty * m.contract_size * price * FEE_BPS / BPS
    return qty * m.contract_size / price * FEE_BPS / BPS


async def open_long(h: Harness, qty: Decimal = QTY, price: str = "20000") -> None:
    await h.next_candle(price, str(Decimal(price) + 50), str(Decimal(price) - 50), price)
    await h.broker.open_position(h.venue.symbol, Side.LONG, qty, FIXED, h.candle_time - STEP)


async def test_entry_is_protected_on_the_venue(h: Harness) -> None:
    """A long fills at the next open and its stop and target rest on the venue at once."""
    await open_long(h)
    [position] = (await h.broker.positions()).values()
    assert (position.side, position.qty, position.entry_price) == (Side.LONG, QTY, Decimal(20000))
    assert (position.stop_loss, position.take_profit) == (Decimal(19800), Decimal(20400))
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }
    await h.finish()
    assert h.venue.symbol in await h.broker.positions()


async def test_short_is_protected_the_other_way_round(h: Harness) -> None:
    """A short's stop is above and its target below the entry."""
    await h.next_candle("20000", "20010", "19990", "20000")
    await h.broker.open_position(h.venue.symbol, Side.SHORT, QTY, FIXED, h.candle_time - STEP)
    assert await h.resting_protection() == {
        "stop_loss": Decimal(20200),
        "take_profit": Decimal(19600),
    }


async def test_take_profit_closes_and_cancels_the_stop(h: Harness) -> None:
    """Reaching the target closes at it; PnL and fees match the hand computation."""
    await open_long(h)
    await h.finish()
    await h.next_candle("20000", "20500", "19990", "20450")
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


async def test_stop_loss_closes_at_the_stop(h: Harness) -> None:
    """Falling through the stop closes the long at the stop price."""
    await open_long(h)
    await h.finish()
    await h.next_candle("20000", "20010", "19700", "19750")
    await h.finish()
    [trade] = h.store.trades()
    assert (trade.exit_reason, trade.exit_price, trade.pnl) == (
        "stop_loss",
        Decimal(19800),
        Decimal(-20),
    )


async def test_stop_and_target_in_one_candle_counts_as_the_stop(h: Harness) -> None:
    """A candle touching both levels closes at the stop (pessimistic)."""
    await open_long(h)
    await h.finish()
    await h.next_candle("20000", "20500", "19700", "20100")
    await h.finish()
    [trade] = h.store.trades()
    assert trade.exit_reason == "stop_loss"


async def test_flip_closes_then_opens_the_other_side(h: Harness) -> None:
    """Closing a long and opening a short in one decision leaves one protected short."""
    await open_long(h)
    await h.finish()
    await h.next_candle("20100", "20150", "20050", "20100")
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


async def test_close_on_neutral_leaves_nothing_behind(h: Harness) -> None:
    """Closing flattens the position and cancels both protective orders."""
    await open_long(h)
    await h.finish()
    await h.next_candle("19900", "19950", "19850", "19900")
    trade = await h.broker.close_position(h.venue.symbol, "neutral", h.candle_time - STEP)
    assert trade is not None
    assert trade.pnl == Decimal(-10)
    assert await h.broker.positions() == {}
    assert await h.resting_protection() == {}
    assert await h.broker.close_position(h.venue.symbol, "again", h.candle_time) is None


async def test_size_is_rounded_down_and_tiny_orders_refused(h: Harness) -> None:
    """0.1009 trades as 0.100; 0.0004 is refused with a reason and nothing opens."""
    await open_long(h, qty=Decimal("0.1009"))
    [position] = (await h.broker.positions()).values()
    assert position.qty == Decimal("0.100")
    await h.broker.close_position(h.venue.symbol, "reset", h.candle_time - STEP)
    with pytest.raises(BelowMinimumError, match="below the minimum"):
        await h.broker.open_position(
            h.venue.symbol, Side.LONG, Decimal("0.0004"), FIXED, h.candle_time - STEP
        )
    assert await h.broker.positions() == {}


async def test_insufficient_margin_is_a_clear_rejection(h: Harness) -> None:
    """An entry the wallet cannot margin is rejected and nothing is recorded as open."""
    await h.next_candle("20000", "20010", "19990", "20000")
    with pytest.raises(InsufficientMarginError):
        await h.broker.open_position(h.venue.symbol, Side.LONG, Decimal(10), FIXED, h.candle_time)
    assert await h.broker.positions() == {}
    assert h.store.positions() == {}
    assert await h.resting_protection() == {}
    assert [o.state for o in h.store.orders()] == [OrderState.REJECTED]


async def test_restart_mid_position_restores_state_and_protection(h: Harness) -> None:
    """A new process on the same database finds the position, its protection, and keeps going."""
    await open_long(h)
    await h.finish()
    before = await h.broker.positions()
    await h.restart()
    assert await h.broker.positions() == before
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }
    await h.next_candle("20000", "20500", "19990", "20450")
    await h.finish()
    assert [t.exit_reason for t in h.store.trades()] == ["take_profit"]


async def test_funding_is_charged_in_the_settlement_currency(h: Harness) -> None:
    """A long held through 08:00 UTC pays rate × notional at the funding price."""
    await open_long(h)
    while h.candle_time.hour != 7 or h.candle_time.minute != 55:
        await h.finish()
        await h.next_candle("20000", "20010", "19990", "20000")
    await h.finish()
    [row] = h.store.query("SELECT amount, currency FROM funding")
    m = h.venue.market
    expected = funding_amount(
        m.market_type, Side.LONG, QTY, m.contract_size, Decimal(20000), FUNDING_RATE
    )
    assert (Decimal(row["amount"]), row["currency"]) == (expected, m.settle)


async def test_inverse_pnl_fees_and_funding_are_in_btc(inverse: Harness) -> None:
    """30 contracts of 100 USD: long 30,000 → 30,600 earns 3000·(1/30000 − 1/30600) BTC."""
    h = inverse
    qty = Decimal(30)
    await h.next_candle("30000", "30050", "29950", "30000")
    await h.broker.open_position(h.venue.symbol, Side.LONG, qty, FIXED, h.candle_time - STEP)
    await h.finish()
    await h.next_candle("30000", "30700", "29990", "30650")
    await h.finish()
    [trade] = h.store.trades()
    m = h.venue.market
    expected = pnl(m.market_type, Side.LONG, qty, m.contract_size, Decimal(30000), Decimal(30600))
    assert trade.currency == "BTC"
    assert trade.pnl == expected
    assert trade.fees == fee(h, qty, Decimal(30000)) + fee(h, qty, Decimal(30600))
    assert (await h.broker.equity()).balance == h.venue.balance + expected - trade.fees


async def test_funding_at_a_flip_belongs_to_the_closed_position(h: Harness) -> None:
    """A long paying the 08:00 funding and flipped to a short at 08:00: only the long's trade
    carries that payment (regression: the short's trade counted it again)."""
    await open_long(h)
    while h.candle_time.hour != 7 or h.candle_time.minute != 55:
        await h.finish()
        await h.next_candle("20000", "20010", "19990", "20000")
    await h.finish()  # the 07:55 candle closes at 08:00: funding is settled on the long
    await h.next_candle("20000", "20010", "19990", "20000")
    decision = h.candle_time - STEP
    await h.broker.close_position(h.venue.symbol, "flip to short", decision)
    await h.broker.open_position(h.venue.symbol, Side.SHORT, QTY, FIXED, decision)
    await h.finish()
    await h.next_candle("20000", "20010", "19990", "20000")
    await h.broker.close_position(h.venue.symbol, "close", h.candle_time - STEP)
    long_trade, short_trade = h.store.trades()
    m = h.venue.market
    paid = funding_amount(
        m.market_type, Side.LONG, QTY, m.contract_size, Decimal(20000), FUNDING_RATE
    )
    assert (long_trade.side, long_trade.funding) == (Side.LONG, paid)
    assert (short_trade.side, short_trade.funding) == (Side.SHORT, Decimal(0))
