"""Injected faults reach ccxt as the exceptions the real exchange would cause."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import ccxt
import pytest

from tbotd.sim import DEMO_API_KEY, FaultConfig, SimExchange
from tbotd.sim.faults import parse_faults
from tests.simkit import client, generated_config, running

BTC = "BTC/USDT:USDT"


async def test_dropped_websocket_fails_pending_watch_then_reconnects(
    sim: SimExchange, usdm: Any
) -> None:
    """Dropping every socket fails the pending watch with NetworkError; the next one reconnects."""
    await usdm.watch_ohlcv(BTC, "5m")
    pending = asyncio.get_running_loop().create_task(usdm.watch_ohlcv(BTC, "5m"))
    await asyncio.sleep(0)
    assert await sim.drop_websockets() == 1
    with pytest.raises(ccxt.NetworkError, match="closed"):
        await asyncio.wait_for(pending, 10)
    candles = await asyncio.wait_for(usdm.watch_ohlcv(BTC, "5m"), 10)
    assert candles[-1][0] <= sim.engine.now_ms


async def test_dropped_user_stream_fails_watch_orders(sim: SimExchange, usdm: Any) -> None:
    """A dropped user-data socket rejects a pending watch_orders with NetworkError."""
    pending = asyncio.get_running_loop().create_task(usdm.watch_orders(BTC))
    await sim.wait_for_user_stream(DEMO_API_KEY)
    await sim.drop_websockets()
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pending, 10)


async def test_5xx_is_exchange_not_available(sim: SimExchange, usdm: Any) -> None:
    """A 503 from the venue's edge is ExchangeNotAvailable in ccxt, until switched off."""
    sim.set_faults(http_5xx_rate=1.0)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await usdm.fetch_balance()
    sim.set_faults(http_5xx_rate=0.0)
    assert (await usdm.fetch_balance())["USDT"]["total"] == 10000


async def test_clock_skew_beyond_the_window_is_invalid_nonce(sim: SimExchange, usdm: Any) -> None:
    """A venue clock 3 s behind the client's sees requests from the future: -1021 (InvalidNonce);
    a skew inside the window is accepted."""
    sim.set_faults(clock_skew_ms=-3000)
    with pytest.raises(ccxt.InvalidNonce):
        await usdm.fetch_balance()
    sim.set_faults(skew=5000)  # the client 5 s behind: still inside ccxt's 10 s recvWindow
    assert (await usdm.fetch_balance())["USDT"]["total"] == 10000


async def test_429_is_rate_limit_with_retry_after(sim: SimExchange, usdm: Any) -> None:
    """429 with Retry-After: ccxt's binance raises DDoSProtection (its 418/429 class)."""
    sim.set_faults(rate_limit_rate=1.0, retry_after_s=7)
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        await usdm.fetch_ohlcv(BTC, "5m", limit=1)
    async with (
        aiohttp.ClientSession() as session,
        session.get(sim.url + "/fapi/v1/time") as response,
    ):
        assert response.status == 429
        assert response.headers["Retry-After"] == "7"
        assert (await response.json())["code"] == -1003


async def test_hang_is_request_timeout(sim: SimExchange) -> None:
    """A request held past the client's timeout raises RequestTimeout; the sim stays healthy."""
    async with client(sim, config={"timeout": 200}) as usdm:
        sim.set_faults(hang_rate=1.0)
        with pytest.raises(ccxt.RequestTimeout):
            await usdm.fetch_balance()
        sim.set_faults(hang_rate=0.0)
        assert (await usdm.fetch_time()) == sim.engine.now_ms


