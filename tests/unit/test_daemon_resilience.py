"""The daemon's background work outlives transient venue failures (found by the fault matrix)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from tbotd.config import Settings
from tbotd.daemon.app import App
from tbotd.daemon.background import watch_storage
from tbotd.daemon.lifecycle import Daemon
from tbotd.daemon.schedule import CandleCloseScheduler
from tbotd.domain.errors import RetryableError
from tbotd.ops.clock import ManualClock, ScaledClock

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def settings() -> Settings:
    """A minimal paper config."""
    return Settings.model_validate(
        {
            "exchange": {"market_type": "linear", "symbols": ["BTC/USDT:USDT"]},
            "strategy": {
                "mode": "ml_usdt_directional",
                "share_class": "USDT",
                "initial_capital": "10000",
                "threshold": 0.7,
            },
            "daemon": {"reconcile_interval_s": 60},
        }
    )


class FlakyBroker:
    """reconcile() fails on the calls listed in ``failing`` (1-based), then works."""

    def __init__(self, failing: set[int]) -> None:
        self.failing, self.calls = failing, 0

    async def reconcile(self) -> int:
        self.calls += 1
        if self.calls in self.failing:
            raise RetryableError("503 Service Unavailable")
        return 0


async def test_periodic_reconciliation_survives_a_failed_round() -> None:
    """A round that fails (the venue down a moment) is logged; the next interval runs again
    (regression: the task ended for good on the first transient error)."""
    clock = ManualClock(T0)
    broker = FlakyBroker(failing={1})
    daemon = Daemon(settings())
    app: Any = SimpleNamespace(clock=clock, broker=broker)
    task = asyncio.create_task(daemon._reconcile_forever(app))
    for _ in range(3):
        await clock.advance(60)
    assert broker.calls == 3
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class TimelessVenue:
    """A venue whose time request fails."""

    async def server_time(self) -> datetime:
        raise RetryableError("429 Too Many Requests")


async def test_a_failed_time_request_keeps_the_clock_and_the_cycle() -> None:
    """resync_clock keeps the current anchor when the venue cannot say the time (regression:
    the error escaped and the scheduler dropped the whole cycle)."""
    clock = ScaledClock(T0, 300)
    nothing: Any = None
    venue: Any = TimelessVenue()
    app = App(settings(), nothing, clock, venue, nothing, nothing, nothing, nothing)
    await app.resync_clock()
    assert clock.now() >= T0


async def test_sigterm_lets_the_in_flight_cycle_finish() -> None:
    """Stopping pauses the scheduler and waits for the running cycle (regression: the
    scheduler's shutdown cancelled it mid-order — an entry filled, its stop never placed)."""
    daemon = Daemon(settings())
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def cycle() -> None:
        async with daemon._cycle_lock:
            started.set()
            await release.wait()
            finished.set()

    class Watched(CandleCloseScheduler):
        """The daemon's scheduler, saying when it took the stop."""

        def pause(self) -> None:
            super().pause()
            halted.set()

    halted = asyncio.Event()  # the scheduler took the stop (paused)
    scheduler = Watched(ScaledClock(T0 + timedelta(seconds=295), 300.0), "5m", 0.0, cycle)
    scheduler.start()
    await asyncio.wait_for(started.wait(), 10)

    async def close() -> None:
        return None

    store = SimpleNamespace(set_meta=lambda _key, _value: None)
    app: Any = SimpleNamespace(close=close, clock=ManualClock(T0), store=store)
    stopping = asyncio.create_task(daemon._shutdown(app, scheduler))
    await asyncio.wait_for(halted.wait(), 10)
    release.set()  # the cycle's last request answers only now
    await asyncio.wait_for(stopping, 10)
    assert finished.is_set()


class FlakyStore:
    """A database that cannot be written until its first probe, then can, twice over."""

    def __init__(self) -> None:
        self.unwritable: str | None = "disk full"
        self.probes = 0

    def probe(self) -> bool:
        self.probes += 1
        self.unwritable = None
        return True

    def record_event(self, *_args: Any, **_kwargs: Any) -> None:
        """Events are not what this test is about."""


async def test_the_storage_watch_outlives_a_failed_reconciliation() -> None:
    """The disk is writable again but the reconciliation after it fails (the venue down): the
    watch carries on and probes the next outage (regression: the task ended, and the next full
    disk stopped every cycle until a restart)."""
    clock = ManualClock(T0)
    store = FlakyStore()
    broker = FlakyBroker(failing={1})
    daemon = Daemon(settings())
    app: Any = SimpleNamespace(clock=clock, broker=broker, store=store)
    task = asyncio.create_task(watch_storage(daemon, app))
    await clock.advance(5)
    assert (store.probes, broker.calls) == (1, 1)
    store.unwritable = "disk full again"
    await clock.advance(5)
    assert (store.probes, broker.calls) == (2, 2)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
