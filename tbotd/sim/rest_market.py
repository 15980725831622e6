"""Public market-data routes: time, exchangeInfo, klines, mark price / funding, tickers."""

from __future__ import annotations

from typing import Any

from tbotd.domain.enums import MarketType
from tbotd.sim.auth import SimError
from tbotd.sim.instruments import Instrument
from tbotd.sim.market import Kline
from tbotd.sim.render import fmt
from tbotd.sim.rest_common import Ctx, Route, Venue
from tbotd.sim.triggers import FUNDING_INTERVAL_MS, funding_rate_at, next_funding_ms

INTERVALS_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
MAX_KLINES = 1500


def interval_ms(ctx: Ctx, inst: Instrument, interval: str | None) -> int:
    """A supported kline interval in ms: a Binance interval that is a multiple of the source's."""
    if not interval:
        raise SimError(
            -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."
        )
    step = INTERVALS_MS.get(interval)
    if step is None or step % ctx.sim.market_of(inst).base_ms:
        raise SimError(-1120, "Invalid interval.")
    return step


def kline_row(inst: Instrument, k: Kline) -> list[Any]:
    """One REST kline row; COIN-M counts volume in contracts and puts coins at index 7."""
    coins = k.volume
    quote = coins * k.close
    if inst.market_type is MarketType.LINEAR:
        volume, second = inst.qty_str(coins), fmt(quote)
    else:
        volume, second = str(int(quote / inst.contract_size)), fmt(coins)
    trades = int(coins) + 1
    return [
        k.open_ms,
        inst.price_str(k.open),
        inst.price_str(k.high),
        inst.price_str(k.low),
        inst.price_str(k.close),
        volume,
        k.close_ms,
        second,
        trades,
        "0",
        "0",
        "0",
    ]


async def time_(ctx: Ctx) -> Any:
    """GET /v1/time: market time."""
    return {"serverTime": ctx.sim.engine.now_ms}


async def ping(_ctx: Ctx) -> Any:
    """GET /v1/ping."""
    return {}


async def exchange_info(ctx: Ctx) -> Any:
    """GET /v1/exchangeInfo."""
    venue = ctx.venue
    return {
        "timezone": "UTC",
        "serverTime": ctx.sim.engine.now_ms,
        "futuresType": "U_MARGINED" if venue.market_type is MarketType.LINEAR else "COIN_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 2400,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ],
        "exchangeFilters": [],
        "assets": [
            {"asset": a, "marginAvailable": True, "autoAssetExchange": "0"} for a in venue.assets
        ],
        "symbols": [i.exchange_info() for i in venue.instruments.values()],
    }


async def klines(ctx: Ctx) -> Any:
    """GET /v1/klines (and mark/index price klines, which equal them in the sim)."""
    inst = ctx.inst()
    step = interval_ms(ctx, inst, ctx.params.get("interval"))
    limit = ctx.integer("limit", 500) or 500
    if not 1 <= limit <= MAX_KLINES:
        raise SimError(-1130, "Data sent for parameter 'limit' is not valid.")
    start, end = ctx.integer("startTime"), ctx.integer("endTime")
    if start is not None and end is not None and start > end:
        raise SimError(-1023, "Start time is greater than end time.")
    market = ctx.sim.market_of(inst)
    rows = market.klines(step, ctx.sim.engine.now_ms, start, end, limit)
    return [kline_row(inst, k) for k in rows]


def _premium(ctx: Ctx, inst: Instrument) -> dict[str, Any]:
    now = ctx.sim.engine.now_ms
    mark = inst.price_str(ctx.sim.engine.mark(inst.symbol))
    nxt = next_funding_ms(now)
    body = {
        "symbol": inst.symbol,
        "markPrice": mark,
        "indexPrice": mark,
        "estimatedSettlePrice": mark,
        "lastFundingRate": fmt(funding_rate_at(ctx.sim.engine, nxt)),
        "interestRate": "0.00010000",
        "nextFundingTime": nxt,
        "time": now,
    }
    if inst.market_type is MarketType.INVERSE:
        body["pair"] = inst.pair
    return body