async def test_added_latency_delays_answers(sim: SimExchange, usdm: Any) -> None:
    """With latency on, every REST answer takes at least that long."""
    sim.set_faults(latency_ms=150)
    started = time.monotonic()
    await usdm.fetch_time()
    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("timeout", ccxt.RequestTimeout),
        ("5xx", ccxt.ExchangeNotAvailable),
        ("unknown", ccxt.RequestTimeout),
    ],
)
async def test_lost_reply_order_is_executed_and_found_by_client_id(
    sim: SimExchange, mode: str, error: type[Exception]
) -> None:
    """A lost reply leaves the client unsure, but the order exists and is found by client id."""
    async with client(sim, config={"timeout": 300}) as usdm:
        sim.set_faults(lose_replies=1, lose_reply_mode=mode)
        with pytest.raises(error):
            await usdm.create_order(
                BTC, "market", "buy", 0.01, params={"clientOrderId": f"lost{mode}"}
            )
        found = await usdm.fetch_order(None, BTC, {"clientOrderId": f"lost{mode}"})
        assert found["status"] == "closed"
        assert found["filled"] == 0.01
        assert sim.faults.config.lose_replies == 0
        recorded = [o for o in sim.state()["orders"] if o["client_id"] == f"lost{mode}"]
        assert recorded[0]["status"] == "FILLED"
        again = await usdm.create_order(
            BTC, "market", "buy", 0.01, params={"clientOrderId": "next"}
        )
        assert again["status"] == "closed"


async def test_lost_reply_on_conditional_order(sim: SimExchange) -> None:
    """A stop-loss whose reply is lost is open on the exchange and found with trigger=True."""
    async with client(sim, config={"timeout": 300}) as usdm:
        await usdm.create_order(BTC, "market", "buy", 0.01)
        price = float(sim.engine.mark("BTCUSDT"))
        sim.set_faults(lose_replies=1, lose_reply_mode="5xx")
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await usdm.create_order(
                BTC,
                "market",
                "sell",
                None,
                params={
                    "stopLossPrice": round(price * 0.9, 1),
                    "closePosition": True,
                    "clientOrderId": "lostsl",
                },
            )
        found = await usdm.fetch_order(None, BTC, {"clientOrderId": "lostsl", "trigger": True})
        assert found["status"] == "open"


async def test_rejected_order_does_not_consume_a_lost_reply(sim: SimExchange, usdm: Any) -> None:
    """Only accepted orders lose their reply; a rejection still comes back as itself."""
    sim.set_faults(lose_replies=1, lose_reply_mode="5xx")
    with pytest.raises(ccxt.InsufficientFunds):
        await usdm.create_order(BTC, "market", "buy", 100)
    assert sim.faults.config.lose_replies == 1


async def test_faults_from_flags_and_admin_routes() -> None:
    """--faults parses; POST /sim/faults switches faults live; GET /sim/state reads records."""
    assert parse_faults(
        "5xx=0.5,429=0.1,hang=0,latency_ms=20,lose=2,lose_mode=unknown"
    ) == FaultConfig(
        http_5xx_rate=0.5,
        rate_limit_rate=0.1,
        latency_ms=20,
        lose_replies=2,
        lose_reply_mode="unknown",
    )
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("boom=1")
    async with running(generated_config(admin=True)) as sim, aiohttp.ClientSession() as http:
        async with http.post(sim.url + "/sim/faults", json={"http_5xx_rate": 1.0}) as response:
            assert (await response.json())["http_5xx_rate"] == 1.0
        async with http.get(sim.url + "/fapi/v1/time") as response:
            assert response.status == 503
        async with http.post(sim.url + "/sim/faults", json={"5xx": 0}) as response:
            assert response.status == 200
        async with http.post(sim.url + "/sim/faults", json={"nope": 1}) as response:
            assert response.status == 400
        async with http.post(sim.url + "/sim/advance", json={"seconds": 600}) as response:
            now = (await response.json())["market_time_ms"]
        async with http.get(sim.url + "/sim/state", params={"account": DEMO_API_KEY}) as response:
            state = await response.json()
        assert state["market_time_ms"] == now
        assert state["accounts"][0]["balances"]["USDT"]["wallet"] == "10000"
        async with http.post(sim.url + "/sim/drop-websockets") as response:
            assert (await response.json()) == {"dropped": 0}


async def test_admin_routes_are_off_by_default(sim: SimExchange) -> None:
    """Without --admin the /sim routes do not exist."""
    async with aiohttp.ClientSession() as http, http.get(sim.url + "/sim/state") as response:
        assert response.status == 404
