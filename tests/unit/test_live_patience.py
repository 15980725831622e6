"""The live broker is patient with a venue that refuses for a while (rate limits, 5xx on reads):
it retries for up to PATIENCE_S of its clock, then gives up with the venue's error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tbotd.domain import MarginMode
from tbotd.domain.errors import RateLimitedError
from tbotd.execution.broker import PriceRef
from tbotd.execution.live import LiveBroker
from tbotd.execution.live_orders import PATIENCE_S
from tbotd.store import Store
from tbotd.strategy.exits import ExitParams

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class SleepingClock:
    """Time moves only when somebody sleeps (so backoffs cost no real time)."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=max(seconds, 0))

    def wall_seconds(self, seconds: float) -> float:
        return seconds


class RateLimitedVenue:
    """Refuses the balance with 429 until ``until`` on ``clock``."""

    def __init__(self, clock: SleepingClock, until: datetime) -> None:
        self.clock, self.until, self.calls = clock, until, 0

    async def balance(self, _currency: str) -> tuple[Decimal, Decimal]:
        self.calls += 1
        if self.clock.now() < self.until:
            raise RateLimitedError("429 Too Many Requests")
        return Decimal(10000), Decimal(0)


def broker(tmp_path: Path, venue: RateLimitedVenue, clock: SleepingClock) -> LiveBroker:
    """A live broker over the fake venue (only what equity() touches is real)."""
    return LiveBroker(
        store=Store.open(tmp_path / "p.sqlite"),
        venue=venue,  # type: ignore[arg-type]
        symbols=[],
        currency="USDT",
        instance="p",
        clock=clock,
        prices=lambda _s: PriceRef(Decimal(1), T0),
        leverage=1,
        margin_mode=MarginMode.ISOLATED,
        fallback_exits=ExitParams(Decimal(1), Decimal(2), Decimal(1), Decimal(2)),
    )


async def test_a_ten_second_rate_limit_is_ridden_out(tmp_path: Path) -> None:
    """429 for 10 s of the clock: the balance is read once it lifts (regression: a few quick
    retries gave up inside the burst and the cycle was lost)."""
    clock = SleepingClock()
    venue = RateLimitedVenue(clock, T0 + timedelta(seconds=10))
    equity = await broker(tmp_path, venue, clock).equity()
    assert equity.balance == Decimal(10000)
    assert clock.now() >= T0 + timedelta(seconds=10)


async def test_a_venue_that_never_relents_is_given_up_on_within_the_patience(
    tmp_path: Path,
) -> None:
    """Refused for ever: the 429 is raised after at most PATIENCE_S of the clock."""
    clock = SleepingClock()
    venue = RateLimitedVenue(clock, T0 + timedelta(days=1))
    with pytest.raises(RateLimitedError):
        await broker(tmp_path, venue, clock).equity()
    assert clock.now() <= T0 + timedelta(seconds=PATIENCE_S)
    assert venue.calls > 3
