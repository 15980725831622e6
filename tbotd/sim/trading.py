"""Order entry rules: what the venue accepts, rejects (with which code) and does at once.

Placing, triggering and cancelling regular and conditional (algo) orders over an
:class:`~tbotd.sim.matching.Engine`. The checks follow Binance's order of precedence closely
enough that a client sees the same error a real venue would give for the same mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from tbotd.domain.enums import MarketType
from tbotd.sim.accounts import ZERO, Account
from tbotd.sim.auth import SimError, cancel_rejected, illegal, missing, not_required
from tbotd.sim.instruments import Instrument
from tbotd.sim.matching import Engine
from tbotd.sim.records import ALGO_TYPES, AlgoStatus, OrderStatus, SimAlgoOrder, SimOrder

CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
MAX_ALGO_ORDERS = 10


@dataclass(frozen=True)
class OrderRequest:
    """A new regular order (MARKET or LIMIT)."""

    symbol: str
    side: str
    type: str
    qty: Decimal
    price: Decimal | None = None
    time_in_force: str = "GTC"
    reduce_only: bool = False
    client_id: str | None = None


@dataclass(frozen=True)
class AlgoRequest:
    """A new conditional order: STOP_MARKET, TAKE_PROFIT_MARKET, STOP or TAKE_PROFIT."""

    symbol: str
    side: str
    order_type: str
    trigger_price: Decimal
    qty: Decimal | None = None
    price: Decimal | None = None
    close_position: bool = False
    reduce_only: bool = False
    client_id: str | None = None
    time_in_force: str = "GTC"
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False


def sign_of(side: str) -> int:
    """+1 for BUY, -1 for SELL."""
    return 1 if side == "BUY" else -1


def check_quantity(inst: Instrument, qty: Decimal) -> None:
    """Quantity on the step grid and within the lot size."""
    if qty <= 0:
        raise SimError(-4003, "Quantity less than or equal to zero.")
    if qty % inst.step_size:
        raise SimError(-1111, "Precision is over the maximum defined for this asset.")
    if qty < inst.min_qty:
        raise SimError(-1013, "Filter failure: LOT_SIZE")
    if qty > inst.max_qty:
        raise SimError(-4005, "Quantity greater than max quantity.")


def check_price(inst: Instrument, price: Decimal, name: str = "price") -> None:
    """Price positive and on the tick grid."""
    if price <= 0:
        raise SimError(-4001, "Price less than 0.") if name == "price" else missing(name)
    if price % inst.tick_size:
        raise SimError(-4014, "Price not increased by tick size.")


def check_client_id(client_id: str | None) -> None:
    """Binance's client id alphabet and length."""
    if client_id is not None and not CLIENT_ID.match(client_id):
        raise illegal("newClientOrderId", client_id)


def place_order(engine: Engine, account: Account, req: OrderRequest) -> SimOrder:
    """Validate and place a regular order; market orders fill at once."""
    inst = engine.instrument(req.symbol)
    check_client_id(req.client_id)
    check_quantity(inst, req.qty)
    if account.dual_side:
        raise SimError(-4061, "Order's position side does not match user's setting.")
    sign = sign_of(req.side)
    mark = engine.mark(inst.symbol)
    if req.type == "LIMIT":
        if req.price is None:
            raise missing("price")
        check_price(inst, req.price)
        ref_price = req.price
    else:
        if req.price is not None:
            raise not_required("price")
        ref_price = engine.taker_price(inst, sign, mark)
    if req.client_id and any(
        o.client_id == req.client_id for o in engine.ledger.open_orders(account.api_key)
    ):
        raise SimError(-4116, "ClientOrderId is duplicated.")
    if req.reduce_only and engine.reducible(account, inst.symbol, sign) == 0:
        raise SimError(-2022, "ReduceOnly Order is rejected.")
    linear = inst.market_type is MarketType.LINEAR
    if not req.reduce_only and linear and inst.notional(req.qty, ref_price) < inst.min_notional:
        raise SimError(
            -4164,
            f"Order's notional must be no smaller than {inst.min_notional} "
            "(unless you choose reduce only).",
        )
    if not req.reduce_only:
        engine.check_margin(account, inst, sign, req.qty, ref_price)
    order = engine.new_order(
        account,
        inst,
        client_id=req.client_id or f"sim-{engine.ledger.next_order_id}",
        side=req.side,
        type=req.type,
        qty=req.qty,
        price=req.price or ZERO,
        time_in_force=req.time_in_force if req.type == "LIMIT" else "GTC",
        reduce_only=req.reduce_only,
    )
    if req.type == "MARKET":
        engine.run_market(account, order, mark)
    else:
        start_limit(engine, account, order, mark)
    return order


def start_limit(engine: Engine, account: Account, order: SimOrder, mark: Decimal) -> None:
    """A new limit order: take liquidity if marketable (unless post-only), else rest."""
    inst = engine.instruments[order.symbol]
    taker = engine.taker_price(inst, order.sign, mark)
    marketable = taker <= order.price if order.sign > 0 else taker >= order.price
    if marketable and order.time_in_force != "GTX":
        qty = order.remaining
        if order.reduce_only:
            qty = min(qty, engine.reducible(account, order.symbol, order.sign))
        if qty > 0:
            engine.execute(account, order, qty, taker, maker=False)
        if order.status.is_open:
            engine.finish(order, OrderStatus.EXPIRED, "EXPIRED")
    elif marketable or order.time_in_force in ("IOC", "FOK"):
        engine.finish(order, OrderStatus.EXPIRED, "EXPIRED")


