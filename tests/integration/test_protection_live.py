"""Protection invariants on a live venue (README: Protection), each a finding of the adversarial
run: hand changes, a second owner's orders, a lost database, leverage changed by hand, an outage or
a full disk right after an entry — the position always ends protected by the strict definition,
and the books equal the venue's fills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tbotd.domain import ExitPlan, ExitSource, Side
from tbotd.domain.errors import RejectedError, RetryableError
from tbotd.execution.protection import StopBounds, verdict
from tbotd.execution.venue import ImmediateTriggerError
from tbotd.sim import DEMO_API_KEY
from tbotd.store import Store
from tests.contract.harness import LINEAR, LiveHarness
from tests.contract.test_broker_contract import FIXED, QTY, QUIET

SYM = LINEAR.symbol
BOUNDS = StopBounds(Decimal("0.003"), Decimal("0.05"), Decimal("0.1"))


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveHarness]:
    """A live broker on the sim, long QTY at 20,000 with its stop (19,800) and target resting."""
    h = LiveHarness(LINEAR, [QUIET] * 6, tmp_path / "live.sqlite")
    await h.start()
    await h.next_candle()
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
    try:
        yield h
    finally:
        await h.close()


async def protected(h: LiveHarness) -> bool:
    """The venue's own state passes the strict definition."""
    positions = await h.broker._venue.positions([SYM])
    orders = await h.broker._venue.open_conditional([SYM])
    return all(verdict(p, orders, BOUNDS).protected for p in positions.values())


def realised(h: LiveHarness) -> tuple[Decimal, Decimal]:
    """(PnL booked in trades, realised PnL of every recorded fill): equal when books are right."""
    booked = sum((t.pnl for t in h.store.trades()), Decimal(0))
    return booked, sum((f.realized_pnl for f in h.store.fills()), Decimal(0))


async def venue_fill_ids(h: LiveHarness) -> set[str]:
    return {str(t["id"]) for t in await h._viewer.fetch_my_trades(SYM)}


async def test_an_opposite_position_opened_by_hand_is_protected_on_its_own_side(
    live: LiveHarness,
) -> None:
    """Selling twice the long by hand flips it short: the long is booked with its real PnL, the
    old sell-side stop and target are cancelled, a buy stop covers the whole short."""
    h = live
    await h._viewer.create_order(SYM, "market", "sell", float(QTY * 2))
    await h.finish()
    [position] = (await h.broker.positions()).values()
    assert (position.side, position.qty) == (Side.SHORT, QTY)
    assert await protected(h)
    resting = await h.broker._venue.open_conditional([SYM])
    assert {str(o.side) for o in resting} == {"buy"}
    [trade] = h.store.trades()
    assert trade.exit_reason == "external"
    assert trade.pnl != 0 or trade.exit_price == trade.entry_price
    assert realised(h)[0] == realised(h)[1]
    assert {f.trade_id for f in h.store.fills()} == await venue_fill_ids(h)


async def test_a_size_increased_by_hand_gets_a_stop_for_the_whole_size(live: LiveHarness) -> None:
    """Buying as much again by hand: the stop for half is replaced by one for all of it."""
    h = live
    await h._viewer.create_order(SYM, "market", "buy", float(QTY))
    await h.finish()
    [position] = (await h.broker.positions()).values()
    assert position.qty == QTY * 2
    assert await protected(h)
    stops = [o for o in await h.broker._venue.open_conditional([SYM]) if o.is_stop]
    assert [s.qty for s in stops] == [QTY * 2]
    assert {f.trade_id for f in h.store.fills()} == await venue_fill_ids(h)
    assert "adopt" in {e["kind"] for e in h.store.events()}


async def test_a_stop_cancelled_by_hand_is_placed_again_at_the_next_close(
    live: LiveHarness,
) -> None:
    """The person removes the stop: the next close's check re-protects the position."""
    h = live
    [stop] = [o for o in await h.broker._venue.open_conditional([SYM]) if o.is_stop]
    await h._viewer.cancel_order(None, SYM, {"clientOrderId": stop.client_id, "trigger": True})
    assert not await protected(h)
    await h.finish()
    assert await protected(h)
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }


async def test_a_close_by_hand_is_booked_with_its_real_pnl(live: LiveHarness) -> None:
    """Closed by hand at a profit: the trade carries the venue's realised PnL, not zero, and the
    stop and target left behind are cancelled."""
    h = live
    await h.sim.advance_to(h.candle_time + (h.candle.close_time - h.candle_time) / 2)
    await h._viewer.create_order(SYM, "market", "sell", float(QTY), None, {"reduceOnly": True})
    await h.finish()
    assert await h.broker.positions() == {}
    [trade] = h.store.trades()
    venue_pnl = sum(Decimal(t["info"]["realizedPnl"]) for t in await h._viewer.fetch_my_trades(SYM))
    assert trade.pnl == venue_pnl
    assert await h.resting_protection() == {}


