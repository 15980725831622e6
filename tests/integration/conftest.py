"""Fixtures for integration tests of the local exchange: a sim on a free port, manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tbotd.sim import SimExchange
from tests.simkit import client, generated_config, running


@pytest.fixture
async def sim() -> AsyncIterator[SimExchange]:
    """A sim on the seeded generator, manual clock, started on port 0."""
    async with running(generated_config()) as exchange:
        yield exchange


@pytest.fixture
async def usdm(sim: SimExchange) -> AsyncIterator[Any]:
    """ccxt.pro binanceusdm against ``sim``, markets loaded."""
    async with client(sim, "binanceusdm") as exchange:
        yield exchange


@pytest.fixture
async def coinm(sim: SimExchange) -> AsyncIterator[Any]:
    """ccxt.pro binancecoinm against ``sim``, markets loaded."""
    async with client(sim, "binancecoinm") as exchange:
        yield exchange
