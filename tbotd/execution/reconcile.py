"""Reconciliation (ARCHITECTURE: orders; README: Protection): pure functions comparing what we
recorded with the venue.

Run at start (startup is recovery), at every candle close on the venue's snapshot, periodically
and after every reconnect. The exchange wins on positions; every difference becomes a fix that
the broker applies and the store records as an event. Orders are told apart by their client ids:
**ours** (in our database, or carrying our owner tag — an order we placed while the database
could not be written), **another tbotd's** (the tbotd layout with another owner tag: a second
daemon on this account, or the orders of a database that was lost), or **manual** (anything else:
a person, another program). The rules:

* a live local order the venue does not list as open → resolve it by client id; one still
  pending or unknown here that the venue lists as open → resolve it too (the answer was lost);
  an order of ours the venue lists but we never recorded → import it;
* another tbotd's orders, or manual orders that can open a position, on one of our symbols →
  **suspend** that symbol: no new entries there, and its position is not adopted (we would be
  trading a share of someone else's) — but it is still protected if nothing protects it;
* a venue position we do not know, or know differently (a hand change) → adopt the venue's;
* a local position the venue does not have → it was closed while we were away: drop it;
* a position that is not protected by the strict definition (:mod:`.protection`) → protect it:
  a stop for the whole quantity, inside the bounds and nearer than the liquidation price, then
  our superseded protective orders cancelled; a missing take-profit is placed too;
* our protective orders resting for a position that is gone, or on its wrong side (the position
  flipped by hand) → cancel them;
* on a symbol our database has never traded (an empty or lost database), reduce-only orders
  that no open position needs and that have rested for a while (not the fresh stop of another
  daemon's entry, caught between two snapshots) are cancelled, not left to act on a later
  position;
* any other manual order → reported once, never touched;
* fills on the account that none of ours explains and that add up to nothing (a person's round
  trip between two looks, while our books are flat there) → recorded and booked as an external
  trade, so the books keep equal to the account's balance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tbotd.domain.enums import OrderSide, Side
from tbotd.domain.orders import Fill, Order, OrderState, id_owner
from tbotd.domain.positions import Position
from tbotd.execution.protection import StopBounds, VenueOrder, VenuePosition, Verdict, verdict

__all__ = [
    "AdoptPosition",
    "Books",
    "CancelOrphan",
    "CancelStale",
    "DropPosition",
    "Fix",
    "ImportOrder",
    "Ownership",
    "Protect",
    "ReportUnknown",
    "ResolveOrder",
    "RoundTrip",
    "Suspend",
    "VenueOrder",
    "VenuePosition",
    "classify",
    "outside_round_trip",
    "reconcile_orders",
    "reconcile_positions",
]


class Ownership(StrEnum):
    """Whose order a venue order is."""

    OURS = "ours"
    OTHER_TBOTD = "other_tbotd"
    MANUAL = "manual"


def classify(order: VenueOrder, known: Callable[[str], bool], tag: str) -> Ownership:
    """Ours (recorded, or our owner tag), another tbotd's, or manual."""
    owner = id_owner(order.client_id)
    if known(order.client_id) or owner == tag:
        return Ownership.OURS
    return Ownership.MANUAL if owner is None else Ownership.OTHER_TBOTD


@dataclass(frozen=True, slots=True)
class ResolveOrder:
    """A live local order missing from the venue's open orders: look it up by client id."""

    client_id: str
    symbol: str
    conditional: bool


@dataclass(frozen=True, slots=True)
class ImportOrder:
    """An open order of ours (our owner tag) that the database never recorded."""

    order: VenueOrder


@dataclass(frozen=True, slots=True)
class AdoptPosition:
    """The venue's position replaces ours (the venue wins)."""

    position: VenuePosition
    ours: Position | None


@dataclass(frozen=True, slots=True)
class DropPosition:
    """We record a position the venue no longer has (closed while we were away)."""

    symbol: str
    ours: Position


@dataclass(frozen=True, slots=True)
class Protect:
    """A venue position lacks a conforming stop for its whole quantity, or its take-profit."""

    position: VenuePosition
    verdict: Verdict
    take_profit_missing: bool

    @property
    def symbol(self) -> str:
        """The position's symbol."""
        return self.position.symbol

    @property
    def stop_needed(self) -> bool:
        """The stop itself must be (re)placed, not only the take-profit."""
        return not self.verdict.protected


@dataclass(frozen=True, slots=True)
class CancelOrphan:
    """One of our protective orders rests for a position that is gone (or on its wrong side)."""

    order: VenueOrder


@dataclass(frozen=True, slots=True)
class CancelStale:
    """A reduce-only order nothing of ours needs, on a symbol our database never traded."""

    order: VenueOrder


@dataclass(frozen=True, slots=True)
class Suspend:
    """Another tbotd (or a person's opening orders) works this symbol: take no new risk here."""

    symbol: str
    orders: tuple[VenueOrder, ...]


@dataclass(frozen=True, slots=True)
class ReportUnknown:
    """A manual order that cannot open a position; reported, never touched."""

    order: VenueOrder


Fix = (
    ResolveOrder
    | ImportOrder
    | AdoptPosition
    | DropPosition
    | Protect
    | CancelOrphan
    | CancelStale
    | Suspend
    | ReportUnknown
)
_UNANSWERED = (OrderState.PENDING, OrderState.UNKNOWN)
STALE_AFTER_MS = 10 * 60_000  # a leftover has rested this long; a live daemon's fresh stop has not


