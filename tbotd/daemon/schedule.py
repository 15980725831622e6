"""APScheduler firing at every candle close plus a grace period, on the exchange's clock.

APScheduler counts wall-clock time; tbotd's clock may be the exchange's (possibly accelerated, as
in `tbotd demo`). :class:`CandleCloseTrigger` converts "the next candle boundary + grace, in
exchange time" into a wall-clock fire time through the clock, so the same scheduler drives a
real-time daemon and a 300× demo. Jobs coalesce, never overlap, and a fire missed by more than
half a candle is skipped (and logged by the cycle as missed), never replayed in a burst.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from tbotd.domain.values import floor_time, timeframe_delta
from tbotd.ops.clock import Clock


def just_closed(now: datetime, timeframe: str) -> datetime:
    """Open time of the candle that closed most recently at exchange time ``now``."""
    return floor_time(now, timeframe) - timeframe_delta(timeframe)


def candle_of_fire(now: datetime, timeframe: str) -> datetime:
    """The candle a cycle fired at ``now`` is for: the one closing at the nearest boundary.

    Robust to a timer firing a little early (clock re-anchoring, jitter) or late: anything
    within half a candle of boundary B decides the candle that closed at B.
    """
    return just_closed(now + timeframe_delta(timeframe) / 2, timeframe)


class CandleCloseTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires at each ``timeframe`` boundary + ``grace_s`` of ``clock`` (exchange time)."""

    def __init__(self, clock: Clock, timeframe: str, grace_s: float) -> None:
        self.clock = clock
        self.step = timeframe_delta(timeframe)
        self.timeframe = timeframe
        self.grace = timedelta(seconds=grace_s)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The wall-clock instant of the next boundary + grace on the exchange clock."""
        exchange_now = self.clock.now()
        target = floor_time(exchange_now - self.grace, self.timeframe) + self.step + self.grace
        wait = self.clock.wall_seconds((target - exchange_now).total_seconds())
        fire = now + timedelta(seconds=wait)
        step_wall = timedelta(seconds=self.clock.wall_seconds(self.step.total_seconds()))
        if previous_fire_time is not None and fire - previous_fire_time < step_wall / 2:
            fire += step_wall  # the clock read a hair early (re-anchored): that close had its fire
        return fire

    def __str__(self) -> str:
        return f"candle-close[{self.timeframe} + {self.grace.total_seconds()}s]"


def cycle_scheduler(
    clock: Clock, timeframe: str, grace_s: float, job: Callable[[], Awaitable[None]]
) -> AsyncIOScheduler:
    """An AsyncIOScheduler with one coalescing, non-overlapping cycle job (not yet started)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    misfire_s = max(1, int(clock.wall_seconds(timeframe_delta(timeframe).total_seconds() / 2)))
    scheduler.add_job(
        job,
        CandleCloseTrigger(clock, timeframe, grace_s),
        id="cycle",
        name="ML directional cycle",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=misfire_s,
        replace_existing=True,
    )
    return scheduler
