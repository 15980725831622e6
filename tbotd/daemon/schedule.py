"""Firing the cycle at every candle close plus a grace period, on the exchange's clock.

tbotd's clock is the exchange's (re-anchored on the venue, possibly accelerated as in `tbotd
sim`), and waiting is done on the monotonic clock: "the next candle boundary + grace, in
exchange time" becomes a sleep of its wall-clock length. The machine's wall clock is never
consulted, so NTP steps, a VM resumed from suspend or a manual `date -s` cannot stall or skip a
cycle (the daemon reports such a step as an event: :func:`wall_step_s`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from tbotd.domain.values import floor_time, timeframe_delta
from tbotd.ops.clock import Clock
from tbotd.ops.logs import get_logger

log = get_logger(__name__)


def just_closed(now: datetime, timeframe: str) -> datetime:
    """Open time of the candle that closed most recently at exchange time ``now``."""
    return floor_time(now, timeframe) - timeframe_delta(timeframe)


def candle_of_fire(now: datetime, timeframe: str) -> datetime:
    """The candle a cycle fired at ``now`` is for: the one closing at the nearest boundary.

    Robust to a timer firing a little early (clock re-anchoring, jitter) or late: anything
    within half a candle of boundary B decides the candle that closed at B.
    """
    return just_closed(now + timeframe_delta(timeframe) / 2, timeframe)


def venue_drifted(candle_time: datetime, venue_candle: datetime | None, timeframe: str) -> bool:
    """At the fire for ``candle_time`` the venue's streams show its forming candle as that one
    (not rolled over yet) or the next; any other (``venue_candle``: the newest forming candle's
    open time, None when no stream has spoken) means the two clocks are a candle or more apart
    — a venue paused, jumped, or accelerated differently — and the clock must be re-read."""
    if venue_candle is None:
        return False
    return not candle_time <= venue_candle <= candle_time + timeframe_delta(timeframe)


class CandleCloseScheduler:
    """Runs ``job`` at each ``timeframe`` boundary + ``grace_s`` of ``clock`` (exchange time).

    It waits on the event loop's monotonic clock for the exchange-time distance to the next
    boundary (:class:`~tbotd.ops.clock.ScaledClock` is monotonic and re-anchored on the venue),
    so a step of the machine's wall clock neither stalls a cycle (a step back) nor skips one (a
    step forward). One job at a time; a job longer than a candle makes the next fire the next
    boundary after it (missed closes are reported by the daemon, never replayed in a burst).
    ``pause`` stops new fires; ``shutdown`` ends the loop (call it once the running job is done).
    """

    def __init__(
        self, clock: Clock, timeframe: str, grace_s: float, job: Callable[[], Awaitable[None]]
    ) -> None:
        self.clock, self.timeframe, self.job = clock, timeframe, job
        self.step = timeframe_delta(timeframe)
        self.grace = timedelta(seconds=grace_s)
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self.fired: datetime | None = None  # the boundary + grace of the last fire

    def next_fire(self, exchange_now: datetime) -> datetime:
        """The next boundary + grace after ``exchange_now``, never the one already fired."""
        target = floor_time(exchange_now - self.grace, self.timeframe) + self.step + self.grace
        if self.fired is not None and target <= self.fired + self.step / 2:
            target = self.fired + self.step  # the clock read a hair early (re-anchored)
        return target

    def start(self) -> None:
        """Begin firing (from the running event loop)."""
        self._task = asyncio.create_task(self._run(), name="cycle scheduler")

    def pause(self) -> None:
        """No new fires from now on."""
        self._paused = True

    def shutdown(self) -> None:
        """End the loop (after :meth:`pause` and once the running job finished)."""
        self._paused = True
        if self._task is not None:
            self._task.cancel()

    def is_paused(self) -> bool:
        """True once :meth:`pause` (or :meth:`shutdown`) was called."""
        return self._paused

    async def _run(self) -> None:
        while not self.is_paused():
            now = self.clock.now()
            target = self.next_fire(now)
            await asyncio.sleep(self.clock.wall_seconds((target - now).total_seconds()))
            if self.is_paused():  # paused while asleep: this close is not fired
                return
            self.fired = target
            try:
                await self.job()
            except Exception:  # the next close starts clean (crash-only); never stop firing
                log.exception("cycle job failed")


def wall_step_s(wall_before: float, mono_before: float, wall_now: float, mono_now: float) -> float:
    """How far the wall clock jumped between two readings, beyond what really elapsed
    (positive: forward). NTP slews by milliseconds; a step of seconds is an event."""
    return (wall_now - wall_before) - (mono_now - mono_before)


async def watch_wall_clock(
    report: Callable[[float], None], interval_s: float = 5.0, threshold_s: float = 1.0
) -> None:
    """Forever: every ``interval_s`` compare the wall clock's advance with the monotonic one's
    and ``report`` a step larger than ``threshold_s`` (it changes nothing here: said, not
    obeyed)."""
    wall, mono = time.time(), time.monotonic()
    while True:
        await asyncio.sleep(interval_s)
        wall_now, mono_now = time.time(), time.monotonic()
        step = wall_step_s(wall, mono, wall_now, mono_now)
        if abs(step) > threshold_s:
            report(step)
        wall, mono = wall_now, mono_now


def cycle_scheduler(
    clock: Clock, timeframe: str, grace_s: float, job: Callable[[], Awaitable[None]]
) -> CandleCloseScheduler:
    """The daemon's scheduler (not yet started)."""
    return CandleCloseScheduler(clock, timeframe, grace_s, job)
