"""Shared by the reload tests: a daemon (the real :class:`Daemon`, its signal handlers and
background tasks) on a `tbotd sim` replaying seeded candles, driven close by close, reloaded by
a real SIGHUP; and tiny prediction services that count what they are asked."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from tbotd.config import load_settings
from tbotd.daemon.app import App
from tbotd.daemon.lifecycle import Daemon
from tbotd.domain.notices import EventRecord
from tbotd.domain.values import ms_to_datetime
from tbotd.sim import SimConfig, SimExchange
from tests.integration.test_backtest_parity import HISTORY, market_data
from tests.synthetic import STEP_MS

SYMBOL = "BTC/USDT:USDT"
STEP = timedelta(milliseconds=STEP_MS)


class Oracle:
    """A JSON prediction API that answers "long, 0.9" to a request bearing its token and
    counts every request it gets."""

    def __init__(self, token: str) -> None:
        self.token, self.hits = token, 0

    def answer(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "symbol": item["symbol"],
            "timestamp": item["timestamp"],
            "signal": "long",
            "confidence": 0.9,
            "sd": 0.004,
            "model_version": "oracle",
            "source": "remote",
        }

    async def single(self, request: web.Request) -> web.Response:
        self.hits += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(self.answer(await request.json()))

    async def batch(self, request: web.Request) -> web.Response:
        self.hits += 1
        body = await request.json()
        return web.json_response({"predictions": [self.answer(i) for i in body["requests"]]})


@asynccontextmanager
async def oracle(token: str) -> AsyncIterator[tuple[Oracle, str]]:
    """An :class:`Oracle` on a free loopback port; yields it and its URL."""
    service = Oracle(token)
    app = web.Application()
    app.router.add_post("/v1/predictions", service.single)
    app.router.add_post("/v1/predictions:batch", service.batch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield service, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def config_text(tmp_path: Path, sim_url: str, ml_url: str, **over: Any) -> str:
    """The daemon's config file; ``over`` changes ``leverage``, ``mode``, ``models_dir``,
    ``symbols``, ``threshold`` or adds ``ml`` keys (TOML values as text)."""
    symbols = json.dumps(list(over.get("symbols", [SYMBOL])))
    models = over.get("models_dir")
    return (
        f'instance = "reload"\n[exchange]\nmarket_type = "linear"\nsymbols = {symbols}\n'
        f'base_url = "{sim_url}"\n'
        f'[strategy]\nmode = "ml_usdt_directional"\nshare_class = "USDT"\n'
        f'initial_capital = "10000"\nthreshold = {over.get("threshold", 0.6)}\n'
        f'[ml]\nremote_url = "{ml_url}"\nremote_candles = 0\n'
        + (f'models_dir = "{models}"\n' if models else "")
        + "".join(f"{k} = {v}\n" for k, v in over.get("ml", {}).items())
        + f'[execution]\nmode = "{over.get("mode", "live")}"\n'
        f"leverage = {over.get('leverage', 1)}\n"
        f'[store]\npath = "{tmp_path / "reload.sqlite"}"\n[ops]\nport = 0\n'
    )


@dataclass
class Rig:
    """A running daemon, its sim, its config file and the config-reload events it recorded."""

    daemon: Daemon
    sim: SimExchange
    path: Path
    first: datetime
    reloads: asyncio.Queue[EventRecord] = field(default_factory=asyncio.Queue)
    closes: int = 0

    @property
    def app(self) -> App:
        assert self.daemon.app is not None
        return self.daemon.app

    async def hup(self, text: str) -> EventRecord:
        """Write ``text`` as the config file, send this process SIGHUP (the daemon's handler
        reloads), and return the config-reload event it recorded."""
        self.path.write_text(text)
        os.kill(os.getpid(), signal.SIGHUP)
        return await asyncio.wait_for(self.reloads.get(), 60)

    async def close(self) -> None:
        """The next candle closes and the daemon decides it (as its scheduler would)."""
        self.closes += 1
        await self.sim.advance_to(self.first + self.closes * STEP, step_s=60)
        await self.daemon.tick()

    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.app.store.query("SELECT kind FROM events ORDER BY id")]


@asynccontextmanager
async def running(tmp_path: Path, ml_url: str, **over: Any) -> AsyncIterator[Rig]:
    """A sim replaying seeded candles (manual clock) and a daemon on it, ready and live."""
    frame, _, csv = market_data(tmp_path)
    first = ms_to_datetime(int(frame["open_time"].iloc[HISTORY]))
    sim = SimExchange(SimConfig(data=csv, start=first, manual_clock=True))
    url = await sim.start("127.0.0.1", 0)
    path = tmp_path / "tbotd.toml"
    path.write_text(config_text(tmp_path, url, ml_url, **over))
    daemon = Daemon(load_settings(path), path, scheduled=False)
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 60)
        rig = Rig(daemon, sim, path, first)
        loop = asyncio.get_running_loop()

        def heard(event: EventRecord) -> None:
            if event.kind == "config-reload":
                loop.call_soon_threadsafe(rig.reloads.put_nowait, event)

        rig.app.store.add_event_listener(heard)
        await asyncio.wait_for(rig.app.feed.live.wait(), 30)
        yield rig
    finally:
        daemon.request_stop("test over")
        await asyncio.wait_for(task, 60)
        await sim.stop()


def sim_url(rig: Rig) -> str:
    """The sim's URL as the daemon's config names it."""
    return rig.daemon.settings.exchange.base_url
