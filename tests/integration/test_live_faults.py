"""The live broker against the sim's faults: no duplicate orders, nothing left unresolved."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tbotd.domain import OrderState, Side
from tbotd.sim import DEMO_API_KEY
from tests.contract.harness import LINEAR, STEP, LiveHarness
from tests.contract.test_broker_contract import FIXED, QTY, QUIET

TP_CANDLE = ("20000", "20500", "19990", "20450")


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[LiveHarness]:
    """The live broker on a scripted sim: a quiet candle, then one that reaches the target."""
    harness = LiveHarness(LINEAR, [QUIET, TP_CANDLE, QUIET], tmp_path / "live.sqlite")
    await harness.start()
    yield harness
    await harness.close()


def sim_orders(h: LiveHarness) -> list[dict[str, object]]:
    """Every regular order the sim ever accepted for the demo account."""
    return list(h.sim.state(DEMO_API_KEY)["orders"])


@pytest.mark.parametrize("mode", ["timeout", "5xx", "unknown"])
async def test_lost_entry_reply_creates_no_duplicate(h: LiveHarness, mode: str) -> None:
    """The entry executes but its answer is lost: found by client id, recorded, sent once."""
    await h.next_candle()
    h.sim.set_faults(lose_replies=1, lose_reply_mode=mode, hang_s=1)
    position = await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    assert h.sim.faults.lost_replies == 1
    assert (position.side, position.qty) == (Side.LONG, QTY)
    entries = [o for o in sim_orders(h) if o["type"] == "MARKET"]
    assert len(entries) == 1
    [entry] = [o for o in h.store.orders() if o.role.value == "entry"]
    assert [s for s, _, _ in h.store.order_history(entry.client_id)] == [
        OrderState.PENDING,
        OrderState.UNKNOWN,
        OrderState.FILLED,
    ]
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }


async def test_every_reply_lost_still_leaves_one_entry_one_stop_one_target(
    h: LiveHarness,
) -> None:
    """Entry, stop and target all execute with their answers lost: each exists exactly once."""
    await h.next_candle()
    h.sim.set_faults(lose_replies=3, lose_reply_mode="5xx")
    await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    assert h.sim.faults.lost_replies == 3
    assert len([o for o in sim_orders(h) if o["type"] == "MARKET"]) == 1
    algos = [a for a in h.sim.state(DEMO_API_KEY)["algo_orders"] if a["status"] == "NEW"]
    assert len(algos) == 2
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }


async def test_rate_limited_order_backs_off_and_succeeds(h: LiveHarness) -> None:
    """A 429 on placement means not executed: the same order is retried after a backoff."""
    assert random.Random(3).random() < 0.5  # seed 3: the first request gets a 429
    await h.next_candle()
    h.sim.set_faults(rate_limit_rate=0.5, seed=3)
    position = await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    h.sim.set_faults(rate_limit_rate=0.0)
    assert position.qty == QTY
    assert len([o for o in sim_orders(h) if o["type"] == "MARKET"]) == 1
    assert await h.resting_protection() == {
        "stop_loss": Decimal(19800),
        "take_profit": Decimal(20400),
    }


async def test_restart_after_crash_between_send_and_answer_resolves_the_order(
    h: LiveHarness,
) -> None:
    """An entry recorded as sent but never answered (the process died) is resolved at start."""
    await h.next_candle()
    h.sim.set_faults(lose_replies=1, lose_reply_mode="timeout", hang_s=30)
    task = asyncio.create_task(
        h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    )
    await asyncio.wait_for(h.sim.faults.reply_lost.wait(), 10)  # executed; the answer hangs
    task.cancel()  # the process "dies" here
    await asyncio.gather(task, return_exceptions=True)
    h.sim.set_faults(lose_replies=0)
    await h.restart()
    [position] = (await h.broker.positions()).values()
    assert (position.side, position.qty) == (Side.LONG, QTY)
    assert len([o for o in sim_orders(h) if o["type"] == "MARKET"]) == 1
    protection = await h.resting_protection()
    assert set(protection) == {"stop_loss", "take_profit"}
    assert h.store.events("resolved")


async def test_user_stream_cancels_the_sibling_without_waiting_for_the_candle(
    h: LiveHarness,
) -> None:
    """When the target fills, the stop is cancelled on the stream's word, before the close."""
    await h.next_candle()
    await h.broker.open_position(h.venue.symbol, Side.LONG, QTY, FIXED, h.candle_time)
    watcher = asyncio.create_task(h.broker.watch_user_stream())
    await h.sim.wait_for_user_stream(DEMO_API_KEY)
    await h.finish()
    await h.next_candle()
    await h.sim.advance(240, step_s=15)  # the target is reached about 180 s in
    async with h.broker.synced:
        await asyncio.wait_for(h.broker.synced.wait_for(lambda: bool(h.store.trades())), 10)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    [trade] = h.store.trades()
    assert trade.exit_reason == "take_profit"
    assert await h.resting_protection() == {}
    assert h.candle_time + STEP > h.clock.now()  # still inside the candle
