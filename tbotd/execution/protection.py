"""What "protected" means (README: Protection): one pure definition over a venue snapshot.

A position is **protected** when reduce-only stop-loss orders on its closing side cover its
whole quantity (a close-position stop covers any quantity), each with a trigger between
``min_stop`` and ``max_stop`` of the entry (one tick of rounding allowed) and nearer than the
liquidation price. Anything else — no stop, a stop covering half the position after a hand
increase, a stop 67 % away, one beyond the liquidation price, the old side's stop after the
position flipped by hand — is unprotected, whoever's orders they are.

Reconciliation fixes what :func:`verdict` finds, ``/status`` and the dashboard show it, and the
reliability harnesses count by it: one definition, so "0 unprotected" means the same everywhere.
:func:`repair_stop` says where a replacement stop goes: the bounded stop nearest to the one the
position had, never farther than :data:`~tbotd.strategy.exits.LIQUIDATION_SHARE` of the way to
the venue's liquidation price; None when no such price exists (close the position instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from tbotd.domain.enums import MarginMode, OrderSide, OrderType, Side
from tbotd.domain.orders import Order
from tbotd.strategy.exits import LIQUIDATION_SHARE


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """A non-zero position as the venue reports it (leverage and margin mode when it says)."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    liquidation_price: Decimal | None = None
    leverage: int | None = None
    margin_mode: MarginMode | None = None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An open order (regular or conditional) as the venue reports it."""

    symbol: str
    client_id: str
    exchange_id: str
    conditional: bool
    reduce_only: bool
    side: OrderSide | None = None
    type: OrderType | None = None
    qty: Decimal = Decimal(0)
    trigger_price: Decimal | None = None
    close_position: bool = False
    created_ms: int | None = None  # when the venue accepted it

    @property
    def is_stop(self) -> bool:
        """A stop-market order (the kind that limits a loss)."""
        return self.type is OrderType.STOP_MARKET

    @property
    def is_protective(self) -> bool:
        """A conditional order that can only reduce a position: a stop or a target."""
        return self.conditional and (self.reduce_only or self.close_position)


def as_venue_order(order: Order) -> VenueOrder:
    """One of our recorded orders as the venue lists it (the paper broker is its own venue)."""
    return VenueOrder(
        order.symbol,
        order.client_id,
        order.exchange_id or "",
        order.type.is_conditional,
        order.reduce_only,
        order.side,
        order.type,
        order.qty,
        order.trigger_price,
        order.close_position,
    )


@dataclass(frozen=True, slots=True)
class StopBounds:
    """Where a stop may sit, as fractions of the entry (``strategy.min/max_stop_pct``)."""

    min_stop: Decimal
    max_stop: Decimal
    tick: Decimal


class Problem(StrEnum):
    """Why a position is not protected."""

    NO_STOP = "no_stop"  # no stop-loss on the closing side at all
    PARTIAL = "partial"  # the good stops cover less than the whole quantity
    TOO_FAR = "too_far"  # a stop risks more than max_stop of the entry
    TOO_NEAR = "too_near"  # a stop nearer than min_stop (or on the wrong side of the entry)
    BEYOND_LIQUIDATION = "beyond_liquidation"  # the venue would liquidate before it fires


@dataclass(frozen=True, slots=True)
class Verdict:
    """What protects one venue position, and what does not."""

    symbol: str
    covered: Decimal  # quantity covered by good stops
    problems: tuple[Problem, ...]
    good: tuple[VenueOrder, ...]  # conforming stops on the closing side
    bad: tuple[VenueOrder, ...]  # other protective orders on the closing side's stop list
    wrong_side: tuple[VenueOrder, ...]  # protective orders that would act on the other side

    @property
    def protected(self) -> bool:
        """Whole quantity covered by conforming stops."""
        return not self.problems


def verdict(position: VenuePosition, orders: Iterable[VenueOrder], bounds: StopBounds) -> Verdict:
    """Judge the protection of ``position`` by the strict definition (module docstring)."""
    closing = position.side.exit_order_side
    good: list[VenueOrder] = []
    bad: list[VenueOrder] = []
    wrong: list[VenueOrder] = []
    faults: set[Problem] = set()
    for order in orders:
        if order.symbol != position.symbol or not order.is_protective:
            continue
        if order.side is not closing:
            wrong.append(order)
        elif order.is_stop:
            fault = stop_fault(position, order.trigger_price, bounds)
            (bad if fault else good).append(order)
            if fault is not None:
                faults.add(fault)
    covered = (
        position.qty
        if any(o.close_position for o in good)
        else sum((o.qty for o in good), Decimal(0))
    )
    problems: tuple[Problem, ...] = ()
    if covered < position.qty:
        if good:
            problems = (Problem.PARTIAL, *sorted(faults))
        else:
            problems = tuple(sorted(faults)) or (Problem.NO_STOP,)
    return Verdict(
        position.symbol, min(covered, position.qty), problems, tuple(good), tuple(bad), tuple(wrong)
    )


def stop_fault(
    position: VenuePosition, trigger: Decimal | None, bounds: StopBounds
) -> Problem | None:
    """What is wrong with a stop at ``trigger`` for ``position``, or None when it conforms."""
    if trigger is None or trigger <= 0:
        return Problem.NO_STOP
    entry, sign = position.entry_price, position.side.sign
    risk = sign * (entry - trigger)
    if risk > bounds.max_stop * entry + bounds.tick:
        return Problem.TOO_FAR
    if risk < bounds.min_stop * entry - bounds.tick:
        return Problem.TOO_NEAR
    liquidation = position.liquidation_price
    if liquidation is not None and liquidation > 0 and sign * (trigger - liquidation) <= 0:
        return Problem.BEYOND_LIQUIDATION
    return None


def repair_stop(
    position: VenuePosition, wanted: Decimal | None, bounds: StopBounds
) -> Decimal | None:
    """The stop to place for ``position``: ``wanted`` (e.g. the stop it had) moved into the
    bounds and nearer than the liquidation price, on the tick; None when no price qualifies."""
    entry, sign = position.entry_price, position.side.sign
    near, far = bounds.min_stop, bounds.max_stop
    liquidation = position.liquidation_price
    if liquidation is not None and liquidation > 0:
        reach = sign * (entry - liquidation) / entry
        if reach <= 0:
            return None  # the venue liquidates at a profit: no loss-side stop comes first
        far = min(far, reach * LIQUIDATION_SHARE)
        if far < near:  # half-way is too tight: any stop before the liquidation will do
            far = reach * (1 - Decimal("0.1"))
    if far < near:
        return None
    risk = near if wanted is None else min(max(sign * (entry - wanted) / entry, near), far)
    price = entry * (1 - sign * risk)
    lowest, highest = sorted((entry * (1 - sign * near), entry * (1 - sign * far)))
    up = (lowest / bounds.tick).to_integral_value(rounding=ROUND_CEILING) * bounds.tick
    down = (highest / bounds.tick).to_integral_value(rounding=ROUND_FLOOR) * bounds.tick
    if up > down:
        return None
    rounded = (price / bounds.tick).to_integral_value(rounding=ROUND_FLOOR) * bounds.tick
    stop = min(max(rounded, up), down)
    return stop if stop_fault(position, stop, bounds) is None else None
