"""The one Broker interface (ARCHITECTURE: orders), shared by the paper and the live broker.

The daemon and the contract tests speak only this protocol. Both brokers derive deterministic
client order ids, write each order's intent to the store before "sending" it, place take-profit
and stop-loss from the *actual* fill price right after the entry fills, and record fills, trades,
funding and every unusual event in the same SQLite store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from tbotd.domain.actions import ExitPlan
from tbotd.domain.enums import Side
from tbotd.domain.errors import BelowMinimumError, InvalidDataError
from tbotd.domain.market import Candle, MarketSpec
from tbotd.domain.positions import Position
from tbotd.domain.values import round_down
from tbotd.ops.logs import get_logger
from tbotd.store.wallet import Trade
from tbotd.strategy.exits import ExitParams, Protection, fixed_exits, protective_prices
from tbotd.strategy.sizing import quote_notional

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Equity:
    """Wallet balance plus unrealised PnL, in the share-class (settlement) currency."""

    currency: str
    balance: Decimal
    unrealized_pnl: Decimal

    @property
    def total(self) -> Decimal:
        """What the account is worth now."""
        return self.balance + self.unrealized_pnl


@dataclass(frozen=True, slots=True)
class PriceRef:
    """A price to fill a market order at, and the instant it belongs to."""

    price: Decimal
    time: datetime


PriceSource = Callable[[str], PriceRef]
FundingSource = Callable[[str, datetime], Awaitable[Decimal | None]]


class Broker(Protocol):
    """Open, close and protect perp positions; report positions and equity; reconcile."""

    currency: str

    async def start(self) -> None:
        """Account set-up and recovery: load state, reconcile with the venue, protect positions."""
        ...

    async def stop(self) -> None:
        """Release connections; protective orders stay where they are."""
        ...

    def market(self, symbol: str) -> MarketSpec:
        """The trading rules of ``symbol`` (tick, step, minimums, contract size)."""
        ...

    async def open_position(
        self, symbol: str, side: Side, qty: Decimal, exits: ExitPlan, candle_time: datetime
    ) -> Position:
        """Enter at market, then place stop-loss and take-profit from the actual fill price."""
        ...

    async def close_position(self, symbol: str, reason: str, candle_time: datetime) -> Trade | None:
        """Close the whole position at market and cancel its protection; None if flat."""
        ...

    async def move_protection(
        self, symbol: str, stop_loss: Decimal, take_profit: Decimal, candle_time: datetime
    ) -> Position:
        """Replace TP/SL: the new orders are placed before the old ones are cancelled."""
        ...

    async def positions(self) -> dict[str, Position]:
        """Open positions by symbol."""
        ...

    async def equity(self) -> Equity:
        """Balance and unrealised PnL."""
        ...

    async def reconcile(self) -> int:
        """Compare with the venue and fix differences (exchange wins); returns how many."""
        ...

    async def on_closed_candle(self, candle: Candle) -> None:
        """A candle closed: the paper broker settles exits and funding; live syncs state."""
        ...


def order_qty(market: MarketSpec, qty: Decimal, price: Decimal) -> Decimal:
    """``qty`` rounded down to the market's step; refused (BelowMinimumError) under its minimums."""
    rounded = round_down(qty, market.step_size)
    if rounded < market.min_qty or rounded <= 0:
        raise BelowMinimumError(
            f"{market.symbol}: {qty} rounds down to {rounded}, below the minimum {market.min_qty}"
        )
    value = quote_notional(market, rounded, price)
    if value < market.min_notional:
        raise BelowMinimumError(
            f"{market.symbol}: notional {value} is below the minimum {market.min_notional}"
        )
    return rounded


def protection_after_fill(
    plan: ExitPlan, side: Side, fill_price: Decimal, market: MarketSpec, params: ExitParams
) -> Protection:
    """Bounded TP/SL from the fill price; if the plan's prices are unusable, the fixed ones.

    A position must never be left unprotected because a model's absolute exits ended up on the
    wrong side of a slipped fill: the configured percentages always give valid prices.
    """
    try:
        return bounded_prices(plan, side, fill_price, market, params)
    except InvalidDataError as e:
        log.warning("exits replaced by fixed percentages", symbol=market.symbol, reason=str(e))
        return bounded_prices(fixed_exits(params), side, fill_price, market, params)


def bounded_prices(
    plan: ExitPlan,
    side: Side,
    reference: Decimal,
    market: MarketSpec,
    params: ExitParams,
    entry: Decimal | None = None,
) -> Protection:
    """:func:`~tbotd.strategy.exits.protective_prices` with the market's tick and type."""
    return protective_prices(
        plan, side, reference, market.tick_size, params.bounds, market.market_type, entry
    )


class EventRecorder(Protocol):
    """Where the brokers' entry and trade events go (:class:`tbotd.store.Store`)."""

    def record_event(
        self, at: datetime, kind: str, message: str, symbol: str | None = None, **data: Any
    ) -> None:
        """Append an audit event."""
        ...


def record_entry(
    store: EventRecorder, at: datetime, position: Position, candle_time: datetime
) -> None:
    """The ``entry`` event (both brokers): the notifier's "entry filled"."""
    message = f"{position.side} {position.qty} at {position.entry_price}"
    facts = entry_facts(position, candle_time)
    log.info("entry filled", symbol=position.symbol, **facts)  # every mode: one line per entry
    store.record_event(at, "entry", message, position.symbol, **facts)


def record_trade(store: EventRecorder, at: datetime, trade: Trade) -> None:
    """The ``trade`` event (both brokers): the notifier's stop, target, liquidation or close."""
    message = f"position closed: {trade.exit_reason}"
    facts = trade_facts(trade)
    log.info("position closed", symbol=trade.symbol, **facts)  # stop, target, decision: a line
    store.record_event(at, "trade", message, trade.symbol, **facts)


def entry_facts(position: Position, candle_time: datetime) -> dict[str, str]:
    """The ``entry`` event's data (both brokers): what filled, its protection, its candle."""
    return {
        "side": str(position.side),
        "qty": str(position.qty),
        "price": str(position.entry_price),
        "stop": "" if position.stop_loss is None else str(position.stop_loss),
        "target": "" if position.take_profit is None else str(position.take_profit),
        "candle_time": candle_time.isoformat(),
    }


def trade_facts(trade: Trade) -> dict[str, str]:
    """The ``trade`` event's data (both brokers): why it closed, where, and what it made."""
    return {
        "reason": trade.exit_reason,
        "side": str(trade.side),
        "qty": str(trade.qty),
        "entry_price": str(trade.entry_price),
        "exit_price": str(trade.exit_price),
        "pnl": str(trade.pnl),
        "fees": str(trade.fees),
        "funding": str(trade.funding),
        "net": str(trade.net),
        "currency": trade.currency,
    }
