"""Clocks: time is injected, never read from globals, so runs can be accelerated and tests exact.

* :class:`SystemClock` — wall time, for production.
* :class:`ScaledClock` — exchange time that runs ``speed`` times faster than the wall clock,
  re-anchored from the exchange's server time (``tbotd demo`` against an accelerated sim).
* :class:`ManualClock` — moves only when a test calls :meth:`ManualClock.advance`; sleepers wake
  exactly when their deadline is reached, so tests never sleep to synchronise.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tbotd.domain.values import require_utc


class Clock(Protocol):
    """What tbotd needs of time: the current instant and sleeping in that clock's seconds."""

    def now(self) -> datetime:
        """The current instant (tz-aware UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        ...

    def wall_seconds(self, seconds: float) -> float:
        """How many wall-clock seconds ``seconds`` of this clock take (for real timeouts)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Wall time in UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """asyncio.sleep."""
        await asyncio.sleep(max(seconds, 0.0))

    def wall_seconds(self, seconds: float) -> float:
        """One to one."""
        return seconds


class ScaledClock:
    """Exchange time advancing ``speed`` × faster than wall time from an anchor.

    ``anchor`` re-synchronises with the exchange's reported time (e.g. every cycle), so drift
    between the two processes never accumulates.
    """

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.anchor(start)

    def anchor(self, exchange_now: datetime) -> None:
        """Declare that the exchange's time is ``exchange_now`` at this wall instant."""
        self._base = require_utc(exchange_now)
        self._wall0 = time.monotonic()

    def now(self) -> datetime:
        """Anchor plus scaled wall time elapsed since."""
        return self._base + timedelta(seconds=(time.monotonic() - self._wall0) * self.speed)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of exchange time (``seconds / speed`` of wall time)."""
        await asyncio.sleep(max(seconds, 0.0) / self.speed)

    def wall_seconds(self, seconds: float) -> float:
        """Exchange seconds to wall seconds."""
        return seconds / self.speed


class ManualClock:
    """A clock for tests: time stands still until :meth:`advance`/:meth:`set` moves it."""

    def __init__(self, start: datetime) -> None:
        self._now = require_utc(start)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()

    def now(self) -> datetime:
        """The time the test set."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the test advances the clock past now + ``seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._sleepers, (self._now + timedelta(seconds=seconds), next(self._ids), wake)
        )
        await wake

    def wall_seconds(self, seconds: float) -> float:
        """Real timeouts under a manual clock are generous: tests advance time explicitly."""
        return max(seconds, 5.0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order and letting each one run."""
        await self.set(self._now + timedelta(seconds=seconds))

    async def set(self, moment: datetime) -> None:
        """Move time forward to ``moment`` (never backwards)."""
        target = require_utc(moment)
        await _let_others_run()  # tasks started just before get to reach their sleep first
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, wake = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not wake.done():
                wake.set_result(None)
            await _let_others_run()
        self._now = max(self._now, target)
        await _let_others_run()


async def _let_others_run(rounds: int = 10) -> None:
    """Yield to the event loop a few times so woken tasks run up to their next await."""
    for _ in range(rounds):
        await asyncio.sleep(0)
