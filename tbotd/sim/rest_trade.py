"""Private trading routes: regular orders (``/order``) and conditional orders (``/algoOrder``).

As on the real venue since December 2025, STOP/TAKE_PROFIT types sent to ``/order`` are refused
with -4120: conditional orders live in the separate algo-order book.
"""

from __future__ import annotations

from typing import Any

from tbotd.sim import trading
from tbotd.sim.auth import SimError, missing, not_required, unknown_order
from tbotd.sim.records import ALGO_TYPES, SimAlgoOrder, SimOrder
from tbotd.sim.render import algo_json, order_json
from tbotd.sim.rest_common import Ctx, Route, Venue

SIDES = ("BUY", "SELL")
ALGO_ENDPOINT_TYPES = ALGO_TYPES | {"TRAILING_STOP_MARKET"}
CANCEL_ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


def _side(ctx: Ctx) -> str:
    return ctx.choice("side", SIDES, code=-1117)


def _position_side(ctx: Ctx) -> None:
    side = ctx.params.get("positionSide", "BOTH").upper()
    if side != "BOTH":
        raise SimError(-4061, "Order's position side does not match user's setting.")


def _order_json(ctx: Ctx, order: SimOrder) -> dict[str, Any]:
    return order_json(order, ctx.sim.engine.instruments[order.symbol])


def _algo_json(ctx: Ctx, algo: SimAlgoOrder) -> dict[str, Any]:
    return algo_json(algo, ctx.sim.engine.instruments[algo.symbol])


async def new_order(ctx: Ctx) -> Any:
    """POST order: MARKET or LIMIT."""
    inst = ctx.inst()
    side = _side(ctx)
    kind = (ctx.params.get("type") or "").upper()
    if not kind:
        raise missing("type")
    if kind in ALGO_ENDPOINT_TYPES:
        raise SimError(
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API endpoints "
            "instead.",
        )
    if kind not in ("MARKET", "LIMIT"):
        raise SimError(-1116, "Invalid orderType.")
    if ctx.flag("closePosition"):
        raise not_required("closePosition")
    _position_side(ctx)
    qty = ctx.decimal("quantity")
    if qty is None:
        raise missing("quantity")
    tif = (ctx.params.get("timeInForce") or ("GTC" if kind == "LIMIT" else "")).upper()
    if kind == "LIMIT" and tif not in ("GTC", "IOC", "FOK", "GTX"):
        raise SimError(-1115, "Invalid timeInForce.")
    request = trading.OrderRequest(
        symbol=inst.symbol,
        side=side,
        type=kind,
        qty=qty,
        price=ctx.decimal("price"),
        time_in_force=tif or "GTC",
        reduce_only=ctx.flag("reduceOnly"),
        client_id=ctx.params.get("newClientOrderId") or None,
    )
    order = trading.place_order(ctx.sim.engine, ctx.acct, request)
    return _order_json(ctx, order)


def _ids(ctx: Ctx, id_name: str, client_name: str) -> tuple[int | None, str | None]:
    order_id = ctx.integer(id_name)
    client_id = ctx.params.get(client_name) or None
    if order_id is None and client_id is None:
        raise SimError(
            -1102,
            f"Param '{client_name}' or '{id_name}' must be sent, but both were empty/null!",
        )
    return order_id, client_id


async def get_order(ctx: Ctx) -> Any:
    """GET order by orderId or origClientOrderId (-2013 if unknown)."""
    inst = ctx.inst()
    order_id, client_id = _ids(ctx, "orderId", "origClientOrderId")
    order = ctx.sim.engine.ledger.find_order(ctx.acct.api_key, inst.symbol, order_id, client_id)
    if order is None:
        raise unknown_order()
    return _order_json(ctx, order)


async def get_open_order(ctx: Ctx) -> Any:
    """GET openOrder: like order, but -2013 unless the order is still open."""
    inst = ctx.inst()
    order_id, client_id = _ids(ctx, "orderId", "origClientOrderId")
    order = ctx.sim.engine.ledger.find_order(ctx.acct.api_key, inst.symbol, order_id, client_id)
    if order is None or not order.status.is_open:
        raise unknown_order()
    return _order_json(ctx, order)