async def test_leverage_changed_by_hand_is_set_back_before_the_next_entry(
    live: LiveHarness,
) -> None:
    """125× set by hand on the venue: the next close sets it back to the configured 1×."""
    h = live
    await h._viewer.set_leverage(125, SYM)
    await h.finish()
    assert h.sim.account(DEMO_API_KEY).leverage_of("BTCUSDT") == 1
    assert "leverage" in {e["kind"] for e in h.store.events()}


async def test_leverage_that_cannot_be_set_back_refuses_entries(live: LiveHarness) -> None:
    """When the venue refuses to change the leverage, new entries are refused, saying why."""
    h = live
    await h.broker.close_position(SYM, "test", h.candle_time)
    await h._viewer.set_leverage(125, SYM)

    async def refused(*_args: Any) -> None:
        raise RejectedError("-4161 leverage reduction is not supported")

    h.broker._venue.set_leverage = refused  # type: ignore[method-assign]
    await h.finish()
    await h.next_candle()
    with pytest.raises(RejectedError, match="venue leverage 125"):
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)


async def test_the_stop_is_placed_before_the_fills_are_fetched(tmp_path: Path) -> None:
    """Fills cannot be fetched (the REST API failing for minutes): the stop rests anyway."""
    h = LiveHarness(LINEAR, [QUIET] * 4, tmp_path / "live.sqlite")
    await h.start()
    try:
        await h.next_candle()

        async def unreachable(*_args: Any) -> Any:
            raise RetryableError("503 for minutes")

        original = h.broker._venue.fills_of
        h.broker._venue.fills_of = unreachable  # type: ignore[method-assign]
        h.broker._patiently = _impatient(h.broker._patiently)  # type: ignore[method-assign]
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
        assert await protected(h)
        h.broker._venue.fills_of = original  # type: ignore[method-assign]
        await h.broker.reconcile()
        assert {f.trade_id for f in h.store.fills()} == await venue_fill_ids(h)
    finally:
        await h.close()


def _impatient(patiently: Any) -> Any:
    """The broker's retry helper without its 30 s of patience (the outage outlasts it)."""

    async def once(request: Any, what: str, policy: Any) -> Any:
        return await request()

    return once


async def test_a_database_that_stops_writing_after_the_fill_never_leaves_the_position_bare(
    tmp_path: Path,
) -> None:
    """The database stops accepting writes (full or read-only disk) between the entry's answer
    and its records: the stop and target rest anyway, entries are refused meanwhile, a restart
    on the same disk still protects, and once writable the records are restored from the
    venue."""
    h = LiveHarness(LINEAR, [QUIET] * 6, tmp_path / "live.sqlite")
    await h.start()
    try:
        await h.next_candle()
        send = h.broker._venue.market_order

        async def fill_then_disk_full(*args: Any, **kwargs: Any) -> Any:
            answer = await send(*args, **kwargs)
            _fill_disk(h)
            return answer

        h.broker._venue.market_order = fill_then_disk_full  # type: ignore[method-assign]
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
        assert h.store.unwritable is not None
        assert await protected(h)
        assert h.broker.entries_refused(SYM).startswith("the database cannot be written")
        [stop] = [o for o in await h.broker._venue.open_conditional([SYM]) if o.is_stop]
        await h._viewer.cancel_order(None, SYM, {"clientOrderId": stop.client_id, "trigger": True})
        await h.restart()  # the disk is still full: recovery protects from the venue's state
        _fill_disk(h)
        await h.broker.reconcile()
        assert await protected(h)
        _free_disk(h)
        assert h.store.probe()
        await h.broker.reconcile()
        [position] = (await h.broker.positions()).values()
        assert (position.side, position.qty) == (Side.LONG, QTY)
        assert {f.trade_id for f in h.store.fills()} == await venue_fill_ids(h)
        resting = {o.client_id for o in await h.broker._venue.open_conditional([SYM])}
        assert resting <= {o.client_id for o in h.store.live_orders(SYM)}
    finally:
        _free_disk(h)
        await h.close()


def _fill_disk(h: LiveHarness) -> None:
    """From now on every write fails as SQLite fails it on a read-only or full filesystem
    (``query_only``: SQLITE_READONLY); the daemon is not told — it must find out by writing."""
    h.store.db.conn.execute("PRAGMA query_only = ON")


def _free_disk(h: LiveHarness) -> None:
    h.store.db.conn.execute("PRAGMA query_only = OFF")


