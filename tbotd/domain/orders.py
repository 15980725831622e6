"""Orders, their state machine, fills and deterministic client order ids (ARCHITECTURE: orders).

An Order is immutable: every change goes through :meth:`Order.transition`, which refuses any move
the state machine does not allow, so a bug cannot silently resurrect a cancelled stop or refill a
filled entry. The store keeps every transition as state history.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tbotd.domain.enums import OrderRole, OrderSide, OrderType
from tbotd.domain.errors import InvalidDataError, InvalidTransitionError
from tbotd.domain.values import datetime_to_ms, require_utc, to_decimal

CLIENT_ID_MAX_LEN = 32
_ALPHABET = string.digits + string.ascii_letters


class OrderState(StrEnum):
    """Life of an order, from the intent written before sending to a terminal state."""

    PENDING = "pending"  # intent recorded, request not yet answered
    UNKNOWN = "unknown"  # sent, answer lost (timeout/5xx): must be looked up by client id
    OPEN = "open"  # accepted and resting (limit, conditional)
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"  # refused by the venue, or never reached it (not found after UNKNOWN)
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """Terminal orders never change again."""
        return self in _TERMINAL

    @property
    def is_live(self) -> bool:
        """Orders that may still fill (or might exist on the venue)."""
        return not self.is_terminal


_TERMINAL = frozenset(
    {OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED}
)
_AFTER_SEND = frozenset(
    {
        OrderState.OPEN,
        OrderState.PARTIALLY_FILLED,
        OrderState.FILLED,
        OrderState.CANCELED,
        OrderState.REJECTED,
        OrderState.EXPIRED,
    }
)
ALLOWED_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.PENDING: _AFTER_SEND | {OrderState.UNKNOWN},
    OrderState.UNKNOWN: _AFTER_SEND | {OrderState.UNKNOWN},
    OrderState.OPEN: frozenset(
        {
            OrderState.OPEN,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.PARTIALLY_FILLED: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELED: frozenset(),
    OrderState.REJECTED: frozenset(),
    OrderState.EXPIRED: frozenset(),
}


OWNER_TAG_LEN = 3
_ID = re.compile(r"^tb[EXST][0-9A-Za-z]{29}$")


def client_order_id(
    instance: str, symbol: str, candle_open_time: datetime, role: OrderRole, seq: int = 0
) -> str:
    """A deterministic client order id: ≤ 32 characters of ``[A-Za-z0-9]``.

    The same (instance, symbol, candle, role, seq) always yields the same id, so a restarted
    daemon that re-derives an order it may already have sent finds it on the exchange instead of
    sending a duplicate. ``seq`` distinguishes several orders of one role for one candle (a stop
    moved twice). ``instance`` is the daemon's key: its name and its database's identity, so two
    databases never derive the same id. Layout: ``tb`` + role letter + the owner tag
    (:func:`owner_tag` of ``instance``) + 26 base-62 characters of a SHA-256 digest.
    """
    if seq < 0:
        raise InvalidDataError(f"client id seq must be >= 0, got {seq}")
    key = f"{instance}|{symbol}|{datetime_to_ms(candle_open_time)}|{role.value}|{seq}"
    digits = _base62(key, CLIENT_ID_MAX_LEN - 3 - OWNER_TAG_LEN)
    return "tb" + role.code + owner_tag(instance) + digits


def owner_tag(instance: str) -> str:
    """The three characters every client id of ``instance`` carries after its role letter."""
    return _base62(f"owner|{instance}", OWNER_TAG_LEN)


def id_owner(client_id: str) -> str | None:
    """The owner tag of a tbotd client id; None for anything else (a person, another program)."""
    if not _ID.match(client_id):
        return None
    return client_id[3 : 3 + OWNER_TAG_LEN]


def id_role(client_id: str) -> OrderRole | None:
    """The role a tbotd client id was derived for (None for anything else)."""
    if not _ID.match(client_id):
        return None
    return next(r for r in OrderRole if r.code == client_id[2])


def _base62(key: str, length: int) -> str:
    number = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")
    digits = []
    for _ in range(length):
        number, rem = divmod(number, 62)
        digits.append(_ALPHABET[rem])
    return "".join(digits)


@dataclass(frozen=True, slots=True)
class Order:
    """One order as tbotd knows it. Quantities in contracts; prices in quote currency."""

    client_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    role: OrderRole
    qty: Decimal
    created_at: datetime
    state: OrderState = OrderState.PENDING
    price: Decimal | None = None  # limit price
    trigger_price: Decimal | None = None  # stop / take-profit trigger
    reduce_only: bool = False
    close_position: bool = False
    exchange_id: str | None = None
    filled_qty: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    updated_at: datetime | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        where = f"order {self.client_id}"
        if not 1 <= len(self.client_id) <= CLIENT_ID_MAX_LEN or not self.client_id.isalnum():
            raise InvalidDataError(f"{where}: client id must be 1-32 characters of [A-Za-z0-9]")
        if not self.client_id.isascii():
            raise InvalidDataError(f"{where}: client id must be ASCII")
        object.__setattr__(self, "created_at", require_utc(self.created_at, f"{where} created_at"))
        qty = to_decimal(self.qty, f"{where} qty")
        if qty < 0 or (qty == 0 and not self.close_position):
            raise InvalidDataError(f"{where}: qty {qty} must be positive")
        object.__setattr__(self, "qty", qty)
        filled = to_decimal(self.filled_qty, f"{where} filled_qty")
        if filled < 0 or (qty > 0 and filled > qty):
            raise InvalidDataError(f"{where}: filled_qty {filled} outside [0, {qty}]")
        object.__setattr__(self, "filled_qty", filled)
        for name in ("price", "trigger_price", "avg_fill_price"):
            value = getattr(self, name)
            if value is not None:
                value = to_decimal(value, f"{where} {name}")
                if value <= 0:
                    raise InvalidDataError(f"{where}: {name} {value} must be positive")
                object.__setattr__(self, name, value)
        if self.type.is_conditional and self.trigger_price is None:
            raise InvalidDataError(f"{where}: a {self.type} order needs a trigger_price")
        if self.type is OrderType.LIMIT and self.price is None:
            raise InvalidDataError(f"{where}: a limit order needs a price")

    def transition(self, state: OrderState, at: datetime, **changes: object) -> Order:
        """The order in ``state`` with ``changes`` applied; forbidden transitions raise."""
        if state not in ALLOWED_TRANSITIONS[self.state]:
            raise InvalidTransitionError(
                f"order {self.client_id}: {self.state} -> {state} is not allowed"
            )
        return replace(self, state=state, updated_at=require_utc(at), **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order. ``fee`` is in ``fee_currency`` (the settlement currency)."""

    trade_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    time: datetime
    realized_pnl: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        where = f"fill {self.trade_id}"
        for name in ("qty", "price", "fee", "realized_pnl"):
            object.__setattr__(self, name, to_decimal(getattr(self, name), f"{where} {name}"))
        if self.qty <= 0:
            raise InvalidDataError(f"{where}: qty {self.qty} must be positive")
        if self.price <= 0:
            raise InvalidDataError(f"{where}: price {self.price} must be positive")
        object.__setattr__(self, "time", require_utc(self.time, f"{where} time"))
