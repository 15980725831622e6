"""Integration fixtures: the local exchange (manual clock), and the remote-prediction rig
(histories, the local predictor, in-process servers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tbotd.domain.market import Candle
from tbotd.predictor.local import LocalPredictor
from tbotd.serving.app import SERVER_KEY, ModelServer, ServeOptions, build_app
from tbotd.sim import SimExchange
from tests.simkit import client, generated_config, running
from tests.synthetic import random_walk, to_candles

TOKEN = "PLANTED-serve-token-c0ffee-8842"
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")


@pytest.fixture(scope="session")
def histories() -> dict[str, list[Candle]]:
    """Three symbols, 700 closed 5m candles each, all ending with the same candle."""
    return {s: to_candles(random_walk(700, seed=10 + i), s) for i, s in enumerate(SYMBOLS)}


@pytest.fixture(scope="session")
def candle_time(histories: dict[str, list[Candle]]) -> datetime:
    """Open time of the candle that just closed."""
    return histories[SYMBOLS[0]][-1].open_time


@pytest.fixture(scope="module")
def local_predictor(models_dir: Path) -> Iterator[LocalPredictor]:
    """The session's models on the CPU."""
    predictor = LocalPredictor.load(models_dir, device="cpu")
    yield predictor
    predictor.close()


@dataclass
class Running:
    """A server started for one test."""

    url: str
    app: web.Application

    @property
    def server(self) -> ModelServer:
        """The tbotd serve handlers (for batch counters)."""
        return self.app[SERVER_KEY]


Start = Callable[[web.Application], Awaitable[Running]]


@pytest.fixture
async def start_app() -> AsyncIterator[Start]:
    """Start aiohttp applications on 127.0.0.1, port 0; all are stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> Running:
        # a client that gave up cancels its handler; a handler that never ends does not hold
        # the test's teardown for aiohttp's default 60 s
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return Running(f"http://{host}:{port}", app)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def serve(local_predictor: LocalPredictor, start_app: Start) -> Running:
    """`tbotd serve` in-process with the planted token."""
    return await start_app(build_app(local_predictor, ServeOptions(token=TOKEN)))


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
