"""A hole REST does not close costs a klines call per growing interval, not per stream update;
the spacing never holds back the just-closed candle the cycle waits for."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ccxt
import pytest
from structlog.testing import capture_logs

from tbotd.domain.values import datetime_to_ms
from tbotd.marketdata.feed import ASKED, CandleFeed
from tbotd.marketdata.throttle import FillThrottle
from tbotd.ops.clock import ManualClock
from tbotd.store import Store

SYMBOL = "BTC/USDT:USDT"
STEP = timedelta(minutes=5)
T0 = datetime(2024, 6, 1, tzinfo=UTC)  # the hole: the candle opened at T0 never streamed
HISTORY = 10  # closed candles before T0, fetched at warm-up
LATE = 28  # the outage starts 28 s after candle 0's close: the worst phase for a 30 s spacing


def row(i: int) -> list[Any]:
    """The candle opened ``i`` steps after T0."""
    return [datetime_to_ms(T0 + i * STEP), 100.0, 110.0, 90.0, 100.0, 5.0]


class WallClock(ManualClock):
    """A manual clock whose seconds are wall seconds (the feed spaces its fills in wall time)."""

    def wall_seconds(self, seconds: float) -> float:
        return seconds


@dataclass
class FakeBinance:
    """Klines from ``served`` (None: REST down; ``failures``: the next that many calls fail;
    ``gate``: calls wait for it, a slow REST); the stream hands out the latest pushed update,
    as ccxt's cache does, or raises a drop."""

    clock: WallClock
    served: list[list[Any]] | None = None
    failures: int = 0
    gate: asyncio.Event | None = None
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
        if self.gate is not None:
            await self.gate.wait()
        if self.served is None or self.failures:
            self.failures = max(self.failures - 1, 0)
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


@asynccontextmanager
async def started(tmp_path: Path, late_s: float = 1.0) -> AsyncIterator[Rig]:
    """A feed warmed up to T0 and started ``late_s`` after candle 0's close, candle 0 missing."""
    clock = WallClock(T0)
    venue = FakeBinance(clock, served=[row(i) for i in range(-HISTORY, 0)])
    store = Store.open(tmp_path / "feed.sqlite")
    start = (T0 + STEP + timedelta(seconds=late_s)).timestamp()
    monotonic = lambda: clock.now().timestamp() - start  # noqa: E731 — seconds since the start
    feed = CandleFeed(venue, [SYMBOL], "5m", store, clock, warmup_bars=HISTORY, monotonic=monotonic)
    await feed.warm_up()
    assert feed.last_closed(SYMBOL) == T0 - STEP
    await clock.set(T0 + STEP + timedelta(seconds=late_s))  # candle 0 closed; 1 forming
    venue.start, venue.klines_at = clock.now(), []
    task = asyncio.create_task(feed.run())
    try:
        yield Rig(clock, venue, feed, store)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A feed streaming candle 1 while candle 0 is missing (a hole)."""
    async with started(tmp_path) as rig:
        yield rig


async def test_a_failing_rest_is_asked_at_growing_intervals_not_per_stream_update(
    rig: Rig,
) -> None:
    """REST down through 120 stream updates: a klines call per 4 s at most, not one per update."""
    rig.venue.served = None
    with capture_logs() as logs:
        await rig.stream(1, 120)
    calls = rig.venue.klines_at
    assert len(calls) <= 3 + 120 / 4, calls  # the old feed: about one per update, each retried 6×
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(b >= a for a, b in itertools.pairwise(gaps)), gaps  # growing apart...
    assert gaps[0] >= 2, gaps  # ...from 2 s...
    assert max(gaps) == 4, gaps  # ...capped well inside the cycle's candle wait: it keeps asking
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


async def test_the_just_closed_candle_is_not_held_back_when_rest_returns_at_the_close(
    tmp_path: Path,
) -> None:
    """REST down for minutes, back at a close: the just-closed candle is stored within two
    seconds of it, well inside the cycle's 20 s candle wait (not after the spacing)."""
    async with started(tmp_path, late_s=LATE) as rig:
        rig.venue.served = None
        close = T0 + 2 * STEP
        while rig.clock.now() < close - timedelta(seconds=1):
            await rig.stream(1, 1)
        assert len(rig.venue.klines_at) >= 5  # tried, spaced out, all the while
        assert rig.feed.last_closed(SYMBOL) == T0 - STEP  # the hole is still open
        await rig.clock.set(close)
        rig.venue.served = [row(i) for i in range(-HISTORY, 3)]  # candle 2 forming
        await rig.stream(2, 2)
        assert rig.feed.last_closed(SYMBOL) == T0 + STEP  # 30 s spacing (6b3eed0): 28 s late
        assert rig.stored()[-2:] == [T0, T0 + STEP]


