"""Crashes at the instants the chaos run found dangerous: restart leaves the records exact.

Each test "kills the process" at one await inside the live broker (the task is cancelled while a
request hangs, so nothing after that await runs), restarts on the same database and venue, and
checks the records against the sim's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tbotd.domain import Side
from tbotd.sim import DEMO_API_KEY
from tests.contract.harness import LINEAR, LiveHarness
from tests.contract.test_broker_contract import FIXED, QTY, QUIET

TP_CANDLE = ("20000", "20500", "19990", "20450")  # reaches the 20,400 target


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[LiveHarness]:
    """The live broker on a scripted sim: a quiet candle, one that reaches the target, quiet."""
    harness = LiveHarness(LINEAR, [QUIET, TP_CANDLE, QUIET, QUIET], tmp_path / "live.sqlite")
    await harness.start()
    yield harness
    await harness.close()


async def die_in(
    h: LiveHarness, call: Awaitable[Any], name: str, sent: bool = False, nth: int = 1
) -> None:
    """Run ``call`` until the broker's venue method ``name`` is entered the ``nth`` time, then
    "crash" there; with ``sent``, after the venue carried the request out (its answer is lost)."""
    entered = asyncio.Event()
    calls = 0

    async def hang(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls < nth:
            return await original(*args, **kwargs)
        if sent:
            await original(*args, **kwargs)
        entered.set()
        return await asyncio.Event().wait()  # the process dies before any answer

    original: Callable[..., Any] = getattr(h.broker._venue, name)
    setattr(h.broker._venue, name, hang)
    task = asyncio.ensure_future(call)
    try:
        await asyncio.wait_for(entered.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        setattr(h.broker._venue, name, original)


def sim_fills(h: LiveHarness) -> set[str]:
    """Trade ids of every execution the sim made for the demo account."""
    return {str(f["trade_id"]) for f in h.sim.state(DEMO_API_KEY)["fills"]}


def recorded_fills(h: LiveHarness) -> set[str]:
    """Trade ids the daemon's database has."""
    return {f.trade_id for f in h.store.fills()}


async def test_crash_after_entry_filled_before_its_fills_are_recorded(h: LiveHarness) -> None:
    """The entry is stored as filled, then the process dies: restart records its fill."""
    await h.next_candle()
    opening = h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    await die_in(h, opening, "fills_of")
    assert not recorded_fills(h)  # the crash came between the two writes
    await h.restart()
    assert recorded_fills(h) == sim_fills(h)
    [position] = (await h.broker.positions()).values()
    assert (position.side, position.qty) == (Side.LONG, QTY)
    assert set(await h.resting_protection()) == {"stop_loss", "take_profit"}


async def test_crash_after_target_filled_before_its_fills_are_recorded(h: LiveHarness) -> None:
    """The target fills, is stored as filled, the process dies: restart books the real trade."""
    await h.next_candle()
    await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    await h.finish()
    await h.next_candle()
    await h.sim.advance_to(h.candle.close_time, step_s=15)  # the target fills on the venue
    await die_in(h, h.broker.on_closed_candle(h.candle), "fills_of")
    await h.restart()
    assert recorded_fills(h) == sim_fills(h)
    assert await h.broker.positions() == {}
    [trade] = h.store.trades()
    assert trade.exit_reason == "take_profit"
    assert trade.exit_price == Decimal(20400)
    assert trade.pnl == (Decimal(20400) - trade.entry_price) * QTY
    assert await h.resting_protection() == {}


async def test_crash_after_the_target_was_accepted_before_its_answer(h: LiveHarness) -> None:
    """The target rests on the venue but is still pending here: restart learns it is open, and
    when it fires the candle close settles the position as a take-profit."""
    await h.next_candle()
    opening = h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    await die_in(h, opening, "conditional_order", sent=True, nth=2)  # stop answered, target not
    await h.restart()
    states = {o.role.value: o.state.value for o in h.store.live_orders()}
    assert states == {"stop_loss": "open", "take_profit": "open"}
    await h.finish()
    await h.next_candle()
    await h.finish()  # the target fills inside this candle; the close settles it
    assert await h.broker.positions() == {}
    [trade] = h.store.trades()
    assert (trade.exit_reason, trade.exit_price) == ("take_profit", Decimal(20400))
    assert recorded_fills(h) == sim_fills(h)
    assert await h.resting_protection() == {}


async def test_crash_before_the_entry_is_booked_then_its_target_fills_while_down(
    h: LiveHarness,
) -> None:
    """The entry is filled and protected, the process dies before booking it, and its target
    fills while it is down: restart books that round trip with the venue's PnL."""
    await h.next_candle()
    opening = h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    await die_in(h, opening, "fills_of")
    await h.broker.stop()
    await h.next_candle()
    await h.sim.advance_to(h.candle.close_time, step_s=15)  # the target fills while down
    await h.restart()
    assert recorded_fills(h) == sim_fills(h)
    assert await h.broker.positions() == {}
    [trade] = h.store.trades()
    assert (trade.exit_reason, trade.exit_price) == ("take_profit", Decimal(20400))
    assert trade.pnl == sum((f.realized_pnl for f in h.store.fills()), Decimal(0)) != 0
    assert await h.resting_protection() == {}
