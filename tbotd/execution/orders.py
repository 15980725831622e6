"""Building orders with deterministic client ids — the same for both brokers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from tbotd.domain.enums import OrderRole, OrderType, Side
from tbotd.domain.orders import Order, client_order_id

_TYPE_OF = {
    OrderRole.ENTRY: OrderType.MARKET,
    OrderRole.EXIT: OrderType.MARKET,
    OrderRole.STOP_LOSS: OrderType.STOP_MARKET,
    OrderRole.TAKE_PROFIT: OrderType.TAKE_PROFIT_MARKET,
}


def new_order(
    instance: str,
    symbol: str,
    side: Side,
    role: OrderRole,
    qty: Decimal,
    candle_time: datetime,
    created_at: datetime,
    trigger_price: Decimal | None = None,
    seq: int = 0,
    reason: str = "",
) -> Order:
    """The order for ``role`` on a position of ``side``: entries buy a long, the rest sell it.

    Exits and protective orders are reduce-only, so they can never open or flip a position.
    """
    entering = role is OrderRole.ENTRY
    return Order(
        client_id=client_order_id(instance, symbol, candle_time, role, seq),
        symbol=symbol,
        side=side.entry_order_side if entering else side.exit_order_side,
        type=_TYPE_OF[role],
        role=role,
        qty=qty,
        created_at=created_at,
        trigger_price=trigger_price,
        reduce_only=not entering,
        reason=reason,
    )
