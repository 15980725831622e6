"""The contract suite runs every scenario against each broker (ids ``paper`` and ``live``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.harness import INVERSE, LINEAR, Harness, PaperHarness, Venue

BROKERS = ["paper"]


async def make_harness(kind: str, venue: Venue, tmp_path: Path) -> Harness:
    """Start a harness of ``kind`` for ``venue``."""
    if kind == "paper":
        harness = PaperHarness(venue, tmp_path / "paper.sqlite")
        await harness.start()
        return harness
    raise ValueError(kind)


@pytest.fixture(params=BROKERS)
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """A linear (USDT-margined) venue with each broker."""
    harness = await make_harness(request.param, LINEAR, tmp_path)
    yield harness
    await harness.close()


@pytest.fixture(params=BROKERS)
async def inverse(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """An inverse (coin-margined, BTC share class) venue with each broker."""
    harness = await make_harness(request.param, INVERSE, tmp_path)
    yield harness
    await harness.close()
