"""Websocket streams: klines (market data) and user data (orders, algo orders, account).

Routes, as ccxt derives them from the ``ws`` URLs :func:`tbotd.sim.ccxt_urls` gives it:

* USDⓈ-M: ``/fstream/market/ws/<n>`` and ``/fstream/public/ws/<n>`` for market streams
  (SUBSCRIBE frames), ``/fstream/private/ws?listenKey=…`` for user data;
* COIN-M: ``/dstream/ws/<n>`` for market streams, ``/dstream/ws/<listenKey>`` for user data.

Each venue has its own listen key per account (``POST /fapi/v1/listenKey`` vs
``/dapi/v1/listenKey``), and a user stream hears only about its venue's contracts.

A kline stream sends the forming candle right after SUBSCRIBE and then whenever market time
moves; every candle that closes is sent exactly once with ``x: true``, built by the same code
as REST klines. Each connection has its own send queue, so a slow client never stalls the
exchange (one that falls 10,000 messages behind is disconnected, as Binance does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tbotd.domain.enums import MarketType
from tbotd.ops.logs import get_logger
from tbotd.sim.auth import SimError
from tbotd.sim.instruments import Instrument
from tbotd.sim.market import Kline
from tbotd.sim.rest_market import INTERVALS_MS

if TYPE_CHECKING:
    from tbotd.sim.server import SimExchange

log = get_logger(__name__)
LISTEN_KEY_TTL_MS = 60 * 60 * 1000
MAX_BACKLOG = 10_000
MAX_CLOSED_BURST = 1500


@dataclass
class StreamState:
    """One kline subscription of one connection."""

    inst: Instrument
    interval: str
    interval_ms: int
    last_open: int | None = None


@dataclass(eq=False)
class Conn:
    """One websocket connection and its outgoing queue."""

    ws: web.WebSocketResponse
    kind: str  # "market" | "user"
    venue: str = ""  # user streams: "fapi" | "dapi"
    api_key: str = ""
    listen_key: str = ""
    streams: dict[str, StreamState] = field(default_factory=dict)
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    def send(self, payload: Any) -> None:
        """Queue a JSON message (dropping the client if it is hopelessly behind)."""
        if self.queue.qsize() >= MAX_BACKLOG:
            log.warning("sim_ws_slow_consumer_dropped", kind=self.kind)
            asyncio.get_running_loop().create_task(self.ws.close(code=1008))
            return
        self.queue.put_nowait(json.dumps(payload, separators=(",", ":")))


@dataclass
class ListenKey:
    """A user-data stream key and when (wall clock) it expires."""

    key: str
    api_key: str
    venue: str
    expires_wall_ms: int


class StreamHub:
    """Every websocket connection of the sim and what each one is subscribed to."""

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim
        self.conns: set[Conn] = set()
        self.listen_keys: dict[str, ListenKey] = {}
        self.changed = asyncio.Condition()
        self.kline_messages = 0

    # -- listen keys --------------------------------------------------------------------------

    def _key_of(self, api_key: str, venue: str) -> ListenKey | None:
        for lk in self.listen_keys.values():
            if lk.api_key == api_key and lk.venue == venue:
                return lk
        return None

    def listen_key_for(self, api_key: str, venue: str) -> str:
        """The account's active listen key on ``venue`` (extended), or a new one."""
        now = self.sim.wall.now_ms()
        lk = self._key_of(api_key, venue)
        if lk is None:
            lk = ListenKey(secrets.token_hex(32), api_key, venue, now)
            self.listen_keys[lk.key] = lk
        lk.expires_wall_ms = now + LISTEN_KEY_TTL_MS
        return lk.key

    def keepalive(self, api_key: str, venue: str) -> str:
        """Extend the account's listen key on ``venue`` (-1125 when it has none)."""
        lk = self._key_of(api_key, venue)
        if lk is None:
            raise SimError(-1125, "This listenKey does not exist.")
        lk.expires_wall_ms = self.sim.wall.now_ms() + LISTEN_KEY_TTL_MS
        return lk.key

    async def close_listen_key(self, api_key: str, venue: str) -> None:
        """Invalidate the account's listen key on ``venue`` and close its streams."""
        lk = self._key_of(api_key, venue)
        if lk is not None:
            del self.listen_keys[lk.key]
            await self._close_where(lambda c: c.listen_key == lk.key)

    async def expire_listen_keys(self) -> None:
        """Expire keys not kept alive: send ``listenKeyExpired`` and close their streams."""
        now = self.sim.wall.now_ms()
        for key, lk in list(self.listen_keys.items()):
            if lk.expires_wall_ms > now:
                continue
            del self.listen_keys[key]
            event = {"e": "listenKeyExpired", "E": self.sim.engine.now_ms, "listenKey": key}
            for conn in [c for c in self.conns if c.listen_key == key]:
                conn.send(event)
            await self.flush()
            await self._close_where(lambda c, key=key: c.listen_key == key)

    # -- connections --------------------------------------------------------------------------

    async def market(self, request: web.Request) -> web.StreamResponse:
        """A market-data connection (``/fstream/market/ws/<n>``, ``/dstream/ws/<n>``)."""
        tail = request.match_info.get("tail", "").strip("/")
        if request.path.startswith("/dstream/") and tail in self.listen_keys:
            return await self._user(request, tail, "dapi")
        ws = await self._prepare(request)
        conn = Conn(ws, "market")
        initial = [s for s in tail.split("/") if "@" in s]
        if initial:
            self._subscribe(conn, initial)
        return await self._serve(conn, self._on_market_message)

    async def private(self, request: web.Request) -> web.StreamResponse:
        """A USDⓈ-M user-data connection (``/fstream/private/ws?listenKey=…``)."""
        return await self._user(request, request.query.get("listenKey", ""), "fapi")

    async def _user(self, request: web.Request, key: str, venue: str) -> web.StreamResponse:
        lk = self.listen_keys.get(key)
        if lk is None or lk.venue != venue:
            body = {"code": -1125, "msg": "This listenKey does not exist."}
            return web.json_response(body, status=400)
        ws = await self._prepare(request)
        conn = Conn(ws, "user", venue=venue, api_key=lk.api_key, listen_key=key)
        return await self._serve(conn, None)

    async def _prepare(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=self.sim.config.ws_ping_s, autoping=True)
        await ws.prepare(request)
        return ws

    async def _serve(self, conn: Conn, on_message: Any) -> web.WebSocketResponse:
        writer = asyncio.get_running_loop().create_task(self._writer(conn))
        self.conns.add(conn)
        await self._notify()
        try:
            async for msg in conn.ws:
                if msg.type == WSMsgType.TEXT and on_message is not None:
                    on_message(conn, msg.data)
        finally:
            self.conns.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            _discard_backlog(conn)
            await self._notify()
        return conn.ws

    async def _writer(self, conn: Conn) -> None:
        try:
            while True:
                text = await conn.queue.get()
                try:
                    await conn.ws.send_str(text)
                finally:
                    conn.queue.task_done()
        except (ConnectionError, RuntimeError):
            _discard_backlog(conn)
            await conn.ws.close()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _on_market_message(self, conn: Conn, data: str) -> None:
        try:
            request = json.loads(data)
            method, params, rid = request["method"], request.get("params", []), request["id"]
        except (ValueError, KeyError, TypeError):
            conn.send({"error": {"code": 2, "msg": "Invalid request"}})
            return
        if method == "SUBSCRIBE":
            conn.send({"result": None, "id": rid})
            self._subscribe(conn, list(params))
        elif method == "UNSUBSCRIBE":
            for name in params:
                conn.streams.pop(str(name).lower(), None)
            conn.send({"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send({"result": sorted(conn.streams), "id": rid})
        else:
            conn.send(
                {
                    "error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                    "id": rid,
                }
            )
        asyncio.get_running_loop().create_task(self._notify())

    def _subscribe(self, conn: Conn, names: list[str]) -> None:
        for raw in names:
            name = str(raw).lower()
            symbol, _, channel = name.partition("@")
            inst = self.sim.engine.instruments.get(symbol.upper())
            interval = channel.removeprefix("kline_")
            if inst is None or not channel.startswith("kline_") or interval not in INTERVALS_MS:
                continue  # acknowledged like Binance, but the sim has no data for it
            step = INTERVALS_MS[interval]
            if step % self.sim.market_of(inst).base_ms:
                continue
            state = StreamState(inst, interval, step)
            conn.streams[name] = state
            self._emit_stream(conn, state, {})

    # -- publishing ---------------------------------------------------------------------------

    def publish_user(self, api_key: str, venue: str, payload: dict[str, Any]) -> None:
        """Send a user-data event to every stream of ``api_key`` on ``venue``."""
        for conn in self.conns:
            if conn.kind == "user" and conn.api_key == api_key and conn.venue == venue:
                conn.send(payload)

    def publish_klines(self) -> None:
        """Send closed candles (once each) and the forming candle for every kline stream."""
        cache: dict[tuple[str, int, int], Kline | None] = {}
        for conn in list(self.conns):
            for state in conn.streams.values():
                self._emit_stream(conn, state, cache)

    def _emit_stream(
        self, conn: Conn, state: StreamState, cache: dict[tuple[str, int, int], Kline | None]
    ) -> None:
        if self.sim.faults.config.silent_streams:  # connected, pings answered, no data
            return
        now = self.sim.engine.now_ms
        step = state.interval_ms
        current = now - now % step
        opens: list[int] = []
        if state.last_open is not None and current > state.last_open:
            first = max(state.last_open, current - MAX_CLOSED_BURST * step)
            opens = list(range(first, current, step))
        opens.append(current)
        state.last_open = current
        market = self.sim.market_of(state.inst)
        for open_ms in opens:
            key = (state.inst.asset, step, open_ms)
            if key not in cache:
                cache[key] = market.candle(step, open_ms, now)
            kline = cache[key]
            if kline is not None:
                conn.send(kline_event(state.inst, state.interval, kline, now))
                self.kline_messages += 1

    # -- control ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every queued message has been written to its socket."""
        await asyncio.gather(*(c.queue.join() for c in list(self.conns)))

    async def drop_all(self) -> int:
        """Close every websocket connection (fault injection); returns how many."""
        return await self._close_where(lambda _c: True)

    async def _close_where(self, predicate: Any) -> int:
        victims = [c for c in list(self.conns) if predicate(c)]
        for conn in victims:
            _discard_backlog(conn)
            await conn.ws.close(code=1001, message=b"going away")
        return len(victims)

    async def wait_for(self, predicate: Any) -> None:
        """Wait until ``predicate(hub)`` holds (connections or subscriptions changed)."""
        async with self.changed:
            await self.changed.wait_for(lambda: predicate(self))

    def user_connected(self, api_key: str) -> bool:
        """True when ``api_key`` has an open user-data stream."""
        return any(c.kind == "user" and c.api_key == api_key for c in self.conns)

    def subscribed(self, stream: str) -> bool:
        """True when some connection is subscribed to ``stream`` (e.g. ``btcusdt@kline_5m``)."""
        return any(stream.lower() in c.streams for c in self.conns)


def _discard_backlog(conn: Conn) -> None:
    while not conn.queue.empty():
        conn.queue.get_nowait()
        conn.queue.task_done()


def kline_event(inst: Instrument, interval: str, k: Kline, now_ms: int) -> dict[str, Any]:
    """A ``kline`` stream message (COIN-M: volume in contracts, coins in ``q``)."""
    coins = k.volume
    if inst.market_type is MarketType.LINEAR:
        volume, quote = inst.qty_str(coins), str((coins * k.close).quantize(Decimal("0.0001")))
    else:
        volume, quote = str(int(coins * k.close / inst.contract_size)), str(coins)
    body = {
        "t": k.open_ms,
        "T": k.close_ms,
        "s": inst.symbol,
        "i": interval,
        "f": 0,
        "L": 0,
        "o": inst.price_str(k.open),
        "c": inst.price_str(k.close),
        "h": inst.price_str(k.high),
        "l": inst.price_str(k.low),
        "v": volume,
        "n": int(coins) + 1,
        "x": k.closed,
        "q": quote,
        "V": "0",
        "Q": "0",
        "B": "0",
    }
    return {"e": "kline", "E": now_ms, "s": inst.symbol, "k": body}
