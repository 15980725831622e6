"""Entries and exits the venue does not fill whole: whatever is open stays protected and booked.

A reduce-only close that expires (half filled, or not at all) must not cancel the stop of what is
still open; an entry whose fill is not confirmed must start a reconciliation that protects it,
and block a second entry until it is resolved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tbotd.domain import OrderState, Side
from tbotd.domain.errors import OutcomeUnknownError, RejectedError, RetryableError
from tbotd.execution.live_orders import POLLS
from tbotd.execution.protection import StopBounds, verdict
from tbotd.execution.venue_answers import VenueOrderState
from tests.contract.harness import LINEAR, LiveHarness
from tests.contract.test_broker_contract import FIXED, QTY, QUIET

SYM = LINEAR.symbol


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[LiveHarness]:
    """The live broker on a quiet scripted sim."""
    harness = LiveHarness(LINEAR, [QUIET] * 6, tmp_path / "live.sqlite")
    await harness.start()
    await harness.next_candle()
    yield harness
    await harness.close()


async def venue_view(h: LiveHarness) -> tuple[Decimal, bool]:
    """The venue's position size on the symbol and whether it is protected (strict check)."""
    venue = h.broker._venue
    positions = await venue.positions([SYM])
    if SYM not in positions:
        return Decimal(0), True
    orders = await venue.open_conditional([SYM])
    bounds = StopBounds(Decimal("0.003"), Decimal("0.05"), Decimal("0.1"))
    return positions[SYM].qty, verdict(positions[SYM], orders, bounds).protected


def events(h: LiveHarness, kind: str) -> list[str]:
    """Messages of the recorded events of ``kind``."""
    rows = h.store.query("SELECT message FROM events WHERE kind = ?", (kind,))
    return [r["message"] for r in rows]


def exit_filling(h: LiveHarness, share: Decimal) -> None:
    """The next reduce-only market orders fill ``share`` of their size, then expire."""
    venue = h.broker._venue
    real = venue.market_order

    async def partly(symbol: str, side: Any, qty: Decimal, cid: str, reduce_only: bool) -> Any:
        if not reduce_only:
            return await real(symbol, side, qty, cid, reduce_only)
        if share:
            state = await real(symbol, side, qty * share, cid, reduce_only)
            return replace(state, state=OrderState.EXPIRED)
        return replace(await real(symbol, side, qty, cid, reduce_only), state=OrderState.EXPIRED)

    venue.market_order = partly  # type: ignore[method-assign]


async def test_an_exit_that_expires_half_filled_keeps_the_rest_protected(h: LiveHarness) -> None:
    """Half the close fills: half is booked, the rest stays in the books with its stop (and
    closing it later books the entry's fees once)."""
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    real = h.broker._venue.market_order
    exit_filling(h, Decimal("0.5"))
    with pytest.raises(RejectedError, match="the rest stays open"):
        await h.broker.close_position(SYM, "decision", h.candle_time)
    assert await venue_view(h) == (QTY / 2, True)
    assert h.store.positions()[SYM].qty == QTY / 2
    [trade] = h.store.trades(SYM)
    assert trade.qty == QTY / 2
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }
    assert events(h, "exit-incomplete")
    assert h.broker.repair_soon.is_set()
    h.broker._venue.market_order = real  # type: ignore[method-assign]
    await h.finish()
    await h.next_candle()
    await h.broker.close_position(SYM, "decision", h.candle_time)
    trades = h.store.trades(SYM)
    assert sum(t.qty for t in trades) == QTY
    paid = sum((f.fee for f in h.store.fills()), Decimal(0))
    assert sum((t.fees for t in trades), Decimal(0)) == paid  # the entry's fees booked once


async def test_an_exit_that_expires_unfilled_cancels_nothing_and_books_nothing(
    h: LiveHarness,
) -> None:
    """Nothing of the close fills: the position keeps its stop and target, no trade is booked."""
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)

    async def expired(symbol: str, side: Any, qty: Decimal, cid: str, reduce_only: bool) -> Any:
        return VenueOrderState(cid, "999", OrderState.EXPIRED, Decimal(0), None, None)

    venue = h.broker._venue
    venue.market_order = expired  # type: ignore[method-assign]
    with pytest.raises(RejectedError, match="the rest stays open"):
        await h.broker.close_position(SYM, "decision", h.candle_time)
    assert await venue_view(h) == (QTY, True)
    assert h.store.positions()[SYM].qty == QTY
    assert h.store.trades(SYM) == []