def reconcile_orders(
    local_live: Iterable[Order], venue_open: Iterable[VenueOrder], tag: str = ""
) -> list[ResolveOrder | ImportOrder]:
    """Live local orders missing on the venue (or unanswered), and our unrecorded venue orders."""
    venue_by_id = {o.client_id: o for o in venue_open}
    local = list(local_live)
    fixes: list[ResolveOrder | ImportOrder] = [
        ResolveOrder(o.client_id, o.symbol, o.type.is_conditional)
        for o in local
        if o.client_id not in venue_by_id or o.state in _UNANSWERED
    ]
    known = {o.client_id for o in local}
    fixes += [
        ImportOrder(v)
        for cid, v in sorted(venue_by_id.items())
        if cid not in known and tag and id_owner(cid) == tag
    ]
    return fixes


@dataclass(frozen=True, slots=True)
class Books:
    """What our database says, as the position reconciliation needs it."""

    positions: Mapping[str, Position]
    known: frozenset[str]  # the venue's open client ids that our database recorded
    tag: str  # our owner tag
    traded: frozenset[str]  # symbols our database has ever sent an order for
    now_ms: int = 0  # the venue's time now (how long orders have rested)

    def owns(self, client_id: str) -> bool:
        """Recorded by us."""
        return client_id in self.known


def reconcile_positions(
    books: Books,
    venue: Mapping[str, VenuePosition],
    venue_open: Iterable[VenueOrder],
    bounds: Mapping[str, StopBounds],
) -> list[Fix]:
    """Positions (the venue wins) and their protection, after orders have been resolved."""
    by_symbol: dict[str, list[VenueOrder]] = {}
    for order in venue_open:
        by_symbol.setdefault(order.symbol, []).append(order)
    fixes: list[Fix] = []
    for symbol in sorted(set(bounds)):
        fixes += _symbol_fixes(
            books, symbol, venue.get(symbol), by_symbol.get(symbol, []), bounds[symbol]
        )
    return fixes


def _symbol_fixes(
    books: Books,
    symbol: str,
    theirs: VenuePosition | None,
    orders: list[VenueOrder],
    bounds: StopBounds,
) -> list[Fix]:
    ours = books.positions.get(symbol)
    owner = {o.client_id: classify(o, books.owns, books.tag) for o in orders}
    mine, others, manual = (  # in Ownership's order
        [o for o in orders if owner[o.client_id] is kind] for kind in Ownership
    )
    closing = None if theirs is None else theirs.side.exit_order_side
    stale = [
        o
        for o in manual + others
        if symbol not in books.traded
        and o.is_protective
        and o.side is not closing
        and books.now_ms - (o.created_ms or books.now_ms) >= STALE_AFTER_MS
    ]
    opening = [o for o in manual if not o.is_protective]  # a person's orders that can open
    foreign = tuple(o for o in others + opening if o not in stale)
    fixes: list[Fix] = [Suspend(symbol, foreign)] if foreign else []
    fixes += [CancelStale(o) for o in stale]
    unknown = [ReportUnknown(o) for o in manual if o not in stale and o not in opening]
    if theirs is None:
        if ours is not None:
            fixes.append(DropPosition(symbol, ours))
        fixes += [CancelOrphan(o) for o in mine if o.is_protective]
        return fixes + unknown
    if not foreign and (ours is None or (ours.side, ours.qty) != (theirs.side, theirs.qty)):
        fixes.append(AdoptPosition(theirs, ours))
    judged = verdict(theirs, orders, bounds)
    fixes += [CancelOrphan(o) for o in judged.wrong_side if o in mine]
    take_missing = not foreign and not any(
        o.is_protective and not o.is_stop and o.side is closing for o in mine
    )
    if not judged.protected or take_missing:
        fixes.append(Protect(theirs, judged, take_missing))
    return fixes + unknown


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """Fills nobody here placed that add up to nothing: a person opened and closed (or added
    and took back) between two looks at the account, so no position differs, yet the account's
    balance moved by their realised PnL and fees."""

    fills: tuple[Fill, ...]
    side: Side
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    fees: Decimal


def fill_order(fill: Fill) -> tuple[object, ...]:
    """Sort key of fills: by time, then by trade id as a number where it is one."""
    tid = fill.trade_id
    return (fill.time, int(tid), tid) if tid.isdigit() else (fill.time, -1, tid)


def closed_before(fills: Iterable[Fill]) -> tuple[Fill, ...]:
    """The longest run of ``fills`` from the oldest on that nets to zero: round trips that were
    over before the position the rest of them make (bought, sold, bought again)."""
    ordered = sorted(fills, key=fill_order)
    net, end = Decimal(0), 0
    for i, fill in enumerate(ordered, 1):
        net += _signed(fill)
        if net == 0:
            end = i
    return tuple(ordered[:end])


def outside_round_trip(fills: Iterable[Fill]) -> RoundTrip | None:
    """The round trip that ``fills`` (time order) make, or None when they do not net to zero
    (a position change: adopting or dropping the position records those) or there are none."""
    fills = tuple(sorted(fills, key=fill_order))
    if not fills or sum(_signed(f) for f in fills) != 0:
        return None
    side = Side.LONG if fills[0].side is OrderSide.BUY else Side.SHORT
    opening = [f for f in fills if f.side is not side.exit_order_side]
    closing = [f for f in fills if f.side is side.exit_order_side]
    qty = sum((f.qty for f in opening), Decimal(0))
    return RoundTrip(
        fills,
        side,
        qty,
        _average_price(opening),
        _average_price(closing),
        sum((f.realized_pnl for f in fills), Decimal(0)),
        sum((f.fee for f in fills), Decimal(0)),
    )


def _signed(fill: Fill) -> Decimal:
    return fill.qty if fill.side is OrderSide.BUY else -fill.qty


def _average_price(fills: list[Fill]) -> Decimal:
    qty = sum((f.qty for f in fills), Decimal(0))
    return sum((f.qty * f.price for f in fills), Decimal(0)) / qty
