"""Websocket streams: candles (forming and closed), order events, keep-alive, listen keys."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tbotd.sim import DEMO_API_KEY, SimExchange
from tests.simkit import FIVE_MIN_MS, client, csv_config, generated_config, running, write_candles

BTC = "BTC/USDT:USDT"
BTC_INV = "BTC/USD:BTC"


async def _next(exchange: Any, method: str, *args: Any) -> asyncio.Task[Any]:
    """Start a watch call and let it register before the test moves the market."""
    call = asyncio.wait_for(getattr(exchange, method)(*args), 10)
    task = asyncio.get_running_loop().create_task(call)
    await asyncio.sleep(0)
    return task


async def _until(exchange: Any, symbol: str, seen: Any) -> list[dict[str, Any]]:
    """Watch orders until ``seen(order)`` holds for an order in ccxt's cache of all updates.

    A watch call resolves on the next message only, so the cache (``exchange.orders``) is what
    holds everything already delivered; the check and the next watch call have no await between
    them, so an update cannot slip through unseen.
    """
    while not any(seen(o) for o in exchange.orders or []):
        await asyncio.wait_for(exchange.watch_orders(symbol), 10)
    return list(exchange.orders)


async def test_watch_ohlcv_delivers_forming_then_closed_candles(
    sim: SimExchange, usdm: Any
) -> None:
    """watch_ohlcv gets the forming candle at once, its growth, and the same candle as REST."""
    first = await usdm.watch_ohlcv(BTC, "5m")
    open_ms = first[-1][0]
    assert open_ms == sim.engine.now_ms - sim.engine.now_ms % FIVE_MIN_MS
    task = await _next(usdm, "watch_ohlcv", BTC, "5m")
    await sim.advance(120)
    grown = await task
    assert grown[-1][0] == open_ms
    assert grown[-1][5] > 0
    task = await _next(usdm, "watch_ohlcv", BTC, "5m")
    await sim.advance(300)
    closed = (await task)[0]
    rest = await usdm.fetch_ohlcv(BTC, "5m", since=open_ms, limit=1)
    assert closed == rest[0]


async def test_each_candle_closes_exactly_once_on_the_wire(sim: SimExchange) -> None:
    """Over many steps every candle is sent with x=true exactly once, and nothing after that."""
    url = sim.url.replace("http", "ws") + "/fstream/market/ws/0"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_5m"], "id": 1})
        assert (await ws.receive_json()) == {"result": None, "id": 1}
        await sim.advance(3 * 300 + 30, step_s=40)
        await sim.drop_websockets()
        messages = [json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
    closes = Counter(m["k"]["t"] for m in messages if m["k"]["x"])
    assert len(closes) == 3
    assert set(closes.values()) == {1}
    for final_open in closes:
        last_final = max(i for i, m in enumerate(messages) if m["k"]["t"] == final_open)
        assert messages[last_final]["k"]["x"] is True
    forming = [m for m in messages if not m["k"]["x"]]
    assert len(forming) > len(closes)


async def test_watch_orders_delivers_fills(sim: SimExchange, usdm: Any) -> None:
    """watch_orders reports a market order as filled, with its client id and fee."""
    task = await _next(usdm, "watch_orders", BTC)
    await sim.wait_for_user_stream(DEMO_API_KEY)
    await usdm.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "ws1"})
    await task
    orders = await _until(usdm, BTC, lambda o: o["status"] == "closed")
    assert orders[-1]["clientOrderId"] == "ws1"
    assert orders[-1]["filled"] == 0.01
    assert orders[-1]["fee"]["currency"] == "USDT"


async def test_watch_orders_reports_triggered_take_profit(tmp_path: Path) -> None:
    """A take-profit that triggers shows up on watch_orders as the algo and its filled child."""
    csv = write_candles(tmp_path / "c.csv", [("40000", "41000", "39900", "40800")])
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        await usdm.create_order(BTC, "market", "buy", 0.1)
        await usdm.create_order(
            BTC,
            "market",
            "sell",
            None,
            params={"takeProfitPrice": 40900, "closePosition": True, "clientOrderId": "tpws"},
        )
        task = await _next(usdm, "watch_orders", BTC)
        await sim.wait_for_user_stream(DEMO_API_KEY)
        await sim.advance(300)
        await task
        seen = await _until(usdm, BTC, lambda o: o["status"] == "closed" and o["filled"])
        statuses = {(o["id"], o["status"]) for o in seen if o["clientOrderId"] == "tpws"}
        assert len({i for i, _ in statuses}) == 2  # the algo order and the order it placed


async def test_watch_ohlcv_on_coin_m(sim: SimExchange, coinm: Any) -> None:
    """COIN-M klines stream on the dstream route with the inverse symbol."""
    candles = await coinm.watch_ohlcv(BTC_INV, "5m")
    assert candles[-1][0] == sim.engine.now_ms - sim.engine.now_ms % FIVE_MIN_MS


async def test_watch_positions_after_fill(sim: SimExchange, coinm: Any) -> None:
    """COIN-M user data (ACCOUNT_UPDATE) reaches watch_positions after a fill."""
    positions = await asyncio.wait_for(coinm.watch_positions([BTC_INV]), 10)  # REST snapshot
    assert all(p["contracts"] == 0 for p in positions)
    task = await _next(coinm, "watch_positions", [BTC_INV])
    await sim.wait_for_user_stream(DEMO_API_KEY)
    await coinm.create_order(BTC_INV, "market", "sell", 3)
    positions = await asyncio.wait_for(task, 10)
    assert any(p["contracts"] == 3 and p["side"] == "short" for p in positions)


async def test_server_pings_and_client_pong_keeps_stream(tmp_path: Path) -> None:
    """The sim pings websocket clients on its keep-alive interval."""
    async with running(generated_config(ws_ping_s=0.05)) as sim:
        url = sim.url.replace("http", "ws") + "/fstream/market/ws/0"
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, autoping=False) as ws,
        ):
            message = await ws.receive(timeout=5)
            assert message.type == aiohttp.WSMsgType.PING
            await ws.pong(message.data)
            assert not ws.closed


async def test_listen_key_lifecycle(sim: SimExchange, usdm: Any) -> None:
    """listenKey: create returns one key until closed; keep-alive needs it; close ends streams."""
    first = (await usdm.fapiPrivatePostListenKey())["listenKey"]
    assert (await usdm.fapiPrivatePostListenKey())["listenKey"] == first
    assert (await usdm.fapiPrivatePutListenKey())["listenKey"] == first
    url = sim.url.replace("http", "ws") + f"/fstream/private/ws?listenKey={first}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await sim.wait_for_user_stream(DEMO_API_KEY)
        await usdm.fapiPrivateDeleteListenKey()
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    with pytest.raises(Exception, match="-1125"):
        await usdm.fapiPrivatePutListenKey()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)


async def test_listen_key_expires_on_the_wall_clock() -> None:
    """A listen key not kept alive for 60 wall minutes expires with listenKeyExpired."""
    wall = _FakeWall()
    async with running(generated_config()) as sim:
        sim.wall = wall
        async with client(sim) as usdm:
            key = (await usdm.fapiPrivatePostListenKey())["listenKey"]
            url = sim.url.replace("http", "ws") + f"/fstream/private/ws?listenKey={key}"
            async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
                await sim.wait_for_user_stream(DEMO_API_KEY)
                wall.offset_ms = 61 * 60 * 1000
                await sim.hub.expire_listen_keys()
                event = await ws.receive_json(timeout=5)
                assert event["e"] == "listenKeyExpired"
                assert event["listenKey"] == key


class _FakeWall:
    """The system clock, shifted by ``offset_ms`` (listen-key expiry without waiting an hour)."""

    def __init__(self) -> None:
        from tbotd.sim.clock import SystemWallClock

        self._real = SystemWallClock()
        self.offset_ms = 0

    def now_ms(self) -> int:
        return self._real.now_ms() + self.offset_ms

    def monotonic(self) -> float:
        return self._real.monotonic()


async def test_user_streams_are_per_venue(sim: SimExchange, usdm: Any, coinm: Any) -> None:
    """A COIN-M fill is reported on the COIN-M user stream only, not on the USDⓈ-M one."""
    linear_task = await _next(usdm, "watch_orders")
    inverse_task = await _next(coinm, "watch_orders")
    await sim.hub.wait_for(lambda hub: sum(c.kind == "user" for c in hub.conns) == 2)
    await coinm.create_order(BTC_INV, "market", "buy", 1, params={"clientOrderId": "inv"})
    assert (await inverse_task)[0]["clientOrderId"] == "inv"
    await usdm.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "lin"})
    assert {o["clientOrderId"] for o in await linear_task} == {"lin"}
    keys = {lk.venue: lk.key for lk in sim.hub.listen_keys.values()}
    assert set(keys) == {"fapi", "dapi"}
    assert keys["fapi"] != keys["dapi"]
