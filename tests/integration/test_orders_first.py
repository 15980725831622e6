"""At a close, every symbol's entry reaches the venue before any symbol's fills are fetched
(bookkeeping waits), each entry's stop goes before its fills are asked for, and everything is
booked in the end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from tbotd.config import Settings
from tbotd.daemon.app import build
from tbotd.domain import Candle, Prediction
from tbotd.domain.values import ms_to_datetime
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET, SimConfig, SimExchange
from tbotd.store import Store

SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
STEP_MS = 300_000


class Watched(SimExchange):
    """The sim, noting each order and fills request as it arrives, with how many decisions the
    daemon had recorded by then."""

    store: Store | None = None
    seen: list[tuple[str, str, int]]

    def app(self) -> web.Application:
        app = super().app()
        self.seen = []
        app.middlewares.insert(0, self.note)
        return app

    @web.middleware
    async def note(self, request: web.Request, handler: Any) -> web.StreamResponse:
        store = self.store  # None while the daemon starts
        decided = (
            -1 if store is None else store.query("SELECT COUNT(*) AS n FROM decisions")[0]["n"]
        )
        response = await handler(request)
        if request.path.endswith("/fapi/v1/userTrades"):
            self.seen.append(("fills", request.query.get("symbol", ""), decided))
        elif request.method == "POST" and request.path.endswith("/fapi/v1/order"):
            order = json.loads(getattr(response, "body", b"{}") or b"{}")
            kind = "exit" if order.get("reduceOnly") else "entry"
            self.seen.append((kind, str(order.get("symbol")), decided))
        elif request.method == "POST" and request.path.endswith("/fapi/v1/algoOrder"):
            self.seen.append(("protection", request.query.get("symbol", ""), decided))
        return response


class Long:
    """Every symbol long, confidently, for the candle asked."""

    async def predict(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime
    ) -> dict[str, Any]:
        return {s: Made(prediction(s, candle_time)) for s in histories}


class Made:
    def __init__(self, made: Prediction) -> None:
        self.prediction, self.latency_ms = made, 0.0


def prediction(symbol: str, at: datetime) -> Prediction:
    return Prediction.model_validate(
        {
            "symbol": symbol,
            "timestamp": at,
            "signal": "long",
            "confidence": 0.9,
            "sd": 0.004,
            "model_version": "t",
            "source": "remote",
        }
    )


def settings(url: str, db: Path) -> Settings:
    return Settings.model_validate(
        {
            "instance": "first",
            "exchange": {
                "market_type": "linear",
                "symbols": SYMBOLS,
                "base_url": url,
                "api_key": DEMO_API_KEY,
                "api_secret": DEMO_API_SECRET,
            },
            "strategy": {
                "mode": "ml_usdt_directional",
                "share_class": "USDT",
                "initial_capital": "10000",
                "threshold": 0.6,
            },
            "execution": {"mode": "live", "position_fraction": "0.4"},
            "store": {"path": str(db)},
            "ops": {"port": 0},
            "daemon": {"history_bars": 100},
        }
    )


async def test_every_entry_leaves_before_any_fills_are_fetched(tmp_path: Path) -> None:
    """Two symbols enter at one close: both entries, and each one's protection, reach the venue
    before the first fills request."""
    sim = Watched(SimConfig(manual_clock=True))
    url = await sim.start("127.0.0.1", 0)
    app = await build(settings(url, tmp_path / "d.sqlite"), Long())
    sim.store = app.store
    feed = asyncio.create_task(app.feed.run())
    try:
        await app.recover()
        await asyncio.wait_for(app.feed.live.wait(), 30)
        now = sim.engine.now_ms
        candle_time = ms_to_datetime(now - now % STEP_MS)
        await sim.advance_to(candle_time + timedelta(milliseconds=STEP_MS), step_s=60)
        await app.resync_clock()
        sim.seen.clear()
        report = await app.cycle.run(candle_time)
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        await app.close()
        await sim.stop()
    assert report.orders_ok
    kinds = [kind for kind, _, _ in sim.seen]
    entries = [i for i, kind in enumerate(kinds) if kind == "entry"]
    assert len(entries) == 2
    first_fills = kinds.index("fills")
    assert max(entries) < first_fills
    assert all(decided == 2 for _, _, decided in sim.seen)  # both decisions recorded first
    assert kinds[:first_fills].count("protection") >= 2  # a stop per entry before any fills
    assert kinds.count("fills") == 2
    booked = Store.open(tmp_path / "d.sqlite")
    assert sorted(booked.positions()) == SYMBOLS  # bookkeeping still happened