async def premium_index(ctx: Ctx) -> Any:
    """GET /v1/premiumIndex: mark price and the next funding."""
    inst = ctx.instrument(required=False)
    if inst is not None:
        body = _premium(ctx, inst)
        return body if ctx.venue.market_type is MarketType.LINEAR else [body]
    return [_premium(ctx, i) for i in ctx.venue.instruments.values()]


async def funding_rate(ctx: Ctx) -> Any:
    """GET /v1/fundingRate: settled funding rates, oldest first."""
    inst = ctx.inst()
    now = ctx.sim.engine.now_ms
    limit = min(ctx.integer("limit", 100) or 100, 1000)
    start, end = ctx.integer("startTime"), ctx.integer("endTime")
    last = min(now, end) if end is not None else now
    last -= last % FUNDING_INTERVAL_MS
    first = last - (limit - 1) * FUNDING_INTERVAL_MS
    if start is not None:
        first = -(-start // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
        last = min(last, first + (limit - 1) * FUNDING_INTERVAL_MS)
    market = ctx.sim.market_of(inst)
    first = max(first, market.source.first_ms)
    first = -(-first // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
    return [
        {
            "symbol": inst.symbol,
            "fundingTime": t,
            "fundingRate": fmt(funding_rate_at(ctx.sim.engine, t)),
            "markPrice": inst.price_str(market.price_at(t)),
        }
        for t in range(first, last + 1, FUNDING_INTERVAL_MS)
    ]


def _ticker_price(ctx: Ctx, inst: Instrument) -> dict[str, Any]:
    price = inst.price_str(ctx.sim.engine.mark(inst.symbol))
    return {"symbol": inst.symbol, "price": price, "time": ctx.sim.engine.now_ms}


def _book(ctx: Ctx, inst: Instrument) -> dict[str, Any]:
    engine = ctx.sim.engine
    mark = engine.mark(inst.symbol)
    return {
        "symbol": inst.symbol,
        "bidPrice": inst.price_str(engine.taker_price(inst, -1, mark)),
        "bidQty": "10",
        "askPrice": inst.price_str(engine.taker_price(inst, 1, mark)),
        "askQty": "10",
        "time": engine.now_ms,
    }


async def ticker_price(ctx: Ctx) -> Any:
    """GET /v1/ticker/price."""
    inst = ctx.instrument(required=False)
    if inst is not None:
        return _ticker_price(ctx, inst)
    return [_ticker_price(ctx, i) for i in ctx.venue.instruments.values()]


async def book_ticker(ctx: Ctx) -> Any:
    """GET /v1/ticker/bookTicker: best bid/ask one slippage away from the price."""
    inst = ctx.instrument(required=False)
    if inst is not None:
        return _book(ctx, inst)
    return [_book(ctx, i) for i in ctx.venue.instruments.values()]


def routes(venue: Venue) -> list[Route]:
    """The public routes of ``venue``."""
    p = venue.prefix + "/v1"
    return [
        ("GET", f"{p}/ping", ping, "public"),
        ("GET", f"{p}/time", time_, "public"),
        ("GET", f"{p}/exchangeInfo", exchange_info, "public"),
        ("GET", f"{p}/klines", klines, "public"),
        ("GET", f"{p}/markPriceKlines", klines, "public"),
        ("GET", f"{p}/indexPriceKlines", klines, "public"),
        ("GET", f"{p}/premiumIndex", premium_index, "public"),
        ("GET", f"{p}/fundingRate", funding_rate, "public"),
        ("GET", f"{p}/ticker/price", ticker_price, "public"),
        ("GET", f"{p}/ticker/bookTicker", book_ticker, "public"),
    ]
