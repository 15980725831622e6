"""Clocks, the retry helper and the task supervisor behave as the daemon relies on."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from tbotd.domain.errors import OutcomeUnknownError, RateLimitedError, RetryableError
from tbotd.ops.clock import ManualClock
from tbotd.ops.retry import Backoff, retry
from tbotd.ops.tasks import TaskSupervisor

T0 = datetime(2024, 1, 1, tzinfo=UTC)


async def test_manual_clock_wakes_sleepers_in_deadline_order() -> None:
    """Sleepers wake only when the test moves time past their deadline, earliest first."""
    clock = ManualClock(T0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 20)), asyncio.create_task(sleeper("early", 10))]
    await asyncio.sleep(0)
    await clock.advance(9)
    assert woke == []
    await clock.advance(15)
    assert woke == ["early", "late"]
    assert clock.now() == T0 + timedelta(seconds=24)
    await asyncio.gather(*tasks)


async def test_retry_retries_retryable_errors_then_succeeds() -> None:
    """Transient failures are retried with backoff; Retry-After is honoured."""
    clock = ManualClock(T0)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RateLimitedError("slow down", retry_after_s=7)
        if calls == 2:
            raise RetryableError("503")
        return "ok"

    task = asyncio.create_task(
        retry(flaky, "test", Backoff(attempts=3, base_s=1), clock, random.Random(1))
    )
    for _ in range(20):
        await clock.advance(1)
    assert await task == "ok"
    assert calls == 3
    assert clock.now() >= T0 + timedelta(seconds=7)


async def test_retry_never_retries_an_unknown_outcome() -> None:
    """An order whose outcome is unknown is never resent by the retry helper."""
    calls = 0

    async def lost_reply() -> None:
        nonlocal calls
        calls += 1
        raise OutcomeUnknownError("timeout", client_order_id="abc")

    with pytest.raises(OutcomeUnknownError):
        await retry(lost_reply, "order", Backoff(attempts=5), ManualClock(T0))
    assert calls == 1


async def test_retry_gives_up_after_its_attempts() -> None:
    """After the last attempt the error reaches the caller."""
    clock = ManualClock(T0)

    async def down() -> None:
        raise RetryableError("down")

    task = asyncio.create_task(retry(down, "x", Backoff(attempts=2, base_s=1, cap_s=1), clock))
    await clock.advance(5)
    with pytest.raises(RetryableError):
        await task


async def test_supervisor_reports_critical_failures_and_cancels_on_close() -> None:
    """A failing critical task sets the failure flag; close() cancels the rest."""
    supervisor = TaskSupervisor()
    forever = asyncio.Event()

    async def boom() -> None:
        raise RuntimeError("feed died")

    supervisor.spawn(forever.wait(), "idle")
    supervisor.spawn(boom(), "feed", critical=True)
    await asyncio.wait_for(supervisor.failed.wait(), 5)
    assert isinstance(supervisor.failure, RuntimeError)
    assert supervisor.running == ["idle"]
    await supervisor.close()
    assert supervisor.running == []
