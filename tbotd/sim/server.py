"""The local exchange as an object: build it, start it on a port, drive its clock, inspect it.

sim = SimExchange(SimConfig(manual_clock=True))
url = await sim.start("127.0.0.1", 0)      # REST + websockets on one port
await sim.advance(300)                     # manual clock: five market minutes, now
sim.state()                                # balances, positions, orders, fills, funding
await sim.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from tbotd.domain.enums import MarketType
from tbotd.domain.values import datetime_to_ms
from tbotd.marketdata.funding_csv import read_funding
from tbotd.ops.logs import get_logger
from tbotd.sim import admin, rest_account, rest_market, rest_trade
from tbotd.sim.accounts import Account
from tbotd.sim.auth import SimError
from tbotd.sim.clock import MarketClock, SystemWallClock, WallClock
from tbotd.sim.config import HISTORY_DAYS, SimConfig
from tbotd.sim.faults import FaultConfig, Faults
from tbotd.sim.instruments import ASSET_PRICE_TICKS, Instrument
from tbotd.sim.market import MarketData
from tbotd.sim.matching import Engine, EngineConfig
from tbotd.sim.rest_common import Venue, error_response, wrap
from tbotd.sim.sources import CandleSource, CsvSource, GeneratorSource
from tbotd.sim.triggers import advance_to
from tbotd.sim.ws import StreamHub

log = get_logger(__name__)
DAY_MS = 86_400_000


def _sources(config: SimConfig) -> dict[str, CandleSource]:
    """BTC from the CSV when given; every other asset (and BTC without one) generated.

    With a CSV the generated assets start at the CSV's first UTC midnight, so any ``--start``
    inside the file has history for every contract.
    """
    out: dict[str, CandleSource] = {}
    origin_ms = datetime_to_ms(config.origin)
    if config.data is not None:
        csv = CsvSource(config.data)
        out["BTC"] = csv
        origin_ms = csv.first_ms - csv.first_ms % DAY_MS
    for inst in config.instruments:
        if inst.asset not in out:
            price, tick = ASSET_PRICE_TICKS.get(
                inst.asset, (inst.tick_size * 100_000, inst.tick_size)
            )
            out[inst.asset] = GeneratorSource(config.seed, inst.asset, price, tick, origin_ms)
    return out


class SimExchange:
    """A Binance USDⓈ-M + COIN-M futures venue on one port (see :mod:`tbotd.sim`)."""

    def __init__(self, config: SimConfig | None = None, wall: WallClock | None = None) -> None:
        self.config = config or SimConfig()
        self.wall = wall or SystemWallClock()
        sources = _sources(self.config)
        self.markets = {asset: MarketData(src) for asset, src in sources.items()}
        if self.config.start is not None:
            start_ms = datetime_to_ms(self.config.start)
        else:
            latest_first = max(s.first_ms for s in sources.values())
            start_ms = latest_first + HISTORY_DAYS * DAY_MS
        for asset, src in sources.items():
            if start_ms < src.first_ms:
                raise ValueError(f"start is before the first {asset} candle")
        self.clock = MarketClock(start_ms, self.config.speed, self.config.manual_clock, self.wall)
        accounts = {
            key: Account(key, secret, wallets=dict(self.config.balances), update_ms=start_ms)
            for key, secret in self.config.accounts
        }
        self.secrets = dict(self.config.accounts)
        funding = read_funding(self.config.funding_data) if self.config.funding_data else {}
        engine_config = EngineConfig(
            maker_fee=self.config.maker_fee,
            taker_fee=self.config.taker_fee,
            slippage_bps=self.config.slippage_bps,
            funding_rate=self.config.funding_rate,
            funding_rates=funding,
        )
        instruments = {i.symbol: i for i in self.config.instruments}
        self.engine = Engine(instruments, self.markets, self.clock, accounts, engine_config)
        self.venues = [
            Venue(
                name,
                kind,
                {s: i for s, i in instruments.items() if i.market_type is kind},
            )
            for name, kind in (("fapi", MarketType.LINEAR), ("dapi", MarketType.INVERSE))
        ]
        self._stopping = asyncio.Event()
        self.faults = Faults(self.config.faults, self._stopping)
        self.hub = StreamHub(self)
        self.engine.listening = self.hub.user_connected
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.url = ""

    # -- lifecycle ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application: venue REST routes, websockets, optional admin routes."""
        app = web.Application(middlewares=[_json_errors, self.faults.middleware])
        for venue in self.venues:
            for module in (rest_market, rest_account, rest_trade):
                for method, path, handler, auth in module.routes(venue):
                    app.router.add_route(method, path, wrap(self, venue, handler, auth))
        for prefix in ("/fstream/market/ws", "/fstream/public/ws", "/fstream/ws", "/dstream/ws"):
            app.router.add_get(prefix + "{tail:.*}", self.hub.market)
        app.router.add_get("/fstream/private/ws", self.hub.private)
        if self.config.admin:
            for method, path, handler in admin.routes(self):
                app.router.add_route(method, path, handler)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); returns the base URL."""
        self._runner = web.AppRunner(
            self.app(), handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"
        if self.clock.running:  # replay starts now, not when the object was built
            self.clock.resume()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
        log.info("sim_started", url=self.url, market_time_ms=self.engine.now_ms)
        return self.url

    async def stop(self) -> None:
        """Close every connection and stop serving (hung requests are released)."""
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.hub.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tick_forever(self) -> None:
        """Replay: catch the market up with the wall clock and stream klines, every tick."""
        while True:
            await asyncio.sleep(self.config.tick_s)
            try:
                if self.clock.running:
                    self.catch_up()
                    self.hub.publish_klines()
                await self.hub.expire_listen_keys()
            except Exception:
                log.exception("sim_tick_failed")

    # -- time ---------------------------------------------------------------------------------

    def catch_up(self) -> None:
        """In replay mode, process the market up to where the wall clock says it should be."""
        target = self.clock.target_ms()
        if target > self.engine.now_ms:
            advance_to(self.engine, target)
            self.publish_user_events()

    async def advance(self, seconds: float, step_s: float | None = None) -> int:
        """Move market time forward by ``seconds`` now, triggering and streaming everything.

        With ``step_s``, klines are also streamed every ``step_s`` market seconds on the way
        (forming-candle updates); otherwise once at the end. Returns the new market time (ms).
        """
        return await self.advance_to(self.engine.now_ms + int(seconds * 1000), step_s)

    async def advance_to(self, when: datetime | int, step_s: float | None = None) -> int:
        """Move market time forward to ``when`` (a datetime or epoch ms); see :meth:`advance`."""
        target = datetime_to_ms(when) if isinstance(when, datetime) else int(when)
        step = int(step_s * 1000) if step_s else max(target - self.engine.now_ms, 1)
        while self.engine.now_ms < target:
            advance_to(self.engine, min(target, self.engine.now_ms + step))
            self.publish_user_events()
            self.hub.publish_klines()
            await self.hub.flush()
        if self.clock.running:
            self.clock.resume()
        return self.engine.now_ms

    def publish_user_events(self) -> None:
        """Send queued order/algo/account events to the accounts' user-data streams."""
        for api_key, venue, payload in self.engine.drain():
            self.hub.publish_user(api_key, venue, payload)

    def market_of(self, inst: Instrument) -> MarketData:
        """The price series ``inst`` trades on."""
        return self.markets[inst.asset]

    # -- faults and inspection ----------------------------------------------------------------

    def set_faults(self, **changes: Any) -> FaultConfig:
        """Switch faults at run time, e.g. ``set_faults(http_5xx_rate=1.0)``."""
        return self.faults.update(changes)

    async def drop_websockets(self) -> int:
        """Close every websocket connection now (clients see a dropped socket)."""
        return await self.hub.drop_all()

    async def wait_for_user_stream(self, api_key: str, timeout_s: float = 10.0) -> None:
        """Wait until ``api_key`` has a user-data websocket open (TimeoutError after
        ``timeout_s``)."""
        await asyncio.wait_for(self.hub.wait_for(lambda h: h.user_connected(api_key)), timeout_s)

    def account(self, api_key: str) -> Account:
        """An account's live state (wallets, positions, leverage, margin modes)."""
        return self.engine.accounts[api_key]

    def state(self, api_key: str | None = None) -> dict[str, Any]:
        """The exchange's records as JSON-ready data (what ``GET /sim/state`` returns)."""
        return admin.snapshot(self, api_key)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths and methods answer like Binance errors, as JSON."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_response(SimError(-1000, f"Unknown path {request.path}", status=404))
    except web.HTTPMethodNotAllowed:
        return error_response(SimError(-1000, f"Method {request.method} not allowed", status=405))
