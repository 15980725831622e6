"""ccxt's real binanceusdm / binancecoinm classes trade against the sim over REST."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import pytest

from tbotd.sim import SimExchange
from tests.simkit import (
    CSV_START_MS,
    FIVE_MIN_MS,
    client,
    csv_config,
    generated_config,
    running,
    write_candles,
)

BTC = "BTC/USDT:USDT"
BTC_INV = "BTC/USD:BTC"


async def test_load_markets_lists_linear_and_inverse_contracts(usdm: Any, coinm: Any) -> None:
    """load_markets gives the USDⓈ-M and COIN-M perps with their tick, step, minimums, size."""
    linear = usdm.market(BTC)
    assert linear["id"] == "BTCUSDT"
    assert linear["swap"]
    assert linear["linear"]
    assert linear["settle"] == "USDT"
    assert linear["precision"]["price"] == 0.1
    assert linear["precision"]["amount"] == 0.001
    assert linear["limits"]["cost"]["min"] == 100
    inverse = coinm.market(BTC_INV)
    assert inverse["id"] == "BTCUSD_PERP"
    assert inverse["inverse"]
    assert inverse["settle"] == "BTC"
    assert inverse["contractSize"] == 100


async def test_fetch_ohlcv_pages_across_1600_candles(sim: SimExchange, usdm: Any) -> None:
    """fetch_ohlcv with since/until pages through 1,600 contiguous candles, none after now."""
    now = sim.engine.now_ms
    since = now - now % FIVE_MIN_MS - 1600 * FIVE_MIN_MS
    until = since + 1599 * FIVE_MIN_MS
    rows: list[list[Any]] = []
    cursor = since
    while cursor <= until:
        page = await usdm.fetch_ohlcv(BTC, "5m", since=cursor, limit=1000, params={"until": until})
        assert page, "a page inside the history must not be empty"
        rows.extend(page)
        cursor = page[-1][0] + FIVE_MIN_MS
    times = [r[0] for r in rows]
    assert len(times) == 1600
    assert times == list(range(since, until + 1, FIVE_MIN_MS))
    assert all(r[2] >= max(r[1], r[4]) and r[3] <= min(r[1], r[4]) for r in rows)
    assert await usdm.fetch_ohlcv(BTC, "5m", since=now + FIVE_MIN_MS) == []
    latest = await usdm.fetch_ohlcv(BTC, "5m", limit=5)
    assert latest[-1][0] == now - now % FIVE_MIN_MS


async def test_klines_are_a_function_of_market_time(sim: SimExchange, usdm: Any) -> None:
    """A candle that closed reads the same before and after time moves on; hourly aggregates it."""
    before = await usdm.fetch_ohlcv(BTC, "5m", limit=20)
    await sim.advance(3600)
    after = await usdm.fetch_ohlcv(BTC, "5m", since=before[0][0], limit=19)
    assert after == before[:19]
    hours = await usdm.fetch_ohlcv(
        BTC, "1h", since=before[0][0] - before[0][0] % 3_600_000, limit=1
    )
    fives = await usdm.fetch_ohlcv(BTC, "5m", since=hours[0][0], limit=12)
    assert hours[0][1] == fives[0][1]
    assert hours[0][2] == max(r[2] for r in fives)
    assert hours[0][3] == min(r[3] for r in fives)
    assert hours[0][4] == fives[-1][4]


async def test_balances_and_flat_positions(usdm: Any, coinm: Any) -> None:
    """fetch_balance shows the starting USDT and BTC; fetch_positions shows no exposure."""
    assert (await usdm.fetch_balance())["USDT"]["total"] == 10000
    assert (await coinm.fetch_balance())["BTC"]["total"] == 1
    assert await usdm.fetch_positions([BTC]) == []
    inverse = await coinm.fetch_positions([BTC_INV])
    assert all(p["contracts"] == 0 for p in inverse)


async def test_leverage_margin_mode_and_position_mode(sim: SimExchange, usdm: Any) -> None:
    """set_leverage, set_margin_mode and set_position_mode change the account like Binance."""
    await usdm.set_leverage(7, BTC)
    await usdm.set_margin_mode("isolated", BTC)
    account = sim.account(usdm.apiKey)
    assert account.leverage_of("BTCUSDT") == 7
    assert account.margin_type_of("BTCUSDT").value == "ISOLATED"
    await usdm.set_position_mode(True)
    assert account.dual_side
    await usdm.set_position_mode(False)
    with pytest.raises(ccxt.OperationRejected, match="-4059"):
        await usdm.set_position_mode(False)
    await usdm.create_order(BTC, "market", "buy", 0.01)
    positions = await usdm.fetch_positions([BTC])
    assert positions[0]["marginMode"] == "isolated"
    with pytest.raises(ccxt.ExchangeError, match="-4048"):
        await usdm.set_margin_mode("cross", BTC)


async def test_entry_with_stop_loss_and_take_profit(sim: SimExchange, usdm: Any) -> None:
    """A market entry, then SL and TP conditional orders found, listed, cancelled by client id."""
    entry = await usdm.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "entry1"})
    assert entry["status"] == "closed"
    assert entry["filled"] == 0.01
    price = entry["average"]
    sl = await usdm.create_order(
        BTC,
        "market",
        "sell",
        None,
        params={
            "stopLossPrice": round(price * 0.95, 1),
            "closePosition": True,
            "clientOrderId": "sl1",
        },
    )
    tp = await usdm.create_order(
        BTC,
        "market",
        "sell",
        0.01,
        params={
            "takeProfitPrice": round(price * 1.05, 1),
            "reduceOnly": True,
            "clientOrderId": "tp1",
        },
    )
    assert sl["status"] == tp["status"] == "open"
    found = await usdm.fetch_order(None, BTC, {"clientOrderId": "sl1", "trigger": True})
    assert found["id"] == sl["id"]
    assert found["triggerPrice"] == round(price * 0.95, 1)
    regular = await usdm.fetch_order(None, BTC, {"clientOrderId": "entry1"})
    assert regular["id"] == entry["id"]
    assert regular["status"] == "closed"
    open_algos = await usdm.fetch_open_orders(BTC, params={"trigger": True})
    assert {o["clientOrderId"] for o in open_algos} == {"sl1", "tp1"}
    cancelled = await usdm.cancel_order(tp["id"], BTC, {"trigger": True})
    assert cancelled["id"] == tp["id"]
    assert (await usdm.fetch_order(tp["id"], BTC, {"trigger": True}))["status"] == "canceled"
    await usdm.cancel_all_orders(BTC, params={"trigger": True})
    assert await usdm.fetch_open_orders(BTC, params={"trigger": True}) == []
    assert (await usdm.fetch_order(None, BTC, {"clientOrderId": "sl1", "trigger": True}))[
        "status"
    ] == "canceled"


async def test_limit_orders_rest_cancel_and_cancel_all(sim: SimExchange, usdm: Any) -> None:
    """Limit orders away from the price rest; cancel by id and cancel-all remove them."""
    price = (await usdm.fetch_ohlcv(BTC, "1m", limit=1))[0][4]
    low = round(price * 0.9, 1)
    one = await usdm.create_order(BTC, "limit", "buy", 0.01, low, {"clientOrderId": "lim1"})
    await usdm.create_order(BTC, "limit", "buy", 0.01, low, {"clientOrderId": "lim2"})
    assert one["status"] == "open"
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):
        await usdm.create_order(BTC, "limit", "buy", 0.01, low, {"clientOrderId": "lim1"})
    await usdm.cancel_order(None, BTC, {"clientOrderId": "lim1"})
    assert [o["clientOrderId"] for o in await usdm.fetch_open_orders(BTC)] == ["lim2"]
    await usdm.cancel_all_orders(BTC)
    assert await usdm.fetch_open_orders(BTC) == []
    with pytest.raises(ccxt.OrderNotFound):
        await usdm.cancel_order(one["id"], BTC)


async def test_take_profit_closes_and_leaves_sibling_open(tmp_path: Path) -> None:
    """When the take-profit triggers it closes the position; the stop stays open until cancelled."""
    csv = write_candles(tmp_path / "c.csv", [("40000", "41000", "39900", "40800")])
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        await usdm.create_order(BTC, "market", "buy", 0.1)
        await usdm.create_order(
            BTC,
            "market",
            "sell",
            None,
            params={"stopLossPrice": 39000, "closePosition": True, "clientOrderId": "sl"},
        )
        await usdm.create_order(
            BTC,
            "market",
            "sell",
            None,
            params={"takeProfitPrice": 40900, "closePosition": True, "clientOrderId": "tp"},
        )
        await sim.advance(300)
        tp = await usdm.fetch_order(None, BTC, {"clientOrderId": "tp", "trigger": True})
        sl = await usdm.fetch_order(None, BTC, {"clientOrderId": "sl", "trigger": True})
        assert tp["status"] == "closed"
        assert tp["filled"] == 0.1
        assert sl["status"] == "open"
        assert await usdm.fetch_positions([BTC]) == []
        child = await usdm.fetch_order(tp["info"]["actualOrderId"], BTC)
        assert child["status"] == "closed"
        assert child["clientOrderId"] == "tp"
        await usdm.cancel_order(sl["id"], BTC, {"trigger": True})
        assert await usdm.fetch_open_orders(BTC, params={"trigger": True}) == []


async def test_resting_limit_fills_when_crossed_as_maker(tmp_path: Path) -> None:
    """A buy limit below the price fills at its own price, with the maker fee, once crossed."""
    csv = write_candles(tmp_path / "c.csv", [("40000", "40100", "39500", "39900")])
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        order = await usdm.create_order(BTC, "limit", "buy", 0.1, 39600)
        assert order["status"] == "open"
        await sim.advance(300)
        filled = await usdm.fetch_order(order["id"], BTC)
        assert filled["status"] == "closed"
        assert filled["average"] == 39600
        trade = (await usdm.fetch_my_trades(BTC))[0]
        assert Decimal(trade["info"]["commission"]) == Decimal("0.1") * 39600 * Decimal("0.0002")
        assert trade["info"]["maker"] is True


async def test_trade_rejections_reach_ccxt_as_the_right_errors(sim: SimExchange, usdm: Any) -> None:
    """Insufficient margin, reduce-only when flat, bad symbol, unknown order: clear errors."""
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        await usdm.create_order(BTC, "market", "buy", 50)
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        await usdm.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):
        await usdm.create_order(BTC, "market", "buy", 0.001)
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await usdm.fetch_order("123", BTC)
    with pytest.raises(ccxt.InvalidOrder, match="-4120"):
        await usdm.fapiPrivatePostOrder(
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "STOP_MARKET",
                "quantity": "0.01",
                "stopPrice": "1000",
            }
        )
    with pytest.raises(ccxt.BadRequest, match="-1102"):
        await usdm.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"})
    with pytest.raises(ccxt.BadSymbol, match="-1121"):
        await usdm.fapiPrivateGetOpenOrders({"symbol": "NOPEUSDT"})
    price = sim.engine.mark("BTCUSDT")
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021"):
        await usdm.create_order(
            BTC, "market", "sell", 0.01, params={"stopLossPrice": float(price * 2)}
        )
    assert all(o.status.value != "NEW" for o in sim.engine.ledger.orders.values())


async def test_inverse_market_order_and_position(coinm: Any) -> None:
    """A COIN-M market buy of 2 contracts opens a 200 USD long settled in BTC."""
    order = await coinm.create_order(BTC_INV, "market", "buy", 2, params={"clientOrderId": "inv1"})
    assert order["status"] == "closed"
    assert order["filled"] == 2
    position = (await coinm.fetch_positions([BTC_INV]))[0]
    assert position["contracts"] == 2
    assert position["side"] == "long"
    assert position["contractSize"] == 100
    assert position["notional"] == pytest.approx(200 / position["markPrice"], rel=1e-6)
    sl = await coinm.create_order(
        BTC_INV,
        "market",
        "sell",
        None,
        params={
            "stopLossPrice": round(order["average"] * 0.9, 1),
            "closePosition": True,
            "clientOrderId": "isl",
        },
    )
    assert (await coinm.fetch_order(None, BTC_INV, {"clientOrderId": "isl", "trigger": True}))[
        "id"
    ] == sl["id"]


async def test_csv_history_starts_where_asked(tmp_path: Path) -> None:
    """With --data the clock starts at --start and klines end at that market time."""
    csv = write_candles(tmp_path / "c.csv", [("40000", "40010", "39990", "40005")])
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        assert await usdm.fetch_time() == CSV_START_MS
        rows = await usdm.fetch_ohlcv(BTC, "5m", limit=3)
        assert [r[0] for r in rows] == [
            CSV_START_MS - 2 * FIVE_MIN_MS,
            CSV_START_MS - FIVE_MIN_MS,
            CSV_START_MS,
        ]
        assert rows[-1][1:5] == [40000, 40000, 40000, 40000]


async def test_requests_signed_wrongly_are_refused(sim: SimExchange) -> None:
    """Unknown key, wrong secret, or a timestamp outside recvWindow are refused like Binance."""
    async with client(sim, api_key="who-is-this", secret="x") as stranger:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await stranger.fetch_balance()
    async with client(sim, secret="wrong-secret") as forger:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await forger.fetch_balance()
    async with client(sim, timeDifference=120_000) as late:  # stamps requests 2 minutes old
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await late.fetch_balance()
    async with client(sim, timeDifference=-5_000) as early:  # 5 s in the future
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await early.fetch_balance()


async def test_raw_errors_are_binance_json_with_status() -> None:
    """Missing key, bad parameters and unknown paths answer JSON errors, never a traceback."""
    async with running(generated_config()) as sim, aiohttp.ClientSession() as http:
        async with http.get(sim.url + "/fapi/v3/account") as response:
            assert response.status == 401
            assert (await response.json())["code"] == -2014
        async with http.get(sim.url + "/fapi/v1/klines", params={"symbol": "BTCUSDT"}) as response:
            assert response.status == 400
            assert (await response.json())["code"] == -1102
        params = {"symbol": "BTCUSDT", "interval": "7m"}
        async with http.get(sim.url + "/fapi/v1/klines", params=params) as response:
            assert (await response.json())["code"] == -1120
        async with http.get(sim.url + "/fapi/v9/nothing") as response:
            assert response.status == 404
            assert "code" in await response.json()


async def test_accounts_are_separate(tmp_path: Path) -> None:
    """Two --account pairs trade independently; each sees only its own orders and balance."""
    config = csv_config(
        write_candles(tmp_path / "c.csv", []),
        accounts=(("alice", "a-secret"), ("bob", "b-secret")),
    )
    async with running(config) as sim:
        async with client(sim, api_key="alice", secret="a-secret") as alice:
            await alice.create_order(BTC, "market", "buy", 0.1, params={"clientOrderId": "same"})
        async with client(sim, api_key="bob", secret="b-secret") as bob:
            with pytest.raises(ccxt.OrderNotFound):
                await bob.fetch_order(None, BTC, {"clientOrderId": "same"})
            assert (await bob.fetch_balance())["USDT"]["total"] == 10000
        assert sim.account("alice").position("BTCUSDT").qty == Decimal("0.1")


async def test_mark_price_and_funding_rates(sim: SimExchange, usdm: Any, coinm: Any) -> None:
    """premiumIndex and fundingRate give the mark price, next funding time and past rates."""
    rate = await usdm.fetch_funding_rate(BTC)
    assert rate["fundingRate"] == 0.0001
    assert rate["markPrice"] == float(sim.engine.mark("BTCUSDT").quantize(Decimal("0.01")))
    assert rate["fundingTimestamp"] % (8 * 3_600_000) == 0
    assert rate["fundingTimestamp"] > sim.engine.now_ms
    history = await usdm.fetch_funding_rate_history(BTC, limit=5)
    assert len(history) == 5
    assert all(h["timestamp"] <= sim.engine.now_ms for h in history)
    assert (await coinm.fetch_funding_rate(BTC_INV))["fundingRate"] == 0.0001


async def test_stop_limit_places_a_limit_order_when_triggered(tmp_path: Path) -> None:
    """A STOP (limit) conditional order places its limit order at the trigger, which then fills."""
    csv = write_candles(tmp_path / "c.csv", [("40000", "40600", "39950", "40500")])
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        await usdm.create_order(
            BTC, "limit", "buy", 0.1, 40400, params={"triggerPrice": 40300, "clientOrderId": "stl"}
        )
        await sim.advance(300)
        algo = await usdm.fetch_order(None, BTC, {"clientOrderId": "stl", "trigger": True})
        assert algo["status"] == "closed"
        child = await usdm.fetch_order(algo["info"]["actualOrderId"], BTC)
        assert child["type"] == "limit"
        assert child["status"] == "closed"
        assert child["average"] <= 40400
        assert sim.account(usdm.apiKey).position("BTCUSDT").qty == Decimal("0.1")


async def test_resting_limit_can_be_edited(sim: SimExchange, usdm: Any) -> None:
    """edit_order changes a resting limit order's price and amount in place."""
    price = float(sim.engine.mark("BTCUSDT"))
    order = await usdm.create_order(BTC, "limit", "sell", 0.01, round(price * 1.1, 1))
    edited = await usdm.edit_order(order["id"], BTC, "limit", "sell", 0.02, round(price * 1.2, 1))
    assert edited["id"] == order["id"]
    assert edited["amount"] == 0.02
    assert edited["price"] == round(price * 1.2, 1)


async def test_replay_mode_moves_the_market_by_itself() -> None:
    """Without the manual clock, market time follows the wall clock × speed and klines stream."""
    config = generated_config(manual_clock=False, speed=6000, tick_s=0.02)
    async with running(config) as sim, client(sim) as usdm:
        first = await usdm.watch_ohlcv(BTC, "1m")
        later = first
        while later[-1][0] == first[-1][0]:
            later = await asyncio.wait_for(usdm.watch_ohlcv(BTC, "1m"), 10)
        assert later[-1][0] > first[-1][0]
        assert await usdm.fetch_time() >= later[-1][0]