async def cancel_order(ctx: Ctx) -> Any:
    """DELETE order (-2011 if unknown or not open)."""
    inst = ctx.inst()
    order_id, client_id = _ids(ctx, "orderId", "origClientOrderId")
    order = trading.cancel_order(ctx.sim.engine, ctx.acct, inst.symbol, order_id, client_id)
    return _order_json(ctx, order)


async def edit_order(ctx: Ctx) -> Any:
    """PUT order: change a resting LIMIT order's price and quantity."""
    inst = ctx.inst()
    order_id, client_id = _ids(ctx, "orderId", "origClientOrderId")
    engine = ctx.sim.engine
    order = engine.ledger.find_order(ctx.acct.api_key, inst.symbol, order_id, client_id)
    if order is None or not order.status.is_open:
        raise unknown_order()
    if order.type != "LIMIT":
        raise SimError(-5025, "Only limit order is supported.")
    qty, price = ctx.decimal("quantity"), ctx.decimal("price")
    if qty is None or price is None:
        raise missing("quantity" if qty is None else "price")
    trading.check_quantity(inst, qty)
    trading.check_price(inst, price)
    order.qty, order.price, order.update_ms = qty, price, engine.now_ms
    engine.emit_order(order, "AMENDMENT")
    trading.start_limit(engine, ctx.acct, order, engine.mark(inst.symbol))
    return _order_json(ctx, order)


async def open_orders(ctx: Ctx) -> Any:
    """GET openOrders (one symbol or all)."""
    inst = ctx.instrument(required=False)
    symbol = inst.symbol if inst else None
    found = ctx.sim.engine.ledger.open_orders(ctx.acct.api_key, symbol)
    return [_order_json(ctx, o) for o in found if o.symbol in ctx.venue.instruments]


async def cancel_all(ctx: Ctx) -> Any:
    """DELETE allOpenOrders: regular orders only (conditional ones stay)."""
    trading.cancel_all(ctx.sim.engine, ctx.acct, ctx.inst().symbol)
    return CANCEL_ALL_DONE


async def all_orders(ctx: Ctx) -> Any:
    """GET allOrders: every order of a symbol, oldest first."""
    inst = ctx.inst()
    limit = min(ctx.integer("limit", 500) or 500, 1000)
    from_id, start, end = ctx.integer("orderId"), ctx.integer("startTime"), ctx.integer("endTime")
    found = [
        o
        for o in ctx.sim.engine.ledger.orders.values()
        if o.account == ctx.acct.api_key
        and o.symbol == inst.symbol
        and (from_id is None or o.order_id >= from_id)
        and (start is None or o.time_ms >= start)
        and (end is None or o.time_ms <= end)
    ]
    found = found[:limit] if from_id is not None or start is not None else found[-limit:]
    return [_order_json(ctx, o) for o in found]


async def new_algo(ctx: Ctx) -> Any:
    """POST algoOrder: a conditional order (algoType=CONDITIONAL)."""
    algo_type = ctx.params.get("algoType")
    if not algo_type:
        raise missing("algoType")
    if algo_type.upper() != "CONDITIONAL":
        raise SimError(
            -1100, f"Illegal characters found in parameter 'algoType'; value '{algo_type}'."
        )
    inst = ctx.inst()
    side = _side(ctx)
    kind = (ctx.params.get("type") or "").upper()
    if not kind:
        raise missing("type")
    if kind not in ALGO_TYPES:
        raise SimError(-1116, "Invalid orderType.")
    _position_side(ctx)
    trigger = ctx.decimal("triggerPrice")
    if trigger is None:
        raise missing("triggerPrice")
    working = (ctx.params.get("workingType") or "CONTRACT_PRICE").upper()
    if working not in ("CONTRACT_PRICE", "MARK_PRICE"):
        raise SimError(
            -1100, f"Illegal characters found in parameter 'workingType'; value '{working}'."
        )
    request = trading.AlgoRequest(
        symbol=inst.symbol,
        side=side,
        order_type=kind,
        trigger_price=trigger,
        qty=ctx.decimal("quantity"),
        price=ctx.decimal("price"),
        close_position=ctx.flag("closePosition"),
        reduce_only=ctx.flag("reduceOnly"),
        client_id=ctx.params.get("clientAlgoId") or None,
        time_in_force=(ctx.params.get("timeInForce") or "GTC").upper(),
        working_type=working,
        price_protect=ctx.flag("priceProtect"),
    )
    algo = trading.place_algo(ctx.sim.engine, ctx.acct, request)
    return _algo_json(ctx, algo)


