"""The paper broker's order book in the store: a filled order and its fill, and the resting
stop-loss and take-profit of a position (both closing the whole position, as live places them),
so paper and live accounts read the same in ``tbotd status``, the dashboard and the audit."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from tbotd.domain.enums import OrderRole
from tbotd.domain.orders import Fill, Order, OrderState
from tbotd.execution import paper_model as pm
from tbotd.execution.orders import new_order
from tbotd.store import Store
from tbotd.strategy.exits import Protection


def record_fill(
    store: Store, order: Order, execution: pm.Execution, fill_id: str, currency: str
) -> None:
    """``order`` filled as ``execution`` says: its final state and its fill ``fill_id``."""
    filled = order.transition(
        OrderState.FILLED,
        execution.time,
        filled_qty=execution.qty,
        avg_fill_price=execution.price,
        exchange_id=f"paper-{order.client_id}",
    )
    store.update_order(filled, "filled (paper)")
    store.record_fill(
        Fill(
            fill_id,
            order.client_id,
            order.symbol,
            execution.side,
            execution.qty,
            execution.price,
            execution.fee,
            currency,
            execution.time,
            execution.realized_pnl,
        )
    )


def place_protection(
    store: Store,
    instance: str,
    position: pm.PaperPosition,
    prices: Protection,
    candle_time: datetime,
    at: datetime,
) -> None:
    """The position's stop-loss and take-profit as resting orders on its whole quantity."""
    seq = store.order_count(position.symbol, OrderRole.STOP_LOSS)
    for role, trigger in (
        (OrderRole.STOP_LOSS, prices.stop_loss),
        (OrderRole.TAKE_PROFIT, prices.take_profit),
    ):
        order = new_order(
            instance,
            position.symbol,
            position.side,
            role,
            position.qty,
            candle_time,
            at,
            trigger_price=trigger,
            seq=seq,
        )
        order = replace(order, close_position=True)
        store.record_order_intent(order)
        store.update_order(order.transition(OrderState.OPEN, at), "resting (paper)")
