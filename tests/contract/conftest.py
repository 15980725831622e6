"""The contract suite runs every scenario against each broker (test ids ``paper`` and ``live``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.contract.harness import LINEAR, Bar, Harness, LiveHarness, PaperHarness, Venue

Start = Callable[..., Awaitable[Harness]]


@pytest.fixture(params=["paper", "live"])
async def market(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Start]:
    """``await market(*bars, venue=LINEAR)``: a venue scripted with ``bars`` and each broker."""
    started: list[Harness] = []

    async def start(*bars: Bar, venue: Venue = LINEAR) -> Harness:
        cls = PaperHarness if request.param == "paper" else LiveHarness
        harness = cls(venue, bars, tmp_path / f"{request.param}-{len(started)}.sqlite")
        await harness.start()
        started.append(harness)
        return harness

    yield start
    for harness in started:
        await harness.close()