@pytest.mark.parametrize("back_s", [3, 10, 17])
async def test_rest_back_late_in_the_candle_wait_still_brings_the_just_closed_candle_in_time(
    tmp_path: Path, back_s: int
) -> None:
    """REST down for minutes and back ``back_s`` after a close (the first try after the close
    failed): the just-closed candle is stored inside the cycle's 20 s candle wait."""
    async with started(tmp_path, late_s=LATE) as rig:
        rig.venue.served = None
        close = T0 + 2 * STEP
        while rig.clock.now() < close + timedelta(seconds=back_s):
            await rig.stream(2 if rig.clock.now() >= close else 1, 1)
        rig.venue.served = [row(i) for i in range(-HISTORY, 3)]  # candle 2 forming
        while rig.clock.now() < close + timedelta(seconds=20):
            await rig.stream(2, 1)
            if rig.feed.last_closed(SYMBOL) == T0 + STEP:
                break
        assert rig.feed.last_closed(SYMBOL) == T0 + STEP  # 8 s spacing (fe12061): +24 s at 17
        assert rig.clock.now() <= close + timedelta(seconds=20)


async def test_a_stretch_the_stream_ended_does_not_delay_a_later_candle(rig: Rig) -> None:
    """A stretch of failed confirmations ended by the stream's own roll-over leaves no spacing
    behind: a later candle whose first confirmation fails comes with the first retry."""
    rig.venue.served = [row(i) for i in range(-HISTORY, 2)]
    await rig.stream(1, 1)  # REST fills the hole; candle 1 forms on the stream
    assert rig.feed.last_closed(SYMBOL) == T0
    rig.venue.served = None  # REST down; candle 1 closes with no roll-over: confirmations fail
    await rig.clock.set(T0 + 2 * STEP + timedelta(seconds=20))
    assert len(rig.venue.klines_at) >= 4  # the hole's fill, then three spaced-out confirmations
    rig.venue.served = [row(i) for i in range(-HISTORY, 10)]
    await rig.stream(2, 1)  # the stream's roll-over emits candle 1: the stretch is over
    assert rig.feed.last_closed(SYMBOL) == T0 + STEP
    for k in range(3, 6):  # normal bars: the stream closes each candle at once
        await rig.clock.set(T0 + k * STEP + timedelta(seconds=0.5))
        await rig.stream(k, 1)
    assert rig.feed.last_closed(SYMBOL) == T0 + 4 * STEP
    rig.venue.failures = 1  # candle 5's close: no roll-over, its first confirmation fails
    close = T0 + 6 * STEP
    await rig.clock.set(close + timedelta(seconds=8))  # tries at +4 (fails) and +7 (2 s later)
    assert rig.feed.last_closed(SYMBOL) == T0 + 5 * STEP  # old code: +22 s, past the wait


async def test_two_askers_at_once_make_one_rest_call(rig: Rig) -> None:
    """The stream and the confirmation timer asking while REST is slow: one klines call."""
    rig.venue.gate = asyncio.Event()
    rig.venue.served = [row(i) for i in range(-HISTORY, 2)]
    await rig.stream(1, 1)  # the stream's fill waits on REST
    await rig.clock.advance(3)  # the timer finds candle 0 past its close + grace and asks too
    assert rig.venue.klines_at == [0]
    rig.venue.gate.set()
    await rig.clock.advance(1)
    assert rig.venue.klines_at == [0]
    assert rig.feed.last_closed(SYMBOL) == T0


def test_a_cancelled_fill_does_not_block_the_next() -> None:
    """A fill cancelled while in flight (shutdown, a redial) leaves the next ask free to run."""
    throttle = FillThrottle(ASKED)
    with pytest.raises(asyncio.CancelledError), throttle.fill(0):
        raise asyncio.CancelledError
    assert throttle.due(0.0, T0, 0)