def place_algo(engine: Engine, account: Account, req: AlgoRequest) -> SimAlgoOrder:
    """Validate and place a conditional order; it waits for the price to cross its trigger."""
    inst = engine.instrument(req.symbol)
    if req.order_type not in ALGO_TYPES:
        raise SimError(-1116, "Invalid orderType.")
    check_client_id(req.client_id)
    check_price(inst, req.trigger_price, "triggerPrice")
    if req.close_position:
        if req.qty is not None:
            raise not_required("quantity")
        if req.reduce_only:
            raise not_required("reduceOnly")
    else:
        if req.qty is None:
            raise missing("quantity")
        check_quantity(inst, req.qty)
    if not req.order_type.endswith("_MARKET"):
        if req.price is None:
            raise missing("price")
        check_price(inst, req.price)
    if account.dual_side:
        raise SimError(-4061, "Order's position side does not match user's setting.")
    open_algos = engine.ledger.open_algos(account.api_key)
    if req.client_id and any(a.client_algo_id == req.client_id for a in open_algos):
        raise SimError(-4116, "ClientOrderId is duplicated.")
    if sum(a.symbol == inst.symbol for a in open_algos) >= MAX_ALGO_ORDERS:
        raise SimError(-4045, "Reach max stop order limit.")
    algo = SimAlgoOrder(
        algo_id=engine.ledger.new_algo_id(),
        client_algo_id=req.client_id or f"simalgo-{engine.ledger.next_algo_id}",
        account=account.api_key,
        symbol=inst.symbol,
        side=req.side,
        order_type=req.order_type,
        trigger_price=req.trigger_price,
        qty=req.qty or ZERO,
        price=req.price or ZERO,
        close_position=req.close_position,
        reduce_only=req.reduce_only,
        time_in_force=req.time_in_force,
        working_type=req.working_type,
        price_protect=req.price_protect,
        time_ms=engine.now_ms,
    )
    mark = engine.mark(inst.symbol)
    if (mark >= algo.trigger_price) if algo.direction == "up" else (mark <= algo.trigger_price):
        raise SimError(-2021, "Order would immediately trigger.")
    engine.ledger.add_algo(algo)
    engine.set_algo_status(algo, AlgoStatus.NEW)
    return algo


def trigger_algo(engine: Engine, algo: SimAlgoOrder, price: Decimal) -> None:
    """The price crossed ``algo``'s trigger at ``price``: place and run its child order."""
    account = engine.accounts[algo.account]
    inst = engine.instruments[algo.symbol]
    algo.trigger_ms = engine.now_ms
    engine.set_algo_status(algo, AlgoStatus.TRIGGERING)
    market = algo.order_type.endswith("_MARKET")
    sign = sign_of(algo.side)
    if not (algo.close_position or algo.reduce_only):
        ref = engine.taker_price(inst, sign, price) if market else algo.price
        try:
            engine.check_margin(account, inst, sign, algo.qty, ref)
        except SimError:
            engine.set_algo_status(algo, AlgoStatus.EXPIRED)
            return
    child = engine.new_order(
        account,
        inst,
        client_id=algo.client_algo_id,
        side=algo.side,
        type="MARKET" if market else "LIMIT",
        qty=algo.qty,
        price=ZERO if market else algo.price,
        time_in_force=algo.time_in_force,
        reduce_only=algo.reduce_only,
        close_position=algo.close_position,
        orig_type=algo.order_type,
        stop_price=algo.trigger_price,
        algo_id=algo.algo_id,
    )
    algo.actual_order_id = child.order_id
    engine.set_algo_status(algo, AlgoStatus.TRIGGERED)
    if market:
        engine.run_market(account, child, price)
    else:
        start_limit(engine, account, child, price)


def cancel_order(
    engine: Engine, account: Account, symbol: str, order_id: int | None, client_id: str | None
) -> SimOrder:
    """Cancel an open regular order (-2011 if unknown or no longer open)."""
    engine.instrument(symbol)
    order = engine.ledger.find_order(account.api_key, symbol, order_id, client_id)
    if order is None or not order.status.is_open:
        raise cancel_rejected()
    engine.finish(order, OrderStatus.CANCELED, "CANCELED")
    return order


def cancel_algo(
    engine: Engine, account: Account, algo_id: int | None, client_id: str | None
) -> SimAlgoOrder:
    """Cancel an open conditional order (-2011 if unknown or no longer open)."""
    algo = engine.ledger.find_algo(account.api_key, algo_id, client_id)
    if algo is None or not algo.status.is_open:
        raise cancel_rejected()
    engine.set_algo_status(algo, AlgoStatus.CANCELED)
    return algo


def cancel_all(engine: Engine, account: Account, symbol: str) -> int:
    """Cancel every open regular order of ``symbol``; returns how many."""
    engine.instrument(symbol)
    orders = engine.ledger.open_orders(account.api_key, symbol)
    for order in orders:
        engine.finish(order, OrderStatus.CANCELED, "CANCELED")
    return len(orders)


def cancel_all_algos(engine: Engine, account: Account, symbol: str) -> int:
    """Cancel every open conditional order of ``symbol``; returns how many."""
    engine.instrument(symbol)
    algos = engine.ledger.open_algos(account.api_key, symbol)
    for algo in algos:
        engine.set_algo_status(algo, AlgoStatus.CANCELED)
    return len(algos)
