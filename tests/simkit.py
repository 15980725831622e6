"""Helpers for tests of the local exchange: hand-made candle files and a started sim.

Tests make their own market data (never ../shared): a flat history followed by candles whose
highs and lows are chosen so that every fill price can be computed by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.sim import DEMO_API_KEY, SimConfig, SimExchange
from tbotd.sim.client import make_ccxt

FIVE_MIN_MS = 300_000
# Market start of the hand-made files: 07:00 UTC, one hour before a funding settlement.
CSV_START = datetime(2024, 3, 1, 7, 0, tzinfo=UTC)
CSV_START_MS = datetime_to_ms(CSV_START)
FLAT = Decimal(40000)

Bar = tuple[str, str, str, str]  # open, high, low, close


def write_candles(
    path: Path, bars: Sequence[Bar], history: int = 60, after: int = 200, flat: Decimal = FLAT
) -> Path:
    """A 5-minute CSV: ``history`` flat bars before :data:`CSV_START`, then ``bars``, then flat
    bars at the last close."""
    rows = ["timestamp,open,high,low,close,volume"]
    t = CSV_START_MS - history * FIVE_MIN_MS
    for _ in range(history):
        rows.append(f"{t},{flat},{flat},{flat},{flat},10")
        t += FIVE_MIN_MS
    last = str(flat)
    for o, h, low, c in bars:
        rows.append(f"{t},{o},{h},{low},{c},20")
        t += FIVE_MIN_MS
        last = c
    for _ in range(after):
        rows.append(f"{t},{last},{last},{last},{last},10")
        t += FIVE_MIN_MS
    path.write_text("\n".join(rows) + "\n")
    return path


def csv_config(path: Path, **changes: Any) -> SimConfig:
    """A manual-clock sim config on a hand-made CSV, starting at :data:`CSV_START`."""
    return replace(SimConfig(data=path, start=CSV_START, manual_clock=True), **changes)


def generated_config(**changes: Any) -> SimConfig:
    """A manual-clock sim config on the seeded generator."""
    base = SimConfig(seed=7, start=datetime(2024, 2, 1, tzinfo=UTC), manual_clock=True)
    return replace(base, **changes)


@asynccontextmanager
async def running(config: SimConfig) -> AsyncIterator[SimExchange]:
    """A sim serving on a free port for the duration of the block."""
    sim = SimExchange(config)
    await sim.start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        await sim.stop()


@asynccontextmanager
async def client(
    sim: SimExchange, exchange_id: str = "binanceusdm", **kwargs: Any
) -> AsyncIterator[Any]:
    """ccxt's real (pro) class pointed at ``sim``, markets loaded, closed afterwards."""
    exchange = make_ccxt(exchange_id, sim.url, **kwargs)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def wallet(sim: SimExchange, asset: str, api_key: str = DEMO_API_KEY) -> Decimal:
    """The exact wallet balance the sim holds."""
    return sim.account(api_key).wallets.get(asset, Decimal(0))


class FollowingClock:
    """A daemon clock for tests: the sim's market time; backoff sleeps run 1000× faster.

    Reading the time straight from the in-process sim keeps the two in lockstep without any
    synchronising sleep; retry backoffs still happen, just quickly.
    """

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim

    def now(self) -> datetime:
        return ms_to_datetime(self.sim.engine.now_ms)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0) / 1000)

    def wall_seconds(self, seconds: float) -> float:
        return seconds
