"""Background work that must never delay a close: the periodic reconciliation and the clock
resync run between closes.

A reconciliation takes the cycle lock for as long as it talks to the venue (100–200 ms with a
few symbols); started just before a close it made that close's cycle wait, and it was the p99 of
the decision latency. The venue's clock, likewise, used to be asked at the start of every cycle:
a round trip before the first order. Both now wait for a quiet moment — not within ``margin``
of the next close, and not while a close that has come has not started its cycle yet — so the
cycle finds the lock free and the clock already anchored. Only the daemon's own scheduler has
closes to protect: before :meth:`BetweenCloses.start` (and when whoever drives the market calls
``Daemon.tick`` itself) nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from tbotd.domain.values import floor_time, timeframe_delta
from tbotd.ops.clock import Clock


def wait_before_work(
    now: datetime,
    timeframe: str,
    grace: timedelta,
    since: datetime,
    started: datetime | None,
    margin: timedelta,
) -> timedelta | None:
    """How long work that holds the cycle lock must still wait at ``now`` (exchange time);
    None: it may start.

    ``since``: when the scheduler started (closes before it have no cycle). ``started``: the
    fire instant (boundary + grace) of the newest cycle that began. Wait while the latest fire
    instant has passed without its cycle beginning (up to half a candle: a cycle that never
    comes must not stop the work for good), and while the next one is nearer than ``margin``.
    """
    step = timeframe_delta(timeframe)
    last_fire = floor_time(now - grace, timeframe) + grace
    unserved = last_fire > since and (started is None or started < last_fire)
    if unserved and now - last_fire < step / 2:
        return step / 2 - (now - last_fire)
    to_next = last_fire + step - now
    return to_next if to_next < margin else None


def margin_for(timeframe: str, took: timedelta) -> timedelta:
    """Room to leave before a close for work that last took ``took``: twice that, at least a
    twentieth of a candle, at most half (under heavy acceleration a candle may be shorter than
    the work: it then runs right after a cycle, the farthest it can be from the next close)."""
    step = timeframe_delta(timeframe)
    return min(step / 2, max(step / 20, took * 2))


class BetweenCloses:
    """Where the daemon's closes are, for work that must stay out of their way."""

    def __init__(self, timeframe: str, grace_s: float) -> None:
        self.timeframe = timeframe
        self.step = timeframe_delta(timeframe)
        self.grace = timedelta(seconds=grace_s)
        self._since: datetime | None = None  # None: no scheduler, nothing to keep out of
        self._started: datetime | None = None
        self._cycle_began = asyncio.Event()

    def start(self, now: datetime) -> None:
        """The scheduler fires from now on."""
        self._since = now

    def cycle_began(self, candle_time: datetime) -> None:
        """A cycle for ``candle_time`` began (it is in the cycle lock's queue or holds it)."""
        fire = candle_time + self.step + self.grace
        self._started = fire if self._started is None else max(self._started, fire)
        self._cycle_began.set()

    def wait_s(self, now: datetime, margin: timedelta) -> timedelta | None:
        """See :func:`wait_before_work`."""
        if self._since is None:
            return None
        return wait_before_work(now, self.timeframe, self.grace, self._since, self._started, margin)

    async def quiet(self, clock: Clock, margin: timedelta) -> None:
        """Return once work taking ``margin`` may start: right away mid-candle, else as soon
        as the coming close's cycle has begun (the work then queues behind it)."""
        while (wait := self.wait_s(clock.now(), margin)) is not None:
            self._cycle_began.clear()
            began = asyncio.ensure_future(self._cycle_began.wait())
            slept = asyncio.ensure_future(clock.sleep(wait.total_seconds()))
            try:
                await asyncio.wait({began, slept}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (began, slept):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
