"""The candle feed: ccxt.pro streams plus REST, turned into closed candles exactly once each.

Per symbol, one task loops on ``watch_ohlcv`` and hands copies of the rows to a
:class:`~tbotd.marketdata.assembler.CandleAssembler`; a timer asks REST to confirm a candle whose
close plus grace has passed without a roll-over (illiquid markets). A dropped socket marks the
stream lost, backs off with jitter and reconnects; REST fills the hole before the stream is
trusted again; the fills a hole asks for meanwhile (each stream update, each confirmation
tick) are spaced out per symbol (:mod:`~tbotd.marketdata.throttle`). Warm-up history is paged
from REST at start. Closed candles are stored, then announced to waiters (the daemon's cycle);
invalid rows and real exchange gaps become events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import ccxt

from tbotd.domain.errors import RetryableError, StorageUnavailableError
from tbotd.domain.market import Candle
from tbotd.domain.values import (
    datetime_to_ms,
    ms_to_datetime,
    timeframe_delta,
    timeframe_ms,
    to_decimal,
)
from tbotd.execution.broker import PriceRef
from tbotd.execution.venue import call
from tbotd.marketdata.assembler import CandleAssembler, Outcome
from tbotd.marketdata.throttle import FillThrottle
from tbotd.ops.clock import Clock
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import DAEMON_METRICS
from tbotd.ops.retry import Backoff, retry
from tbotd.store import Store

log = get_logger(__name__)
PAGE = 1000  # ccxt caps Binance klines at 1000 per call
RECONNECT = Backoff(attempts=1_000_000, base_s=0.5, cap_s=30.0)
REST = Backoff(attempts=6, base_s=0.5, cap_s=10.0)
# Gap fills a hole asks for (stream updates, confirmation ticks): one REST try each (attempts=1:
# the spacing is their retry; REST's six tries nested in it would multiply the calls by six),
# spaced 2 then 4 s apart while fills leave the symbol behind on the same candle. 2 s: REST
# usually serves a closed candle within seconds of the stream's roll-over, so the common lag
# costs one extra call and about 2 s. The real limit on the spacing is the cycle's candle wait
# (daemon.candle_wait_s, 20 s by default): a candle later than that is skipped by the cycle
# ("candle-missing"). So the first fill asked after each bar boundary runs at once whatever the
# spacing, the spacing starts again from 2 s at each boundary (FillThrottle.fill), and the cap
# is 4 s: REST back at any moment inside the wait is asked again within about 4 s (7 s when
# only the 3 s confirmation timer asks). While REST is down that is about one klines call per
# 4 s per symbol plus one per bar boundary, instead of one per stream update (~4 a second).
ASKED = Backoff(attempts=1, base_s=2.0, cap_s=4.0)
MAX_UNWRITTEN = 5000  # candles kept in memory while the database cannot be written


class CandleFeed:
    """Closed candles of ``symbols`` on ``timeframe`` from a ccxt.pro exchange."""

    def __init__(
        self,
        exchange: Any,
        symbols: list[str],
        timeframe: str,
        store: Store,
        clock: Clock,
        grace_s: float = 3.0,
        warmup_bars: int = 600,
        silent_after_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._exchange, self._symbols, self.timeframe = exchange, symbols, timeframe
        self._store, self._clock = store, clock
        self._grace = timedelta(seconds=grace_s)
        self._step = timeframe_delta(timeframe)
        self._warmup = warmup_bars
        self._assemblers = {
            s: CandleAssembler(s, timeframe, store.last_candle_time(s, timeframe)) for s in symbols
        }
        self._forming: dict[str, list[Any]] = {}
        self._changed = asyncio.Condition()
        self.live = asyncio.Event()  # set once every stream has delivered since start
        self._streamed: set[str] = set()
        self.reconnects = 0
        self.closed_count = 0
        self._unwritten: list[Candle] = []  # closed while the database could not be written
        self._silent_after_s = silent_after_s
        self._heard: dict[str, float] = {}  # symbol → monotonic time of its last stream update
        self.silent: set[str] = set()  # streams found silent and not heard from since
        # spaces out asked-for gap fills: real elapsed seconds, not the time of day (which can step)
        self._monotonic = monotonic
        self._throttles = {s: FillThrottle(ASKED) for s in symbols}

    # -- the daemon's view ---------------------------------------------------------------------

    def last_closed(self, symbol: str) -> datetime | None:
        """Open time of the newest closed candle of ``symbol``."""
        return self._assemblers[symbol].last_closed

    def forming_open(self) -> datetime | None:
        """Open time of the newest forming candle any stream has shown: the venue's "now" to
        the nearest candle, without a request (None before the first update)."""
        opens = [int(row[0]) for row in self._forming.values()]
        return ms_to_datetime(max(opens)) if opens else None

    def price(self, symbol: str) -> PriceRef:
        """The price a market order would fill near now: the forming candle's open right after
        a close (what the paper broker and the backtest fill at), else its latest price."""
        row = self._forming.get(symbol)
        last = self._assemblers[symbol].last_closed
        if row is not None:
            opened = datetime_to_ms(last + self._step) if last else None
            at = ms_to_datetime(int(row[0]))
            price = row[1] if opened is not None and row[0] == opened else row[4]
            return PriceRef(to_decimal(price, "price"), at)
        candles = self._store.candles(symbol, self.timeframe, limit=1)
        if not candles:
            raise RetryableError(f"no price for {symbol} yet")
        return PriceRef(candles[-1].close, candles[-1].close_time)

    async def wait_closed(self, open_time: datetime, timeout_s: float) -> dict[str, Candle]:
        """The candles opened at ``open_time`` of every symbol that has it by the deadline."""

        def ready() -> bool:
            return all(
                (t := a.last_closed) is not None and t >= open_time
                for a in self._assemblers.values()
            )

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), timeout_s)
            except TimeoutError:
                log.warning(
                    "cycle deadline: candles missing",
                    candle=open_time.isoformat(),
                    missing=[
                        s
                        for s, a in self._assemblers.items()
                        if (a.last_closed or open_time - self._step) < open_time
                    ],
                )
        found = {}
        for symbol in self._symbols:
            candles = self._store.candles(symbol, self.timeframe, since=open_time, limit=None)
            if candles and candles[0].open_time == open_time:
                found[symbol] = candles[0]
        return found

    # -- running -------------------------------------------------------------------------------

    async def warm_up(self) -> None:
        """Page REST history up to now into the store (start, and after every reconnect)."""
        for symbol in self._symbols:
            await self._gap_fill(symbol)

    async def run(self) -> None:
        """Stream every symbol and confirm late candles until cancelled."""
        async with asyncio.TaskGroup() as group:
            for symbol in self._symbols:
                group.create_task(self._stream(symbol), name=f"stream {symbol}")
            group.create_task(self._confirm_forever(), name="candle confirmations")
            group.create_task(self._watch_silence(), name="stream silence")

    def silent_for(self, symbol: str) -> float:
        """Wall seconds since ``symbol``'s stream last delivered anything (0 before it started)."""
        heard = self._heard.get(symbol)
        return 0.0 if heard is None else time.monotonic() - heard

    async def _watch_silence(self) -> None:
        """Redial a stream connected but silent past ``silent_after_s`` (wall seconds): sizing
        on a frozen price, or waiting for REST alone, is worse than a redial. Off the streams'
        own path, so a message costs nothing more than a clock read. A silent stream stays in
        :attr:`silent` (readiness says so) until it delivers again; redialled once per
        interval."""
        started = time.monotonic()
        redialled: dict[str, float] = {}
        for symbol in self._symbols:
            self._heard.setdefault(symbol, started)
        while True:
            await asyncio.sleep(min(self._silent_after_s / 4, 5.0))  # monotonic, not venue time
            now = time.monotonic()
            due = [
                s
                for s in self._symbols
                if self.silent_for(s) > self._silent_after_s
                and now - redialled.get(s, 0.0) > self._silent_after_s
            ]
            for symbol in due:
                self.silent.add(symbol)
                redialled[symbol] = now
                self._event(
                    "stream-silent",
                    f"{symbol} stream sent nothing for {self._silent_after_s:g} s: reconnecting",
                    symbol,
                )
                DAEMON_METRICS.streams_silent.labels(symbol).inc()
            if due:
                await self._redial(f"stream silent for {self._silent_after_s:g} s")

    async def _redial(self, why: str) -> None:
        """Fail the pending watches (each stream then takes its stream-lost path: gap fill and
        a new watch) and close ccxt's websocket clients, so the next watch dials afresh."""
        clients = getattr(self._exchange, "clients", None) or {}
        for url, client in list(clients.items()):
            clients.pop(url, None)
            client.reject(ccxt.NetworkError(why))  # not close()'s cancel: that would end a stream
            with contextlib.suppress(Exception):
                await client.close()

    async def _stream(self, symbol: str) -> None:
        failures = 0
        while True:
            try:
                rows = await call(lambda: self._exchange.watch_ohlcv(symbol, self.timeframe))
                self._heard[symbol] = time.monotonic()
                self.silent.discard(symbol)
            except RetryableError as e:
                self._assemblers[symbol].stream_lost()
                self.reconnects += 1
                delay = RECONNECT.delay(failures)
                failures += 1
                log.warning("stream lost", symbol=symbol, error=str(e), retry_in_s=round(delay, 2))
                self._event("stream-lost", f"{symbol} stream lost: {e}", symbol)
                await self._clock.sleep(delay)
                await self._gap_fill(symbol)
                continue
            failures = 0
            copies = [list(r) for r in rows]  # ccxt mutates its rows later
            if copies:
                self._forming[symbol] = max(copies, key=lambda r: float(r[0]))
            outcome = self._assemblers[symbol].on_stream(copies)
            await self._publish(outcome)
            self._mark_streamed(symbol)
            if outcome.needs_gap_fill:
                await self._asked_gap_fill(symbol)
            elif not self._behind(symbol):
                self._caught_up(symbol)

    async def _confirm_forever(self) -> None:
        while True:
            await self._clock.sleep(max(self._grace.total_seconds(), 1.0))
            now = self._clock.now()
            for symbol, assembler in self._assemblers.items():
                if assembler.due_for_confirmation(now, self._grace) is not None:
                    await self._asked_gap_fill(symbol)

    async def _asked_gap_fill(self, symbol: str) -> None:
        """A fill the stream or the confirmation timer asks for while ``symbol`` is behind: run
        only when its throttle is due (the next update or tick asks again), so a hole REST
        does not close costs a klines call per interval, not per stream update; the timer's
        fills too (it had the same flaw: REST's six tries every tick while REST was down)."""
        throttle, now = self._throttles[symbol], self._monotonic()
        if throttle.running:
            return  # the other asker's fill is under way: it fetches the same candles
        if throttle.due(now, self._assemblers[symbol].next_expected, self._bar()):
            await self._gap_fill(symbol, ASKED)
        elif throttle.first_wait():
            log.warning(
                "gap fills spaced out: REST has not brought the missing candle yet",
                symbol=symbol,
                fills_missed=throttle.misses,
                next_in_s=round(throttle.not_before - now, 1),
            )

    async def _gap_fill(self, symbol: str, policy: Backoff = REST) -> None:
        """Fetch what ``symbol`` lacks, then space its next asked-for fill out if still behind
        (any fill counts: one after a reconnect or at warm-up is as informative). Asked-for
        fills skip while this runs; a reconnect's fill runs even while an asked-for one is in
        flight (rare, and skipping it would lose its six tries, the robust fill)."""
        throttle = self._throttles[symbol]
        with throttle.fill(self._bar()):
            error = await self._fetch_missing(symbol, policy)
        if error is None and not self._behind(symbol):
            self._caught_up(symbol)
            return
        next_expected = self._assemblers[symbol].next_expected
        throttle.missed(self._monotonic(), self._clock.wall_seconds, next_expected)

    def _behind(self, symbol: str) -> bool:
        """``symbol`` lacks a candle: a hole before the forming one, or one past its close
        plus grace that nothing has emitted."""
        assembler = self._assemblers[symbol]
        due = assembler.due_for_confirmation(self._clock.now(), self._grace)
        return assembler.hole_open or due is not None

    def _caught_up(self, symbol: str) -> None:
        """``symbol`` is behind on nothing, by a fill or by the stream: end its stretch."""
        if self._throttles[symbol].caught_up():
            log.info("caught up: gap fills no longer spaced out", symbol=symbol)

    def _bar(self) -> int:
        """The bar the feed's clock is in: a new one means a candle has just closed."""
        return datetime_to_ms(self._clock.now()) // timeframe_ms(self.timeframe)

    async def _fetch_missing(self, symbol: str, policy: Backoff) -> RetryableError | None:
        """Fetch every candle after the last closed one, in pages, up to now (the error that
        postponed it, if any)."""
        assembler = self._assemblers[symbol]
        since = assembler.next_expected or (self._clock.now() - self._step * self._warmup)
        while since + self._step <= self._clock.now():
            try:
                page = self._page(symbol, datetime_to_ms(since))
                rows = await retry(page, f"klines {symbol}", policy, self._clock)
            except RetryableError as e:
                log.warning("gap fill postponed", symbol=symbol, error=str(e))
                return e
            now = min(self._clock.now(), await self._server_now())
            await self._publish(assembler.on_rest([list(r) for r in rows], now))
            if len(rows) < PAGE:
                return None  # reached the forming candle
            since = max(ms_to_datetime(int(rows[-1][0])) + self._step, since + self._step)
        return None

    async def _server_now(self) -> datetime:
        """The venue's clock: a candle is closed by *its* time, whatever ours says (skew)."""
        try:
            return ms_to_datetime(int(await call(self._exchange.fetch_time)))
        except RetryableError:
            return self._clock.now() - self._grace

    def _page(self, symbol: str, start_ms: int) -> Callable[[], Awaitable[list[list[Any]]]]:
        async def fetch() -> list[list[Any]]:
            rows: list[list[Any]] = await call(
                lambda: self._exchange.fetch_ohlcv(symbol, self.timeframe, start_ms, PAGE)
            )
            return rows

        return fetch

    async def _publish(self, outcome: Outcome) -> None:
        for reason in outcome.rejected:
            self._event("invalid-candle", reason)
        for gap in outcome.gaps:
            self._event(
                "gap",
                f"exchange has no {gap.count} candle(s) from {gap.first_missing.isoformat()}",
                gap.symbol,
                count=gap.count,
            )
        if not outcome.closed:
            return
        candles = self._unwritten + list(outcome.closed)
        try:
            with self._store.transaction():
                self._store.record_candles(candles)
        except StorageUnavailableError as e:  # kept, and written with the next candle
            log.warning("candles not stored yet", count=len(candles), error=str(e))
            self._unwritten = candles[-MAX_UNWRITTEN:]
            return
        self._unwritten = []
        self.closed_count += len(outcome.closed)
        async with self._changed:
            self._changed.notify_all()

    def _mark_streamed(self, symbol: str) -> None:
        self._streamed.add(symbol)
        if len(self._streamed) == len(self._symbols):
            self.live.set()

    def _event(self, kind: str, message: str, symbol: str | None = None, **data: object) -> None:
        try:
            self._store.record_event(self._clock.now(), kind, message, symbol, **data)
        except StorageUnavailableError as e:  # the log line still says it
            log.warning(message, kind=kind, symbol=symbol, error=str(e))