async def test_an_exit_that_expires_after_the_venue_went_flat_is_booked(h: LiveHarness) -> None:
    """The close expired but nothing is left on the venue: booked whole, protection cancelled."""
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    exit_filling(h, Decimal(1))
    trade = await h.broker.close_position(SYM, "decision", h.candle_time)
    assert trade is not None
    assert trade.qty == QTY
    assert await venue_view(h) == (Decimal(0), True)
    assert h.store.positions() == {}
    assert await h.resting_protection() == {}


def entry_unconfirmed(h: LiveHarness, lookups_fail: bool) -> None:
    """The entry executes, but its answer is lost (``lookups_fail``: every lookup fails too) or
    says it is still open and no lookup finds it."""
    venue = h.broker._venue
    real_market, real_find = venue.market_order, venue.find_order

    async def market(symbol: str, side: Any, qty: Decimal, cid: str, reduce_only: bool) -> Any:
        state = await real_market(symbol, side, qty, cid, reduce_only)
        if lookups_fail:
            raise OutcomeUnknownError("the answer was lost")
        return replace(state, state=OrderState.OPEN, filled_qty=Decimal(0), avg_price=None)

    async def find(symbol: str, cid: str, conditional: bool) -> Any:
        if conditional:
            return await real_find(symbol, cid, conditional)
        if lookups_fail:
            raise RetryableError("503")
        return None

    venue.market_order, venue.find_order = market, find  # type: ignore[method-assign]

    def restore() -> None:
        venue.market_order, venue.find_order = real_market, real_find  # type: ignore[method-assign]

    h.restore_venue = restore  # type: ignore[attr-defined]


@pytest.mark.parametrize("lookups_fail", [False, True], ids=["not-final", "lookups-fail"])
async def test_an_unconfirmed_entry_is_protected_by_the_repair_it_starts(
    h: LiveHarness, lookups_fail: bool
) -> None:
    """An entry the venue filled but never confirmed: reconciling protects it at the config's
    fixed stop (1 % for these exits), not the tightest allowed one."""
    entry_unconfirmed(h, lookups_fail)
    with pytest.raises(RejectedError if not lookups_fail else RetryableError):
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    assert h.broker.repair_soon.is_set()
    assert events(h, "unprotected")
    h.restore_venue()  # type: ignore[attr-defined]
    await h.broker.reconcile()
    assert await venue_view(h) == (QTY, True)
    assert h.store.positions()[SYM].qty == QTY
    resting = await h.resting_protection()
    assert resting["stop_loss"] == Decimal(19800)


async def test_no_second_entry_while_the_first_is_unresolved(h: LiveHarness) -> None:
    """Until a lost entry is resolved, a new entry on the symbol is refused (no doubling)."""
    entry_unconfirmed(h, lookups_fail=True)
    with pytest.raises(RetryableError):
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    h.restore_venue()  # type: ignore[attr-defined]
    with pytest.raises(RejectedError, match="not resolved"):
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    assert (await venue_view(h))[0] == QTY


async def test_moving_the_exits_of_a_position_closed_since_the_decision_is_refused(
    h: LiveHarness,
) -> None:
    """The stop fired between the decision and its action: the move is refused, not a crash."""
    with pytest.raises(RejectedError, match="no open position"):
        await h.broker.move_protection(SYM, Decimal(19900), Decimal(20300), h.candle_time)


async def test_an_exit_not_final_after_the_polls_is_settled_before_it_is_booked(
    h: LiveHarness,
) -> None:
    """The exit filled but no poll saw it: it is cancelled (too late) and looked up once more,
    and the trade is booked from its fills — not at the entry price, not left half open."""
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    venue = h.broker._venue
    real_market, real_find = venue.market_order, venue.find_order
    hidden = {"lookups": 0}

    async def acked(symbol: str, side: Any, qty: Decimal, cid: str, reduce_only: bool) -> Any:
        state = await real_market(symbol, side, qty, cid, reduce_only)
        return replace(state, state=OrderState.OPEN, filled_qty=Decimal(0), avg_price=None)

    async def lagging(symbol: str, cid: str, conditional: bool) -> Any:
        if not conditional and hidden["lookups"] < POLLS:
            hidden["lookups"] += 1
            return None
        return await real_find(symbol, cid, conditional)

    venue.market_order, venue.find_order = acked, lagging  # type: ignore[method-assign]
    trade = await h.broker.close_position(SYM, "decision", h.candle_time)
    assert trade is not None
    assert trade.qty == QTY
    assert trade.fees == sum((f.fee for f in h.store.fills()), Decimal(0))  # the exit's fee too
    assert await venue_view(h) == (Decimal(0), True)
    assert h.store.positions() == {}
    assert await h.resting_protection() == {}