async def test_an_emergency_close_while_moving_protection_stays_closed(live: LiveHarness) -> None:
    """The new stop is refused (the price already crossed it): the position is closed once and
    stays closed — never re-saved, never booked twice."""
    h = live

    async def crossed(*_args: Any) -> Any:
        raise ImmediateTriggerError("-2021 Order would immediately trigger")

    h.broker._venue.conditional_order = crossed  # type: ignore[method-assign]
    await h.broker.move_protection(SYM, Decimal(19900), Decimal(20300), h.candle_time)
    assert await h.broker.positions() == {}
    await h.broker.reconcile()
    assert await h.broker.positions() == {}
    [trade] = h.store.trades()
    assert trade.exit_reason == "unprotectable"
    assert realised(h)[0] == realised(h)[1]


async def test_a_lost_database_cancels_the_old_stop_and_target(tmp_path: Path) -> None:
    """A new, empty database on an account where the old one left a stop and a target resting
    on a flat symbol: both are cancelled at start, not left to close a later position."""
    h = LiveHarness(LINEAR, [QUIET] * 4, tmp_path / "old.sqlite")
    await h.start()
    try:
        await h.next_candle()
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
        await h._viewer.create_order(SYM, "market", "sell", float(QTY), None, {"reduceOnly": True})
        assert len(await h.broker._venue.open_conditional([SYM])) == 2
        await h.broker.stop()
        h.store.close()
        await h.sim.advance_to(h.candle_time + timedelta(minutes=15))  # long-resting leftovers
        h.db = tmp_path / "new.sqlite"
        h.store = Store.open(h.db)
        h.broker = h._broker()
        await h.broker.start()
        assert await h.broker._venue.open_conditional([SYM]) == []
        assert "stale-order" in {e["kind"] for e in h.store.events()}
    finally:
        await h.close()


async def test_another_daemons_position_is_not_adopted_and_suspends_entries(
    tmp_path: Path,
) -> None:
    """A second database on the same account finds the first one's protected position: it
    suspends the symbol (an alert), adopts no share of it, and refuses entries there."""
    h = LiveHarness(LINEAR, [QUIET] * 4, tmp_path / "first.sqlite")
    await h.start()
    try:
        await h.next_candle()
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
        second_store = Store.open(tmp_path / "second.sqlite")
        first_store, h.store = h.store, second_store
        second = h._broker()
        h.store = first_store
        await second.start()
        assert await second.positions() == {}
        assert SYM in second.suspended
        with pytest.raises(RejectedError, match="orders of another trader"):
            await second.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
        assert len(await h.broker._venue.open_conditional([SYM])) == 2  # untouched
        await second.stop()
        second_store.close()
    finally:
        await h.close()


async def test_an_absurd_sd_rests_a_bounded_stop(tmp_path: Path) -> None:
    """An exit plan 67.5 % away (sd 0.45 × 1.5) rests at 5 %, the configured maximum."""
    h = LiveHarness(LINEAR, [QUIET] * 3, tmp_path / "live.sqlite")
    await h.start()
    try:
        await h.next_candle()
        wild = ExitPlan(
            ExitSource.VOLATILITY, sl_distance=Decimal("0.675"), tp_distance=Decimal("0.9")
        )
        await h.broker.open_position(SYM, Side.LONG, QTY, wild, h.candle_time)
        assert await h.resting_protection() == {
            "stop_loss": Decimal(19000),
            "take_profit": Decimal(24000),
        }
        assert await protected(h)
    finally:
        await h.close()


async def test_an_outage_while_placing_the_stop_is_repaired_not_closed_blindly(
    tmp_path: Path,
) -> None:
    """The REST API fails for minutes right after the entry fills: the position is neither
    closed at market into the outage nor forgotten — the repair protects it as soon as the
    venue answers again."""
    h = LiveHarness(LINEAR, [QUIET] * 4, tmp_path / "live.sqlite")
    await h.start()
    try:
        await h.next_candle()
        place = h.broker._venue.conditional_order

        async def down(*_args: Any) -> Any:
            raise RetryableError("connection refused")

        h.broker._venue.conditional_order = down  # type: ignore[method-assign]
        h.broker._patiently = _impatient(h.broker._patiently)  # type: ignore[method-assign]
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
        assert h.broker.repair_soon.is_set()
        assert SYM in await h.broker.positions()
        assert not await protected(h)
        h.broker._venue.conditional_order = place  # type: ignore[method-assign]
        await h.broker.reconcile()  # what protect_forever does when repair_soon is set
        assert await protected(h)
        assert await h.resting_protection() == {
            "stop_loss": Decimal(19800),
            "take_profit": Decimal(20400),
        }
        assert h.store.trades() == []
    finally:
        await h.close()
