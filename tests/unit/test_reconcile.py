"""Reconciliation turns differences between our records and the venue into the right fixes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from tbotd.domain import Order, OrderRole, OrderSide, OrderState, OrderType, Position, Side
from tbotd.domain import client_order_id as cid
from tbotd.domain.orders import Fill, owner_tag
from tbotd.execution.protection import Problem, StopBounds
from tbotd.execution.reconcile import (
    AdoptPosition,
    Books,
    CancelOrphan,
    CancelStale,
    DropPosition,
    ImportOrder,
    Protect,
    ReportUnknown,
    ResolveOrder,
    Suspend,
    VenueOrder,
    VenuePosition,
    closed_before,
    outside_round_trip,
    reconcile_orders,
    reconcile_positions,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYM = "BTC/USDT:USDT"
KEY = "i|owner"
BOUNDS = {SYM: StopBounds(Decimal("0.003"), Decimal("0.05"), Decimal("0.1"))}
D = Decimal
NOW_MS = 1_704_070_800_000  # an hour after T0: orders placed at T0 have rested long


def order(role: OrderRole, state: OrderState = OrderState.OPEN, key: str = KEY) -> Order:
    kind = {
        OrderRole.ENTRY: OrderType.MARKET,
        OrderRole.EXIT: OrderType.MARKET,
        OrderRole.STOP_LOSS: OrderType.STOP_MARKET,
        OrderRole.TAKE_PROFIT: OrderType.TAKE_PROFIT_MARKET,
    }[role]
    trigger = {OrderRole.STOP_LOSS: D(99), OrderRole.TAKE_PROFIT: D(102)}.get(role)
    return Order(
        cid(key, SYM, T0, role),
        SYM,
        OrderSide.BUY if role is OrderRole.ENTRY else OrderSide.SELL,
        kind,
        role,
        D(1),
        T0,
        state=state,
        trigger_price=trigger,
    )


def venue(o: Order, qty: str = "1") -> VenueOrder:
    return VenueOrder(
        o.symbol,
        o.client_id,
        "x" + o.client_id[:5],
        o.type.is_conditional,
        o.role is not OrderRole.ENTRY,
        o.side,
        o.type,
        D(qty),
        o.trigger_price,
        created_ms=int(T0.timestamp() * 1000),
    )


LONG = Position(SYM, Side.LONG, D(1), D(100), T0, D(99), D(102))
VENUE_LONG = VenuePosition(SYM, Side.LONG, D(1), D(100))
STOP, TAKE = order(OrderRole.STOP_LOSS), order(OrderRole.TAKE_PROFIT)


def books(
    positions: dict[str, Position] | None = None,
    known: Sequence[Order] = (),
    traded: bool = True,
) -> Books:
    return Books(
        positions or {},
        frozenset(o.client_id for o in known),
        owner_tag(KEY),
        frozenset({SYM}) if traded else frozenset(),
        NOW_MS,
    )


def fixes(b: Books, positions: dict[str, VenuePosition], open_: list[VenueOrder]) -> list[object]:
    return list(reconcile_positions(b, positions, open_, BOUNDS))


def test_in_sync_needs_nothing() -> None:
    """Same position, stop and target resting: no fixes."""
    open_ = [venue(STOP), venue(TAKE)]
    assert reconcile_orders([STOP, TAKE], open_) == []
    assert fixes(books({SYM: LONG}, [STOP, TAKE]), {SYM: VENUE_LONG}, open_) == []


def test_order_we_sent_but_venue_does_not_list_is_resolved_by_client_id() -> None:
    """A pending/unknown entry is looked up by client id before anything else."""
    entry = order(OrderRole.ENTRY, OrderState.UNKNOWN)
    assert reconcile_orders([entry], []) == [ResolveOrder(entry.client_id, SYM, False)]


def test_order_still_pending_here_but_open_on_the_venue_is_resolved() -> None:
    """A stop sent just before a crash rests on the venue but is pending here: look it up."""
    stop = order(OrderRole.STOP_LOSS, OrderState.PENDING)
    assert reconcile_orders([stop], [venue(stop)]) == [ResolveOrder(stop.client_id, SYM, True)]


def test_our_order_the_database_never_recorded_is_imported() -> None:
    """A stop placed while the database could not be written carries our tag: imported."""
    assert reconcile_orders([], [venue(STOP)], owner_tag(KEY)) == [ImportOrder(venue(STOP))]
    assert reconcile_orders([], [venue(STOP)], "zzz") == []


def test_venue_wins_on_positions() -> None:
    """A venue position we lack (or hold differently) is adopted; ours without it is dropped."""
    found = fixes(books(), {SYM: VENUE_LONG}, [])
    assert found[0] == AdoptPosition(VENUE_LONG, None)
    assert isinstance(found[1], Protect)
    short = VenuePosition(SYM, Side.SHORT, D(2), D(101))
    assert fixes(books({SYM: LONG}), {SYM: short}, [])[0] == AdoptPosition(short, LONG)
    assert fixes(books({SYM: LONG}), {}, []) == [DropPosition(SYM, LONG)]


def test_a_position_with_only_its_target_gets_a_stop() -> None:
    """A position with only its take-profit resting is not protected."""
    [fix] = fixes(books({SYM: LONG}, [TAKE]), {SYM: VENUE_LONG}, [venue(TAKE)])
    assert isinstance(fix, Protect)
    assert fix.stop_needed
    assert not fix.take_profit_missing
    assert fix.verdict.problems == (Problem.NO_STOP,)


def test_a_size_increased_by_hand_is_adopted_and_its_half_stop_replaced() -> None:
    """The venue holds 2 where we hold 1: adopted, and the stop covering 1 is not protection."""
    bigger = VenuePosition(SYM, Side.LONG, D(2), D(100))
    adopt, protect = fixes(
        books({SYM: LONG}, [STOP, TAKE]), {SYM: bigger}, [venue(STOP), venue(TAKE)]
    )
    assert adopt == AdoptPosition(bigger, LONG)
    assert isinstance(protect, Protect)
    assert protect.verdict.problems == (Problem.PARTIAL,)
    assert protect.verdict.covered == D(1)


def test_a_position_flipped_by_hand_loses_the_old_sides_orders() -> None:
    """An opposite position opened by hand: our sell stop and target would act on nothing good
    (they would *add* to a short): cancelled, and the short protected by a buy stop."""
    short = VenuePosition(SYM, Side.SHORT, D(1), D(100))
    found = fixes(books({SYM: LONG}, [STOP, TAKE]), {SYM: short}, [venue(STOP), venue(TAKE)])
    assert found[0] == AdoptPosition(short, LONG)
    assert CancelOrphan(venue(STOP)) in found
    assert CancelOrphan(venue(TAKE)) in found
    [protect] = [f for f in found if isinstance(f, Protect)]
    assert protect.verdict.problems == (Problem.NO_STOP,)


def test_sibling_of_a_filled_stop_is_cancelled() -> None:
    """The take-profit left resting after the stop closed the position is cancelled."""
    assert fixes(books({SYM: LONG}, [TAKE]), {}, [venue(TAKE)]) == [
        DropPosition(SYM, LONG),
        CancelOrphan(venue(TAKE)),
    ]


def test_another_tbotds_orders_suspend_the_symbol_and_its_position_is_not_adopted() -> None:
    """A second daemon's stop (another owner tag) on a position: suspend, do not take a share."""
    theirs = order(OrderRole.STOP_LOSS, key="other|db")
    found = fixes(books(), {SYM: VENUE_LONG}, [venue(theirs)])
    assert found == [Suspend(SYM, (venue(theirs),))]


