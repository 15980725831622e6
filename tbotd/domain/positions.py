"""Positions, funding payments and the contract arithmetic shared by paper, sim and backtest.

Linear contracts (USDT-margined) settle PnL in the quote currency; inverse contracts (coin-margined)
settle in the base coin, with PnL = contracts × contract size × (1/entry − 1/exit) for a long.
Keeping the formulas here means the paper broker, the local exchange and the backtest can never
disagree about what a trade earned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tbotd.domain.enums import MarketType, Side
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import require_utc, to_decimal


def notional(
    market_type: MarketType, qty: Decimal, contract_size: Decimal, price: Decimal
) -> Decimal:
    """Position value in the settlement currency (USDT for linear, the coin for inverse)."""
    if market_type is MarketType.LINEAR:
        return qty * contract_size * price
    return qty * contract_size / price


def pnl(
    market_type: MarketType,
    side: Side,
    qty: Decimal,
    contract_size: Decimal,
    entry_price: Decimal,
    exit_price: Decimal,
) -> Decimal:
    """Profit of ``qty`` contracts from entry to exit, in the settlement currency."""
    if market_type is MarketType.LINEAR:
        move = (exit_price - entry_price) * qty * contract_size
    else:
        move = (1 / entry_price - 1 / exit_price) * qty * contract_size
    return move * side.sign


def contracts_for(
    market_type: MarketType, value: Decimal, contract_size: Decimal, price: Decimal
) -> Decimal:
    """How many contracts are worth ``value`` (settlement currency) at ``price``, unrounded."""
    if market_type is MarketType.LINEAR:
        return value / (contract_size * price)
    return value * price / contract_size


MAINTENANCE_MARGIN_RATE = Decimal("0.004")  # Binance's first bracket for BTC; paper's default


def liquidation_price(
    market_type: MarketType,
    side: Side,
    size: Decimal,
    entry: Decimal,
    margin: Decimal,
    mmr: Decimal = MAINTENANCE_MARGIN_RATE,
) -> Decimal | None:
    """Where losses eat an isolated ``margin`` down to maintenance; None when it cannot happen.

    ``size`` is contracts × contract size (base currency for linear, quote for inverse).
    """
    if market_type is MarketType.LINEAR:
        if side is Side.LONG:
            price = (entry * size - margin) / (size * (1 - mmr))
        else:
            price = (entry * size + margin) / (size * (1 + mmr))
    elif side is Side.LONG:
        price = size * (1 + mmr) / (margin + size / entry)
    else:
        denominator = size / entry - margin
        if denominator <= 0:
            return None
        price = size * (1 - mmr) / denominator
    return price if price > 0 else None


def liquidation_distance(
    market_type: MarketType, side: Side, leverage: Decimal, mmr: Decimal = MAINTENANCE_MARGIN_RATE
) -> Decimal | None:
    """How far (a fraction of the entry) a fresh isolated position at ``leverage`` may move
    against it before it is liquidated; None when it never is (a 1× inverse short)."""
    entry = size = Decimal(1)
    margin = notional(market_type, size, Decimal(1), entry) / leverage
    price = liquidation_price(market_type, side, size, entry, margin, mmr)
    return None if price is None else abs(price - entry) / entry


class HeldPosition(Protocol):
    """What the position rules read of an open position: a broker's :class:`Position`, or the
    paper fill model's own (the backtest hands its position to the rules as it is, instead of
    building a Position per trade)."""

    @property
    def side(self) -> Side:
        """Long or short."""

    @property
    def qty(self) -> Decimal:
        """Contracts, positive."""

    @property
    def entry_price(self) -> Decimal:
        """The average entry price."""

    @property
    def stop_loss(self) -> Decimal | None:
        """The resting stop-loss, if any."""

    @property
    def take_profit(self) -> Decimal | None:
        """The resting take-profit, if any."""


@dataclass(frozen=True, slots=True)
class Position:
    """An open position as tbotd records it. ``qty`` is in contracts and always positive."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    opened_at: datetime
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    leverage: Decimal = Decimal(1)
    liquidation_price: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("qty", "entry_price", "leverage"):
            value = _decimal_field(self, name)
            if value <= 0:
                raise InvalidDataError(f"position {self.symbol}: {name} {value} must be positive")
        for name in ("stop_loss", "take_profit", "liquidation_price"):
            if getattr(self, name) is not None:
                _decimal_field(self, name)
        where = f"position {self.symbol} opened_at"
        object.__setattr__(self, "opened_at", require_utc(self.opened_at, where))

    @property
    def is_protected(self) -> bool:
        """A position is protected when its stop-loss is known to be on the exchange."""
        return self.stop_loss is not None


def _decimal_field(position: Position, name: str) -> Decimal:
    """The field as a finite Decimal, parsed in place if given as another number (one that is a
    finite Decimal already, as every broker gives it, is taken as it is: a busy backtest builds
    a position per trade)."""
    value = getattr(position, name)
    if type(value) is not Decimal or not value.is_finite():
        value = to_decimal(value, f"position {position.symbol} {name}")
        object.__setattr__(position, name, value)
    return value


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """Funding settled on a position. ``amount`` is signed: negative means the position paid.

    ``rate``, ``position_qty`` and ``mark_price`` are None when the venue reports only the
    amount (Binance's income history); paper trading knows all of them.
    """

    symbol: str
    time: datetime
    rate: Decimal | None
    position_qty: Decimal | None
    mark_price: Decimal | None
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        where = f"funding {self.symbol}"
        for name in ("rate", "position_qty", "mark_price", "amount"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_decimal(value, f"{where} {name}"))
        if self.mark_price is not None and self.mark_price <= 0:
            raise InvalidDataError(f"{where}: mark_price {self.mark_price} must be positive")
        object.__setattr__(self, "time", require_utc(self.time, f"{where} time"))


def funding_amount(
    market_type: MarketType,
    side: Side,
    qty: Decimal,
    contract_size: Decimal,
    mark_price: Decimal,
    rate: Decimal,
) -> Decimal:
    """Funding a position receives (+) or pays (−): longs pay shorts when the rate is positive."""
    return -side.sign * rate * notional(market_type, qty, contract_size, mark_price)


FUNDING_HOURS = frozenset({0, 8, 16})


def is_funding_time(moment: datetime) -> bool:
    """Binance perps settle funding at 00:00, 08:00 and 16:00 UTC."""
    return moment.hour in FUNDING_HOURS and moment.minute == 0 and moment.second == 0
