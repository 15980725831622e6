"""A hole REST does not close costs a klines call per growing interval, not per stream update."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ccxt
import pytest
from structlog.testing import capture_logs

from tbotd.domain.values import datetime_to_ms
from tbotd.marketdata.feed import CandleFeed
from tbotd.ops.clock import ManualClock
from tbotd.store import Store

SYMBOL = "BTC/USDT:USDT"
STEP = timedelta(minutes=5)
T0 = datetime(2024, 6, 1, tzinfo=UTC)  # the hole: the candle opened at T0 never streamed
HISTORY = 10  # closed candles before T0, fetched at warm-up


def row(i: int) -> list[Any]:
    """The candle opened ``i`` steps after T0."""
    return [datetime_to_ms(T0 + i * STEP), 100.0, 110.0, 90.0, 100.0, 5.0]


class WallClock(ManualClock):
    """A manual clock whose seconds are wall seconds (the feed spaces its fills in wall time)."""

    def wall_seconds(self, seconds: float) -> float:
        return seconds


@dataclass
class FakeBinance:
    """Klines from ``served`` (None: REST down); the stream hands out the latest pushed update,
    as ccxt's cache does, or raises a drop."""

    clock: WallClock
    served: list[list[Any]] | None = None
    klines_at: list[float] = field(default_factory=list)  # seconds after the test's start
    start: datetime = T0
    _pushed: list[Any] | Exception | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, update: list[Any] | Exception) -> None:
        self._pushed = update
        self._arrived.set()

    async def watch_ohlcv(self, _symbol: str, _timeframe: str) -> list[Any]:
        while self._pushed is None:
            self._arrived.clear()
            await self._arrived.wait()
        update, self._pushed = self._pushed, None
        if isinstance(update, Exception):
            raise update
        return [list(update)]

    async def fetch_ohlcv(self, _symbol: str, _tf: str, since: int, limit: int) -> list[Any]:
        self.klines_at.append((self.clock.now() - self.start).total_seconds())
        if self.served is None:
            raise ccxt.NetworkError("REST down")
        return [r for r in self.served if r[0] >= since][:limit]

    async def fetch_time(self) -> int:
        return datetime_to_ms(self.clock.now())


@dataclass
class Rig:
    clock: WallClock
    venue: FakeBinance
    feed: CandleFeed
    store: Store

    async def stream(self, i: int, seconds: int) -> None:
        """The stream shows candle ``i`` forming once a second for ``seconds`` seconds."""
        for _ in range(seconds):
            self.venue.push(row(i))
            await self.clock.advance(1)

    def stored(self) -> list[datetime]:
        return [c.open_time for c in self.store.candles(SYMBOL, "5m")]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A feed warmed up to T0 and streaming candle 1 while candle 0 is missing (a hole)."""
    clock = WallClock(T0)
    venue = FakeBinance(clock, served=[row(i) for i in range(-HISTORY, 0)])
    store = Store.open(tmp_path / "feed.sqlite")
    start = (T0 + STEP + timedelta(seconds=1)).timestamp()
    monotonic = lambda: clock.now().timestamp() - start  # noqa: E731 — seconds since the start
    feed = CandleFeed(venue, [SYMBOL], "5m", store, clock, warmup_bars=HISTORY, monotonic=monotonic)
    await feed.warm_up()
    assert feed.last_closed(SYMBOL) == T0 - STEP
    await clock.set(T0 + STEP + timedelta(seconds=1))  # candle 0 closed; 1 forming
    venue.start, venue.klines_at = clock.now(), []
    task = asyncio.create_task(feed.run())
    yield Rig(clock, venue, feed, store)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()


async def test_a_failing_rest_is_asked_at_growing_intervals_not_per_stream_update(
    rig: Rig,
) -> None:
    """REST down through 120 stream updates: under ten klines calls, further and further apart."""
    rig.venue.served = None
    with capture_logs() as logs:
        await rig.stream(1, 120)
    calls = rig.venue.klines_at
    assert 5 <= len(calls) <= 9, calls  # the old feed: about one per update, each retried 6×
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(b >= a for a, b in itertools.pairwise(gaps)), gaps  # growing apart...
    assert gaps[0] >= 2, gaps  # ...from 2 s...
    assert max(gaps) <= 31, gaps  # ...capped: it keeps asking
    assert T0 not in rig.stored()  # the hole stays a hole: nothing is invented
    said = [e for e in logs if e["event"].startswith("gap fills spaced out")]
    assert len(said) == 1  # the operator hears of the stretch once, not per update
    assert rig.feed.last_closed(SYMBOL) == T0 - STEP


async def test_a_lagging_rest_fills_the_hole_then_the_next_hole_is_fetched_at_once(
    rig: Rig,
) -> None:
    """REST serving the hole's candle late: it is emitted, and the next hole is not delayed."""
    rig.venue.served = [row(i) for i in range(-HISTORY, 0)]  # candle 0 not served yet
    await rig.stream(1, 1)
    rig.venue.served = [row(i) for i in range(-HISTORY, 2)]  # now it is (and 1 forming)
    await rig.stream(1, 3)
    assert rig.venue.klines_at == [0, 2]  # the update at 1 s waited for the throttle
    assert rig.feed.last_closed(SYMBOL) == T0
    assert rig.stored()[-2:] == [T0 - STEP, T0]
    # candle 1 rolls over on the stream, candle 2 never streams: a new hole, fetched at once
    await rig.clock.set(T0 + 3 * STEP + timedelta(seconds=1))
    rig.venue.served = [row(i) for i in range(-HISTORY, 4)]
    asked_at = (rig.clock.now() - rig.venue.start).total_seconds()
    await rig.stream(3, 1)
    assert rig.venue.klines_at[-1] == asked_at  # (candle 1 came from the confirmation timer)
    assert rig.stored()[-3:] == [T0, T0 + STEP, T0 + 2 * STEP]


async def test_a_reconnect_gap_fills_at_once_even_while_asked_fills_wait(rig: Rig) -> None:
    """A dropped stream is refilled from REST right after reconnecting, whatever the spacing."""
    rig.venue.served = None
    await rig.stream(1, 1)  # a failed fill: asked fills now wait 2 s
    assert rig.venue.klines_at == [0]
    rig.venue.served = [row(i) for i in range(-HISTORY, 2)]
    rig.venue.push(ccxt.NetworkError("socket closed"))
    await rig.clock.advance(0.5)  # the first reconnect backoff is at most 0.5 s
    assert len(rig.venue.klines_at) == 2
    assert rig.venue.klines_at[1] <= 1.5  # not held to the 2 s the asked fills wait
    assert rig.feed.reconnects == 1
    assert rig.feed.last_closed(SYMBOL) == T0