def test_a_persons_opening_order_suspends_but_their_stop_is_only_reported() -> None:
    """A manual limit entry may open a position: suspend. A manual reduce-only stop: reported."""
    limit = VenueOrder(SYM, "web_123", "9", False, False, OrderSide.BUY, OrderType.LIMIT, D(1))
    stop = VenueOrder(
        SYM, "web_456", "8", True, True, OrderSide.SELL, OrderType.STOP_MARKET, D(1), D(99)
    )
    found = fixes(
        books({SYM: LONG}, [STOP, TAKE]), {SYM: VENUE_LONG}, [venue(STOP), venue(TAKE), limit, stop]
    )
    assert found == [Suspend(SYM, (limit,)), ReportUnknown(stop)]


def test_an_empty_database_cancels_leftover_reduce_only_orders_nothing_needs() -> None:
    """After a lost database: the old stop and target on a flat symbol are cancelled, not left
    to close a later position; a manual order that could open one suspends instead."""
    old_stop, old_take = (
        order(OrderRole.STOP_LOSS, key="lost|db"),
        order(OrderRole.TAKE_PROFIT, key="lost|db"),
    )
    found = fixes(books(traded=False), {}, [venue(old_stop), venue(old_take)])
    assert found == [CancelStale(venue(old_stop)), CancelStale(venue(old_take))]
    fresh = replace(venue(old_stop), created_ms=NOW_MS - 1000)  # another daemon's new stop
    assert fixes(books(traded=False), {}, [fresh]) == [Suspend(SYM, (fresh,))]
    assert fixes(books(traded=True), {}, [venue(old_stop)]) == [Suspend(SYM, (venue(old_stop),))]


def fill(n: int, side: OrderSide, qty: str, price: str, pnl: str = "0") -> Fill:
    return Fill(
        str(n), f"venue:{n}", SYM, side, D(qty), D(price), D("0.5"), "USDT",
        T0.replace(minute=n), D(pnl),
    )  # fmt: skip


def test_outside_fills_that_add_up_to_nothing_are_one_round_trip() -> None:
    """A short opened in two fills and closed in one: side, size, prices, PnL and fees."""
    trip = outside_round_trip(
        [
            fill(3, OrderSide.BUY, "0.3", "90", pnl="15"),
            fill(1, OrderSide.SELL, "0.1", "100"),
            fill(2, OrderSide.SELL, "0.2", "106"),
        ]
    )
    assert trip is not None
    assert [f.trade_id for f in trip.fills] == ["1", "2", "3"]  # time order
    assert (trip.side, trip.qty) == (Side.SHORT, D("0.3"))
    assert (trip.entry_price, trip.exit_price) == (D(104), D(90))
    assert (trip.pnl, trip.fees) == (D(15), D("1.5"))


def test_outside_fills_that_change_a_position_are_not_a_round_trip() -> None:
    """Fills that leave a position (or none at all) are left to adopting or dropping it."""
    assert outside_round_trip([fill(1, OrderSide.BUY, "0.1", "100")]) is None
    assert outside_round_trip([]) is None


def test_the_round_trips_before_a_position_are_the_longest_run_that_nets_to_zero() -> None:
    """Bought, sold, bought, sold, bought: the first four fills; nothing when none nets out."""
    fills = [
        fill(5, OrderSide.BUY, "0.1", "100"),
        fill(1, OrderSide.BUY, "0.1", "100"),
        fill(2, OrderSide.SELL, "0.1", "101"),
        fill(3, OrderSide.BUY, "0.2", "100"),
        fill(4, OrderSide.SELL, "0.2", "99"),
    ]
    assert [f.trade_id for f in closed_before(fills)] == ["1", "2", "3", "4"]
    assert closed_before([fill(1, OrderSide.SELL, "0.1", "100")]) == ()
