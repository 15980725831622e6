"""Nothing but the decision between a close and its orders: the periodic reconciliation and the
venue-clock resync run between closes, and a scheduled close asks the venue nothing first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tbotd.config import Settings
from tbotd.daemon.background import resync_forever
from tbotd.daemon.between import margin_for, wait_before_work
from tbotd.daemon.cycle import CycleReport
from tbotd.daemon.lifecycle import Daemon
from tbotd.ops.clock import ManualClock
from tbotd.store import Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a 5-minute boundary
STEP = timedelta(minutes=5)
GRACE = timedelta(seconds=0.05)
FIRE = T0 + STEP + GRACE  # the scheduler's fire for the candle opened at T0


def settings() -> Settings:
    """A paper config: 5-minute candles, reconciliation and clock resync every minute."""
    return Settings.model_validate(
        {
            "exchange": {"market_type": "linear", "symbols": ["BTC/USDT:USDT"]},
            "strategy": {
                "mode": "ml_usdt_directional",
                "share_class": "USDT",
                "initial_capital": "10000",
                "threshold": 0.7,
            },
            "daemon": {"reconcile_interval_s": 60, "clock_resync_s": 60, "grace_s": 0.05},
        }
    )


class Rig:
    """A daemon whose app is fakes over a manual clock; what happened, in order, in ``log``."""

    def __init__(self, tmp_path: Path, start: datetime) -> None:
        self.clock = ManualClock(start)
        self.log: list[tuple[str, datetime]] = []
        self.venue_candle: datetime | None = None  # the newest forming candle the streams show
        self.venue_now: datetime | None = None  # where a resync puts the clock
        self.daemon = Daemon(settings())
        store = Store.open(tmp_path / "d.sqlite")
        feed = SimpleNamespace(forming_open=lambda: self.venue_candle)
        cycle = SimpleNamespace(run=self.run)
        broker = SimpleNamespace(reconcile=self.reconcile)
        self.app: Any = SimpleNamespace(
            clock=self.clock,
            store=store,
            feed=feed,
            cycle=cycle,
            broker=broker,
            resync_clock=self.resync,
        )
        self.daemon.app = self.app

    async def run(self, candle_time: datetime) -> CycleReport:
        self.log.append(("cycle", candle_time))
        return CycleReport(candle_time)

    async def reconcile(self) -> int:
        self.log.append(("reconcile", self.clock.now()))
        await self.clock.sleep(10)  # a reconciliation takes a while: it talks to the venue
        self.log.append(("reconciled", self.clock.now()))
        return 0

    async def resync(self) -> None:
        self.log.append(("resync", self.clock.now()))
        if self.venue_now is not None:
            await self.clock.set(self.venue_now)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.log]


async def stopped(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_reconciliation_due_just_before_a_close_runs_after_that_close(
    tmp_path: Path,
) -> None:
    """Due 5 s before a close, the reconciliation waits for that close's cycle, then runs."""
    rig = Rig(tmp_path, FIRE - timedelta(seconds=65))
    rig.daemon.between.start(rig.clock.now())
    task = asyncio.create_task(rig.daemon._reconcile_forever(rig.app))
    await rig.clock.advance(60)  # due now, 5 s before the close
    assert rig.kinds() == []
    await rig.clock.set(FIRE)
    assert rig.kinds() == []  # the close came: still waiting for its cycle
    await rig.daemon._tick()  # the scheduler's job
    await rig.clock.advance(10)
    await stopped(task)
    assert rig.kinds() == ["cycle", "reconcile", "reconciled"]
    assert rig.log[0][1] == T0


async def test_a_reconciliation_due_mid_candle_runs_at_once(tmp_path: Path) -> None:
    """Due in the middle of a candle, the reconciliation does not wait."""
    rig = Rig(tmp_path, T0 + timedelta(seconds=30))
    rig.daemon.between.start(rig.clock.now())
    task = asyncio.create_task(rig.daemon._reconcile_forever(rig.app))
    await rig.clock.advance(60)
    await stopped(task)
    assert rig.log[0] == ("reconcile", T0 + timedelta(seconds=90))
    assert rig.daemon.last_reconciled is None  # the round had not finished when stopped


async def test_a_scheduled_close_decides_without_asking_the_venue_its_time(
    tmp_path: Path,
) -> None:
    """The scheduler's cycle decides the candle that closed with the clock it has."""
    rig = Rig(tmp_path, FIRE)
    rig.venue_candle = T0 + STEP  # the venue's streams rolled over: it agrees
    await rig.daemon._tick()
    assert rig.log == [("cycle", T0)]


async def test_a_venue_a_candle_away_is_asked_its_time_before_deciding(tmp_path: Path) -> None:
    """Streams showing the venue three candles ahead (it jumped): re-read, decide its candle."""
    rig = Rig(tmp_path, FIRE)
    rig.venue_candle = T0 + 4 * STEP
    rig.venue_now = T0 + 4 * STEP + GRACE
    await rig.daemon._tick()
    assert rig.kinds() == ["resync", "cycle"]
    assert rig.log[1] == ("cycle", T0 + 3 * STEP)


async def test_the_clock_is_resynced_between_closes(tmp_path: Path) -> None:
    """Mid-candle the periodic resync runs at once; due 3 s before a close, after its cycle."""
    rig = Rig(tmp_path, FIRE - timedelta(seconds=123))
    rig.daemon.between.start(rig.clock.now())
    task = asyncio.create_task(resync_forever(rig.daemon, rig.app))
    await rig.clock.advance(60)  # 63 s before the close: at once
    await rig.clock.advance(60)  # 3 s before: waits
    await rig.clock.set(FIRE)
    assert rig.kinds() == ["resync"]
    await rig.daemon._tick()
    await rig.clock.advance(0)
    await stopped(task)
    assert rig.kinds() == ["resync", "cycle", "resync"]


async def test_a_cycle_driven_in_lockstep_reads_the_venue_clock_first(tmp_path: Path) -> None:
    """Daemon.tick (the demo's lockstep market jumps a candle each time) re-reads the clock."""
    rig = Rig(tmp_path, T0 + timedelta(seconds=1))
    rig.venue_now = FIRE
    await rig.daemon.tick()
    assert rig.log == [("resync", T0 + timedelta(seconds=1)), ("cycle", T0)]


@pytest.mark.parametrize(
    ("now", "started", "expected"),
    [
        (T0 + timedelta(minutes=2), T0 + GRACE, None),  # mid-candle, its close served
        (FIRE - timedelta(seconds=5), None, timedelta(seconds=5)),  # the close is near
        (FIRE + timedelta(seconds=1), None, STEP / 2 - timedelta(seconds=1)),  # not begun
        (FIRE + timedelta(seconds=1), FIRE, None),  # its cycle began: queue behind it
        (FIRE + STEP / 2, None, None),  # a close never served does not block for good
    ],
)
def test_when_work_may_take_the_cycle_lock(
    now: datetime, started: datetime | None, expected: timedelta | None
) -> None:
    """Work waits near a close and until the close's cycle began; never for good."""
    since = T0 - STEP
    margin = margin_for("5m", timedelta(0))
    assert wait_before_work(now, "5m", GRACE, since, started, margin) == expected


def test_the_room_left_before_a_close_follows_the_last_duration() -> None:
    """Twice the last duration, at least a twentieth of a candle, at most half of it."""
    assert margin_for("5m", timedelta(0)) == timedelta(seconds=15)
    assert margin_for("5m", timedelta(seconds=20)) == timedelta(seconds=40)
    assert margin_for("5m", timedelta(minutes=10)) == STEP / 2
