"""Reconciliation turns differences between our records and the venue into the right fixes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tbotd.domain import Order, OrderRole, OrderSide, OrderState, OrderType, Position, Side
from tbotd.domain import client_order_id as cid
from tbotd.execution.reconcile import (
    AdoptPosition,
    CancelOrphan,
    DropPosition,
    Protect,
    ReportUnknown,
    ResolveOrder,
    VenueOrder,
    VenuePosition,
    reconcile_orders,
    reconcile_positions,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYM = "BTC/USDT:USDT"


def order(role: OrderRole, state: OrderState = OrderState.OPEN) -> Order:
    kind = {
        OrderRole.ENTRY: OrderType.MARKET,
        OrderRole.EXIT: OrderType.MARKET,
        OrderRole.STOP_LOSS: OrderType.STOP_MARKET,
        OrderRole.TAKE_PROFIT: OrderType.TAKE_PROFIT_MARKET,
    }[role]
    trigger = Decimal(100) if kind.is_conditional else None
    return Order(
        cid("i", SYM, T0, role),
        SYM,
        OrderSide.SELL,
        kind,
        role,
        Decimal(1),
        T0,
        state=state,
        trigger_price=trigger,
    )


def venue(o: Order) -> VenueOrder:
    return VenueOrder(o.symbol, o.client_id, "x" + o.client_id[:5], o.type.is_conditional, True)


LONG = Position(SYM, Side.LONG, Decimal(1), Decimal(100), T0)
VENUE_LONG = VenuePosition(SYM, Side.LONG, Decimal(1), Decimal(100))


def test_in_sync_needs_nothing() -> None:
    """Same position, stop and target resting: no fixes."""
    stop, take = order(OrderRole.STOP_LOSS), order(OrderRole.TAKE_PROFIT)
    open_ = [venue(stop), venue(take)]
    assert reconcile_orders([stop, take], open_) == []
    assert reconcile_positions({SYM: LONG}, {SYM: VENUE_LONG}, [stop, take], open_) == []


def test_order_we_sent_but_venue_does_not_list_is_resolved_by_client_id() -> None:
    """A pending/unknown entry is looked up by client id before anything else."""
    entry = order(OrderRole.ENTRY, OrderState.UNKNOWN)
    assert reconcile_orders([entry], []) == [ResolveOrder(entry.client_id, SYM, False)]


def test_order_still_pending_here_but_open_on_the_venue_is_resolved() -> None:
    """A stop sent just before a crash rests on the venue but is pending here: look it up."""
    stop = order(OrderRole.STOP_LOSS, OrderState.PENDING)
    assert reconcile_orders([stop], [venue(stop)]) == [ResolveOrder(stop.client_id, SYM, True)]


def test_foreign_venue_order_is_reported_not_cancelled() -> None:
    """An open order we never recorded is reported as unknown."""
    foreign = VenueOrder(SYM, "manual123", "99", False, False)
    assert reconcile_orders([], [foreign]) == [ReportUnknown(foreign)]


def test_venue_wins_on_positions() -> None:
    """A venue position we lack (or hold differently) is adopted; ours without it is dropped."""
    assert reconcile_positions({}, {SYM: VENUE_LONG}, [], []) == [
        AdoptPosition(VENUE_LONG, None),
        Protect(SYM, (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT)),
    ]
    short = VenuePosition(SYM, Side.SHORT, Decimal(2), Decimal(101))
    assert reconcile_positions({SYM: LONG}, {SYM: short}, [], [])[0] == AdoptPosition(short, LONG)
    assert reconcile_positions({SYM: LONG}, {}, [], []) == [DropPosition(SYM, LONG)]


def test_unprotected_position_gets_protection() -> None:
    """A position with only its take-profit resting needs its stop-loss placed."""
    take = order(OrderRole.TAKE_PROFIT)
    fixes = reconcile_positions({SYM: LONG}, {SYM: VENUE_LONG}, [take], [venue(take)])
    assert fixes == [Protect(SYM, (OrderRole.STOP_LOSS,))]


def test_sibling_of_a_filled_stop_is_cancelled() -> None:
    """The take-profit left resting after the stop closed the position is cancelled."""
    take = order(OrderRole.TAKE_PROFIT)
    fixes = reconcile_positions({SYM: LONG}, {}, [take], [venue(take)])
    assert fixes == [CancelOrphan(venue(take)), DropPosition(SYM, LONG)]
