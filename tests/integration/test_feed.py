"""The candle feed delivers every closed candle exactly once, through drops and faults."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tbotd.domain.values import ms_to_datetime
from tbotd.marketdata.feed import CandleFeed
from tbotd.sim import SimExchange
from tbotd.sim.client import make_ccxt
from tbotd.store import Store
from tests.simkit import FollowingClock, generated_config, running

SYMBOL = "BTC/USDT:USDT"
STEP = timedelta(minutes=5)


@dataclass
class Rig:
    sim: SimExchange
    feed: CandleFeed
    store: Store
    task: asyncio.Task[None]

    async def advance(self, candles: int) -> None:
        """Move the market ``candles`` candles on, streaming forming updates on the way."""
        await self.sim.advance(candles * 300, step_s=60)

    def stored(self) -> list[datetime]:
        return [c.open_time for c in self.store.candles(SYMBOL, "5m")]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A sim at a candle boundary, and a warmed-up feed streaming from it."""
    async with running(generated_config()) as sim:
        exchange = make_ccxt("binanceusdm", sim.url, config={"timeout": 3000})
        store = Store.open(tmp_path / "feed.sqlite")
        feed = CandleFeed(exchange, [SYMBOL], "5m", store, FollowingClock(sim), warmup_bars=1500)
        await feed.warm_up()
        task = asyncio.create_task(feed.run())
        await asyncio.wait_for(feed.live.wait(), 10)
        yield Rig(sim, feed, store, task)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await exchange.close()
        store.close()


def consecutive(times: list[datetime]) -> bool:
    return all(b - a == STEP for a, b in itertools.pairwise(times))


async def test_warm_up_pages_history_but_never_the_forming_candle(rig: Rig) -> None:
    """1,500 candles of history arrive over two pages; the forming candle is not stored."""
    times = rig.stored()
    assert len(times) >= 1500
    assert consecutive(times)
    now = ms_to_datetime(rig.sim.engine.now_ms)
    assert times[-1] + STEP <= now
    assert rig.feed.last_closed(SYMBOL) == times[-1]


async def test_each_closed_candle_is_emitted_once_as_the_market_moves(rig: Rig) -> None:
    """Streaming five candles on adds exactly those five, each once, none still forming."""
    before, emitted = rig.stored(), rig.feed.closed_count
    await rig.advance(5)
    target = before[-1] + 5 * STEP
    candles = await rig.feed.wait_closed(target, timeout_s=10)
    assert SYMBOL in candles
    after = rig.stored()
    assert after[: len(before)] == before
    assert after[len(before) :] == [before[-1] + i * STEP for i in range(1, 6)]
    assert rig.feed.closed_count - emitted == 5


async def test_dropped_websocket_loses_and_duplicates_nothing(rig: Rig) -> None:
    """Candles that close while the socket is down come from REST; none twice, none missing."""
    before, emitted = rig.stored(), rig.feed.closed_count
    await rig.sim.drop_websockets()
    await rig.advance(3)  # nobody is listening while these close
    await rig.feed.wait_closed(before[-1] + 3 * STEP, timeout_s=10)
    await rig.advance(2)  # and the stream is back
    await rig.feed.wait_closed(before[-1] + 5 * STEP, timeout_s=10)
    after = rig.stored()
    assert consecutive(after)
    assert after[-1] == before[-1] + 5 * STEP
    assert rig.feed.closed_count - emitted == 5
    assert rig.feed.reconnects >= 1
    assert rig.store.events("stream-lost")


async def test_rate_limited_gap_fill_backs_off_and_succeeds(rig: Rig) -> None:
    """With half of REST calls answered 429, the gap fill retries and completes."""
    before = rig.stored()
    assert random.Random(3).random() < 0.5  # with seed 3 the first REST call gets a 429
    rig.sim.set_faults(rate_limit_rate=0.5, seed=3)
    await rig.sim.drop_websockets()
    await rig.advance(4)
    await rig.feed.wait_closed(before[-1] + 4 * STEP, timeout_s=10)
    rig.sim.set_faults(rate_limit_rate=0.0)
    assert consecutive(rig.stored())
    assert rig.stored()[-1] == before[-1] + 4 * STEP


async def test_hanging_requests_time_out_and_are_retried(tmp_path: Path) -> None:
    """A REST call that hangs past the client's timeout is abandoned and retried."""
    async with running(generated_config()) as sim:
        exchange = make_ccxt("binanceusdm", sim.url, config={"timeout": 300})
        store = Store.open(tmp_path / "feed.sqlite")
        assert random.Random(1).random() < 0.5  # with seed 1 the very first call hangs
        sim.set_faults(hang_rate=0.5, hang_s=2, seed=1)
        feed = CandleFeed(exchange, [SYMBOL], "5m", store, FollowingClock(sim), warmup_bars=50)
        await feed.warm_up()
        sim.set_faults(hang_rate=0.0)
        assert len(store.candles(SYMBOL, "5m")) >= 49
        await exchange.close()
