"""A person's round trip on the account between two reconciliations leaves no position
difference, yet moves the balance: its fills are recorded and booked as an external trade, so
the books keep equal to the exchange's fills (a hostile run once lost two such fills)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tbotd.domain import Side
from tbotd.store import Store
from tests.contract.harness import LINEAR, LiveHarness
from tests.contract.test_broker_contract import FIXED, QTY, QUIET

SYM = LINEAR.symbol
RISING = ("20000", "20150", "19950", "20100")
HIGHER = ("20100", "20150", "20050", "20100")


@pytest.fixture
async def flat(tmp_path: Path) -> AsyncIterator[LiveHarness]:
    """A live broker on the sim, holding nothing, at the open of a rising candle."""
    h = LiveHarness(LINEAR, [QUIET, RISING, *[HIGHER] * 3], tmp_path / "live.sqlite")
    await h.start()
    await h.next_candle()
    await h.finish()
    await h.next_candle()
    try:
        yield h
    finally:
        await h.close()


async def by_hand(h: LiveHarness, side: str, qty: Decimal, reduce_only: bool = False) -> None:
    """A market order from the same account, as a person would send it."""
    await h._viewer.create_order(SYM, "market", side, float(qty), None, {"reduceOnly": reduce_only})


async def venue_trades(h: LiveHarness) -> list[dict[str, Any]]:
    return list(await h._viewer.fetch_my_trades(SYM))


def books_equal_fills(h: LiveHarness, trades: list[dict[str, Any]]) -> None:
    """Every venue fill recorded; trades book exactly the fills' realised PnL."""
    assert {f.trade_id for f in h.store.fills()} == {str(t["id"]) for t in trades}
    booked = sum((t.pnl for t in h.store.trades()), Decimal(0))
    assert booked == sum((f.realized_pnl for f in h.store.fills()), Decimal(0))


async def test_a_round_trip_by_hand_while_flat_is_booked_with_its_pnl_and_fees(
    flat: LiveHarness,
) -> None:
    """Bought and sold by hand within one candle: one external trade, the venue's PnL and fees."""
    h = flat
    await by_hand(h, "buy", QTY)
    await h.sim.advance_to(h.candle.close_time)
    await by_hand(h, "sell", QTY, reduce_only=True)
    await h.broker.reconcile()
    trades = await venue_trades(h)
    [trade] = h.store.trades()
    assert (trade.side, trade.qty, trade.exit_reason) == (Side.LONG, QTY, "external")
    assert trade.pnl == sum(Decimal(t["info"]["realizedPnl"]) for t in trades) != 0
    assert trade.fees == sum(Decimal(t["info"]["commission"]) for t in trades)
    books_equal_fills(h, trades)
    await h.broker.reconcile()
    assert len(h.store.trades()) == 1  # booked once


async def test_a_size_added_by_hand_and_closed_after_our_exit_is_booked(
    flat: LiveHarness,
) -> None:
    """Ours long, a person doubles it, we exit ours, the person closes theirs before anyone
    looks: the person's two fills are in the books beside our trade."""
    h = flat
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    await by_hand(h, "buy", QTY)
    await h.broker.close_position(SYM, "decision", h.candle_time)
    await h.sim.advance_to(h.candle.close_time)
    await by_hand(h, "sell", QTY, reduce_only=True)
    await h.broker.reconcile()
    trades = await venue_trades(h)
    assert sorted(t.exit_reason for t in h.store.trades()) == ["decision", "external"]
    books_equal_fills(h, trades)


async def test_fills_from_before_the_database_existed_are_not_booked(
    flat: LiveHarness,
) -> None:
    """A new database starts its books when it starts: an earlier round trip stays out."""
    h = flat
    await by_hand(h, "buy", QTY)
    await by_hand(h, "sell", QTY, reduce_only=True)
    await h.broker.stop()
    h.store.close()
    for path in h.db.parent.glob(h.db.name + "*"):
        path.unlink()
    await h.sim.advance_to(h.candle.close_time)
    h.store = Store.open(h.db)
    h.broker = h._broker()
    await h.broker.start()  # startup is recovery: it reconciles
    assert (h.store.fills(), h.store.trades()) == ([], [])


async def test_half_a_round_trip_from_before_the_books_is_said_and_does_not_block(
    tmp_path: Path,
) -> None:
    """A person opened before our books began and closed after: that lone close is recorded and
    reported after an hour, and a later round trip by hand is still booked."""
    h = LiveHarness(LINEAR, [QUIET] * 30, tmp_path / "live.sqlite")
    await h.start()
    try:
        await h.next_candle()
        await by_hand(h, "buy", QTY)
        h.broker._swept[SYM] = h.clock.now() + timedelta(minutes=2)  # the books begin here
        await h.sim.advance_to(h.candle_time + timedelta(minutes=4))
        await by_hand(h, "sell", QTY, reduce_only=True)
        await h.broker.reconcile()
        assert h.store.fills() == []  # not explained yet: waited for
        h.index += 14  # seventy minutes later
        await h.sim.advance_to(h.candle_time)
        await h.broker.reconcile()
        rows = h.store.query("SELECT message FROM events WHERE kind = 'fills-unexplained'")
        assert len(rows) == 1
        assert len(h.store.fills()) == 1
        assert h.store.trades() == []
        await by_hand(h, "buy", QTY)
        await by_hand(h, "sell", QTY, reduce_only=True)
        await h.broker.reconcile()
        [trade] = h.store.trades()
        assert trade.exit_reason == "external"
    finally:
        await h.close()


async def test_a_position_opened_by_hand_after_ours_does_not_book_our_entry_fees_again(
    flat: LiveHarness,
) -> None:
    """Our round trip, then a person's position adopted and closed: its trade carries none of
    our entry's fees (the first trade booked them)."""
    h = flat
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    await h.broker.close_position(SYM, "decision", h.candle_time)
    await h.sim.advance_to(h.candle_time + timedelta(minutes=1))
    await by_hand(h, "buy", QTY)
    await h.sim.advance_to(h.candle_time + timedelta(minutes=2))
    await h.broker.reconcile()  # adopted
    await h.sim.advance_to(h.candle.close_time)
    await by_hand(h, "sell", QTY, reduce_only=True)
    await h.broker.reconcile()  # gone: booked
    _ours, theirs = h.store.trades()
    assert theirs.exit_reason == "external"
    [closing] = [f for f in h.store.fills() if f.time == theirs.exit_time]
    assert theirs.fees == closing.fee


async def test_a_round_trip_by_hand_before_a_position_by_hand_is_booked_too(
    flat: LiveHarness,
) -> None:
    """Bought and sold by hand, then bought again, before anyone looks: the position is adopted
    and the round trip before it is booked as an external trade."""
    h = flat
    await h.broker.reconcile()  # the last look: flat
    await by_hand(h, "buy", QTY)
    await h.sim.advance_to(h.candle.close_time)
    await by_hand(h, "sell", QTY, reduce_only=True)
    await by_hand(h, "buy", QTY)
    await h.broker.reconcile()
    assert h.store.positions()[SYM].qty == QTY
    [trade] = h.store.trades()
    assert (trade.side, trade.qty, trade.exit_reason) == (Side.LONG, QTY, "external")
    fills = await venue_trades(h)
    assert trade.pnl == sum(Decimal(t["info"]["realizedPnl"]) for t in fills) != 0
    assert {f.trade_id for f in h.store.fills()} == {str(t["id"]) for t in fills}