async def get_algo(ctx: Ctx) -> Any:
    """GET algoOrder by algoId or clientAlgoId (-2013 if unknown)."""
    algo_id, client_id = _ids(ctx, "algoId", "clientAlgoId")
    algo = ctx.sim.engine.ledger.find_algo(ctx.acct.api_key, algo_id, client_id)
    if algo is None or algo.symbol not in ctx.venue.instruments:
        raise unknown_order()
    return _algo_json(ctx, algo)


async def cancel_algo(ctx: Ctx) -> Any:
    """DELETE algoOrder."""
    algo_id, client_id = _ids(ctx, "algoId", "clientAlgoId")
    algo = trading.cancel_algo(ctx.sim.engine, ctx.acct, algo_id, client_id)
    return {
        "algoId": algo.algo_id,
        "clientAlgoId": algo.client_algo_id,
        "code": "200",
        "msg": "success",
    }


async def open_algos(ctx: Ctx) -> Any:
    """GET openAlgoOrders (one symbol or all)."""
    inst = ctx.instrument(required=False)
    symbol = inst.symbol if inst else None
    found = ctx.sim.engine.ledger.open_algos(ctx.acct.api_key, symbol)
    return [_algo_json(ctx, a) for a in found if a.symbol in ctx.venue.instruments]


async def cancel_all_algos(ctx: Ctx) -> Any:
    """DELETE algoOpenOrders: every open conditional order of a symbol."""
    trading.cancel_all_algos(ctx.sim.engine, ctx.acct, ctx.inst().symbol)
    return CANCEL_ALL_DONE


async def all_algos(ctx: Ctx) -> Any:
    """GET allAlgoOrders: every conditional order of a symbol, oldest first."""
    inst = ctx.inst()
    limit = min(ctx.integer("limit", 500) or 500, 1000)
    found = [
        a
        for a in ctx.sim.engine.ledger.algos.values()
        if a.account == ctx.acct.api_key and a.symbol == inst.symbol
    ]
    return [_algo_json(ctx, a) for a in found[-limit:]]


def routes(venue: Venue) -> list[Route]:
    """The trading routes of ``venue``."""
    p = venue.prefix + "/v1"
    return [
        ("POST", f"{p}/order", new_order, "signed"),
        ("GET", f"{p}/order", get_order, "signed"),
        ("DELETE", f"{p}/order", cancel_order, "signed"),
        ("PUT", f"{p}/order", edit_order, "signed"),
        ("GET", f"{p}/openOrder", get_open_order, "signed"),
        ("GET", f"{p}/openOrders", open_orders, "signed"),
        ("DELETE", f"{p}/allOpenOrders", cancel_all, "signed"),
        ("GET", f"{p}/allOrders", all_orders, "signed"),
        ("POST", f"{p}/algoOrder", new_algo, "signed"),
        ("GET", f"{p}/algoOrder", get_algo, "signed"),
        ("DELETE", f"{p}/algoOrder", cancel_algo, "signed"),
        ("GET", f"{p}/openAlgoOrders", open_algos, "signed"),
        ("DELETE", f"{p}/algoOpenOrders", cancel_all_algos, "signed"),
        ("GET", f"{p}/allAlgoOrders", all_algos, "signed"),
    ]
