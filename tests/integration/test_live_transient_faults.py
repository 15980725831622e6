"""The live broker rides out transient venue failures (found by the fault matrix).

Each test makes one venue call fail the way a 503 or a 429 makes it fail, a set number of times,
and checks the broker carried on as a careful trader would: no position closed because of a
glitch, no cycle lost to one failed read, no close reported as failed because a cancel's answer
was lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tbotd.domain import Side
from tbotd.domain.errors import OutcomeUnknownError, RetryableError
from tests.contract.harness import LINEAR, LiveHarness
from tests.contract.test_broker_contract import FIXED, QTY, QUIET


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[LiveHarness]:
    """The live broker on a quiet scripted sim."""
    harness = LiveHarness(LINEAR, [QUIET] * 4, tmp_path / "live.sqlite")
    await harness.start()
    yield harness
    await harness.close()


def fail_first(h: LiveHarness, name: str, error: Exception, times: int = 1) -> list[int]:
    """The venue method ``name`` raises ``error`` (without reaching the venue) ``times`` times;
    returns a one-item list counting the calls."""
    original = getattr(h.broker._venue, name)
    calls = [0]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return await original(*args, **kwargs)

    setattr(h.broker._venue, name, flaky)
    return calls


async def test_a_stop_refused_at_the_edge_is_placed_again_not_the_position_closed(
    h: LiveHarness,
) -> None:
    """A 503 on the stop's placement (never reached the venue, as the lookup proves) is
    retried; the position stays open and protected (regression: it was closed at market as
    "unprotectable")."""
    await h.next_candle()
    fail_first(h, "conditional_order", OutcomeUnknownError("503 Service Unavailable"))
    position = await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    assert (position.side, position.qty) == (Side.LONG, QTY)
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }
    assert h.store.trades() == []
    assert not h.store.events("alert")


async def test_reads_ride_out_transient_failures(h: LiveHarness) -> None:
    """A 503 on the balance, the positions or the open orders is retried, not fatal to the
    cycle or to reconciliation (regression: one failed read failed the whole cycle)."""
    await h.next_candle()
    await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    balance = fail_first(h, "balance", RetryableError("503 Service Unavailable"), times=2)
    equity = await h.broker.equity()
    assert equity.balance > 0
    assert balance == [3]
    fail_first(h, "positions", RetryableError("429 Too Many Requests"))
    fail_first(h, "open_orders", RetryableError("503 Service Unavailable"))
    assert await h.broker.reconcile() == 0


async def test_a_lost_cancel_answer_does_not_fail_the_close(h: LiveHarness) -> None:
    """The close fills; cancelling the stop loses its answer once: asked again, the close is
    reported done and nothing is left resting (regression: the close was reported failed, so
    a flip's new side was skipped)."""
    await h.next_candle()
    await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    await h.finish()
    await h.next_candle()
    fail_first(h, "cancel", RetryableError("502 Bad Gateway"))
    trade = await h.broker.close_position(h.venue.symbol, "flip", h.candle_time)
    assert trade is not None
    assert await h.resting_protection() == {}
    assert h.store.live_orders() == []


async def test_the_user_stream_outlives_a_failed_reconciliation(h: LiveHarness) -> None:
    """The stream drops and the reconciliation after it fails once: the watcher keeps going
    and reconciles again (regression: the task ended for good)."""
    reconciled = asyncio.Event()
    calls = [0]
    original = h.broker.reconcile

    async def flaky_reconcile() -> int:
        calls[0] += 1
        if calls[0] == 1:
            raise RetryableError("503 Service Unavailable")
        reconciled.set()
        return await original()

    h.broker.reconcile = flaky_reconcile  # type: ignore[method-assign]
    watcher = asyncio.create_task(h.broker.watch_user_stream())
    try:
        await h.sim.wait_for_user_stream("tbotd-sim-demo-key")
        await h.sim.drop_websockets()
        await asyncio.wait_for(reconciled.wait(), 10)
        assert calls[0] == 2
        assert not watcher.done()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


SL_CANDLE = ("20000", "20010", "19700", "19750")  # reaches the 19,800 stop


@pytest.mark.parametrize("between", ["account", "open_orders"])
async def test_a_stop_firing_while_reconciling_is_settled_as_a_stop(
    tmp_path: Path, between: str
) -> None:
    """The stop fires between reconciliation's snapshots of open orders and positions (the
    ``account`` request): the
    position is booked as stopped out with its fill, never as closed "externally" with no PnL
    nor re-protected while flat (regression: both happened in the soak)."""
    h = LiveHarness(LINEAR, [QUIET, SL_CANDLE, QUIET], tmp_path / "live.sqlite")
    await h.start()
    try:
        await h.next_candle()
        await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
        await h.finish()
        await h.next_candle()
        original = getattr(h.broker._venue, between)
        calls = [0]

        async def stop_fires_first(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == 2 or between == "account":  # the second open-orders snapshot
                await h.sim.advance_to(h.candle.close_time, step_s=15)
            return await original(*args, **kwargs)

        setattr(h.broker._venue, between, stop_fires_first)
        await h.broker.reconcile()
        setattr(h.broker._venue, between, original)
        [trade] = h.store.trades()
        assert (trade.exit_reason, trade.exit_price) == ("stop_loss", Decimal(19800))
        assert trade.pnl == (Decimal(19800) - trade.entry_price) * QTY
        assert await h.broker.positions() == {}
        assert await h.resting_protection() == {}
        assert h.store.live_orders() == []
    finally:
        await h.close()
