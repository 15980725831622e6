"""Reconciliation (DESIGN §4): pure functions comparing what we recorded with what the venue says.

Run at start (startup is recovery), periodically and after every reconnect. The exchange wins on
positions; every difference becomes a :class:`Fix` that the broker applies and the store records
as an event. The rules:

* a live local order (pending, unknown, open) the venue does not list as open → resolve it by
  client id (it filled, was cancelled, or never arrived); one still pending or unknown here that
  the venue lists as open → resolve it too (the answer was lost: it is open, and must be
  recorded as open, or a stop that fires later would go unnoticed);
* a venue position we do not know, or know differently → adopt the venue's;
* a local position the venue does not have → it was closed while we were away: drop it;
* a position without its stop-loss or take-profit resting on the venue → protect it;
* one of our protective orders resting for a position that no longer exists (the sibling of a
  stop or target that filled) → cancel it;
* an open order on the venue that we never recorded → report it (never touched blindly).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from tbotd.domain.enums import OrderRole, Side
from tbotd.domain.orders import Order, OrderState
from tbotd.domain.positions import Position


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """A non-zero position as the venue reports it."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An open order (regular or conditional) as the venue reports it."""

    symbol: str
    client_id: str
    exchange_id: str
    conditional: bool
    reduce_only: bool


@dataclass(frozen=True, slots=True)
class ResolveOrder:
    """A live local order missing from the venue's open orders: look it up by client id."""

    client_id: str
    symbol: str
    conditional: bool


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
    """An open position has no stop-loss resting on the venue: place protection now."""

    symbol: str
    missing: tuple[OrderRole, ...]


@dataclass(frozen=True, slots=True)
class CancelOrphan:
    """One of our protective orders rests for a position that is gone."""

    order: VenueOrder


@dataclass(frozen=True, slots=True)
class ReportUnknown:
    """An open venue order we never recorded; reported, never cancelled blindly."""

    order: VenueOrder


Fix = ResolveOrder | AdoptPosition | DropPosition | Protect | CancelOrphan | ReportUnknown
_PROTECTIVE = (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT)
_UNANSWERED = (OrderState.PENDING, OrderState.UNKNOWN)


def reconcile_orders(
    local_live: Iterable[Order], venue_open: Iterable[VenueOrder]
) -> list[ResolveOrder | ReportUnknown]:
    """Live local orders missing on the venue, and venue orders missing locally."""
    venue_by_id = {o.client_id: o for o in venue_open}
    local = list(local_live)
    known = {o.client_id for o in local}
    fixes: list[ResolveOrder | ReportUnknown] = [
        ResolveOrder(o.client_id, o.symbol, o.type.is_conditional)
        for o in local
        if o.client_id not in venue_by_id or o.state in _UNANSWERED
    ]
    fixes += [ReportUnknown(v) for cid, v in sorted(venue_by_id.items()) if cid not in known]
    return fixes


def reconcile_positions(
    local: Mapping[str, Position],
    venue: Mapping[str, VenuePosition],
    local_orders: Iterable[Order],
    venue_open: Iterable[VenueOrder],
) -> list[AdoptPosition | DropPosition | Protect | CancelOrphan]:
    """Positions (the venue wins) and their protection, after orders have been resolved."""
    fixes: list[AdoptPosition | DropPosition | Protect | CancelOrphan] = []
    roles = {o.client_id: o.role for o in local_orders}
    resting: dict[str, set[OrderRole]] = {}
    for order in venue_open:
        role = roles.get(order.client_id)
        if role in _PROTECTIVE and role is not None:
            if order.symbol in venue:
                resting.setdefault(order.symbol, set()).add(role)
            else:
                fixes.append(CancelOrphan(order))
    for symbol in sorted(set(local) | set(venue)):
        ours, theirs = local.get(symbol), venue.get(symbol)
        if theirs is None and ours is not None:
            fixes.append(DropPosition(symbol, ours))
            continue
        if theirs is None:
            continue
        if ours is None or (ours.side, ours.qty) != (theirs.side, theirs.qty):
            fixes.append(AdoptPosition(theirs, ours))
        missing = tuple(r for r in _PROTECTIVE if r not in resting.get(symbol, set()))
        if missing:
            fixes.append(Protect(symbol, missing))
    return fixes
