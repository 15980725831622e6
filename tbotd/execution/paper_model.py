"""The paper fill model (ARCHITECTURE: orders): pure functions over a frozen wallet, shared by the
paper broker and the backtest so both produce the same trades from the same candles.

Rules, in the order they apply when a candle closes:

1. exits inside the candle, pessimistic: liquidation or stop-loss (whichever level an adverse move
   reaches first), then take-profit; a level the candle opened beyond fills at the open (gap);
2. funding, when the candle closes on a funding time (00:00, 08:00, 16:00 UTC), for positions
   still open;
3. the manager's decision at the close, filled at the next price (the next candle's open) with
   slippage against the taker and the taker fee.

Margin is isolated per position (``margin = notional / leverage``); the wallet is in the
settlement currency (USDT for linear, the coin for inverse).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from tbotd.domain import positions
from tbotd.domain.enums import OrderSide, Side
from tbotd.domain.errors import InsufficientMarginError, InvalidDataError
from tbotd.domain.market import Candle, MarketSpec
from tbotd.domain.positions import Position, funding_amount, notional, pnl
from tbotd.domain.values import book

BPS = Decimal(10_000)
Levels = Callable[[Decimal], tuple[Decimal | None, Decimal | None]]  # fill price -> (SL, TP)


class ExitReason(StrEnum):
    """Why a position was closed."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    LIQUIDATION = "liquidation"
    DECISION = "decision"


@dataclass(frozen=True, slots=True)
class FillParams:
    """Costs and margin rules of the simulated venue."""

    slippage_bps: Decimal = Decimal(0)
    taker_fee_bps: Decimal = Decimal(5)
    leverage: Decimal = Decimal(1)
    maintenance_margin_rate: Decimal = positions.MAINTENANCE_MARGIN_RATE


@dataclass(frozen=True, slots=True)
class PaperPosition:
    """An open simulated position with its posted margin and protective levels."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    opened_at: datetime
    margin: Decimal
    liquidation_price: Decimal | None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    leverage: Decimal = Decimal(1)  # the one it was opened with (a reload changes new ones only)

    def as_position(self) -> Position:
        """The position as a broker reports it to the manager and the store."""
        return Position(
            self.symbol,
            self.side,
            self.qty,
            self.entry_price,
            self.opened_at,
            self.stop_loss,
            self.take_profit,
            self.leverage,
            self.liquidation_price,
        )


@dataclass(frozen=True, slots=True)
class Wallet:
    """Balance (settlement currency, fees and realised PnL included) and open positions."""

    currency: str
    balance: Decimal
    positions: dict[str, PaperPosition] = field(default_factory=dict)

    @property
    def free(self) -> Decimal:
        """Balance not posted as margin."""
        if not self.positions:  # (the same number: every entry from flat asks)
            return self.balance
        return self.balance - sum((p.margin for p in self.positions.values()), Decimal(0))

    def with_(self, balance: Decimal, positions: dict[str, PaperPosition]) -> Wallet:
        """This wallet after a change (built directly: ``dataclasses.replace`` re-reads the
        fields on every call, and the backtest changes a wallet several times per trade)."""
        return Wallet(self.currency, balance, positions)


@dataclass(frozen=True, slots=True)
class Execution:
    """One simulated fill: what traded, at what price, for what fee and realised PnL."""

    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal
    time: datetime
    reason: ExitReason | None = None  # None for entries


def taker_price(
    side: OrderSide, reference: Decimal, slippage_bps: Decimal, tick: Decimal
) -> Decimal:
    """``reference`` moved against the taker by ``slippage_bps``, rounded to the tick, adversely."""
    move = reference * slippage_bps / BPS
    if side is OrderSide.BUY:
        return _to_tick(reference + move, tick, ROUND_CEILING)
    return max(_to_tick(reference - move, tick, ROUND_FLOOR), tick)


def _to_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (value / tick).to_integral_value(rounding=rounding) * tick


def fee(market: MarketSpec, qty: Decimal, price: Decimal, fee_bps: Decimal) -> Decimal:
    """Fee in the settlement currency on the traded notional, booked to 8 decimals."""
    return book(notional(market.market_type, qty, market.contract_size, price) * fee_bps / BPS)


def liquidation_price(
    market: MarketSpec, side: Side, qty: Decimal, entry: Decimal, margin: Decimal, mmr: Decimal
) -> Decimal | None:
    """Where losses eat the margin down to maintenance; None when it cannot happen."""
    size = qty * market.contract_size
    return positions.liquidation_price(market.market_type, side, size, entry, margin, mmr)


def restored(stored: Position, market: MarketSpec, params: FillParams) -> PaperPosition:
    """A position read back from the store (a restart), its margin and liquidation price
    recomputed at the leverage it was opened with (recorded with it), not the config's now: a
    reload of the leverage changes what opens next, never an open position's liquidation."""
    margin = notional(market.market_type, stored.qty, market.contract_size, stored.entry_price)
    margin /= stored.leverage
    liq = liquidation_price(
        market, stored.side, stored.qty, stored.entry_price, margin, params.maintenance_margin_rate
    )
    return PaperPosition(
        stored.symbol,
        stored.side,
        stored.qty,
        stored.entry_price,
        stored.opened_at,
        margin,
        liq,
        stored.stop_loss,
        stored.take_profit,
        stored.leverage,
    )


def entry_price(market: MarketSpec, side: Side, reference: Decimal, params: FillParams) -> Decimal:
    """Where a market entry on ``side`` near ``reference`` fills: slipped against the taker."""
    order_side = side.entry_order_side
    return taker_price(order_side, reference, params.slippage_bps, market.tick_size)


def open_position(
    wallet: Wallet,
    market: MarketSpec,
    side: Side,
    qty: Decimal,
    reference: Decimal,
    params: FillParams,
    at: datetime,
    *,
    levels: Levels | None = None,
) -> tuple[Wallet, Execution]:
    """Fill a market entry; refuses (InsufficientMarginError) if margin plus fee is not free.

    ``levels(fill_price)``: the stop-loss and take-profit the position rests with from its fill,
    asked once the margin is known to be there (the backtest's way of saving a :func:`protect`
    per trade; None: none yet, as the paper broker opens before it protects).
    """
    if market.symbol in wallet.positions:
        raise InvalidDataError(f"{market.symbol} already has an open paper position")
    order_side = side.entry_order_side
    price = entry_price(market, side, reference, params)
    cost = fee(market, qty, price, params.taker_fee_bps)
    margin = notional(market.market_type, qty, market.contract_size, price) / params.leverage
    if margin + cost > wallet.free:
        raise InsufficientMarginError(
            f"margin {margin:.8f} + fee {cost:.8f} {wallet.currency} exceeds free balance "
            f"{wallet.free:.8f}"
        )
    liq = liquidation_price(market, side, qty, price, margin, params.maintenance_margin_rate)
    stop_loss, take_profit = (None, None) if levels is None else levels(price)
    position = PaperPosition(
        market.symbol, side, qty, price, at, margin, liq, stop_loss, take_profit, params.leverage
    )
    positions = {**wallet.positions, market.symbol: position}
    new = wallet.with_(wallet.balance - cost, positions)
    return new, Execution(market.symbol, order_side, qty, price, cost, Decimal(0), at)


def close_position(
    wallet: Wallet,
    market: MarketSpec,
    price: Decimal,
    params: FillParams,
    at: datetime,
    reason: ExitReason,
    slip: bool = True,
) -> tuple[Wallet, Execution]:
    """Close the whole position at ``price`` (slipped against us when ``slip``)."""
    position = wallet.positions[market.symbol]
    order_side = position.side.exit_order_side
    if slip:
        price = taker_price(order_side, price, params.slippage_bps, market.tick_size)
    realized = book(
        pnl(
            market.market_type,
            position.side,
            position.qty,
            market.contract_size,
            position.entry_price,
            price,
        )
    )
    realized = max(realized, -position.margin)  # isolated: never lose more than the margin
    cost = fee(market, position.qty, price, params.taker_fee_bps)
    if reason is ExitReason.LIQUIDATION:
        cost = min(cost, position.margin + realized)  # whatever margin is left pays the fee
    positions = dict(wallet.positions)
    del positions[market.symbol]
    new = wallet.with_(wallet.balance + realized - cost, positions)
    return new, Execution(
        market.symbol, order_side, position.qty, price, cost, realized, at, reason
    )


def protect(wallet: Wallet, symbol: str, stop_loss: Decimal, take_profit: Decimal) -> Wallet:
    """Attach (or move) the protective levels of an open position."""
    p = wallet.positions[symbol]
    position = PaperPosition(
        p.symbol,
        p.side,
        p.qty,
        p.entry_price,
        p.opened_at,
        p.margin,
        p.liquidation_price,
        stop_loss,
        take_profit,
        p.leverage,
    )
    return wallet.with_(wallet.balance, {**wallet.positions, symbol: position})


def candle_exit(position: PaperPosition, candle: Candle) -> tuple[ExitReason, Decimal] | None:
    """Which exit a candle triggers and at what price, adverse levels first (README: Strategies)."""
    long = position.side is Side.LONG
    adverse = [
        (level, reason)
        for level, reason in (
            (position.liquidation_price, ExitReason.LIQUIDATION),
            (position.stop_loss, ExitReason.STOP_LOSS),
        )
        if level is not None
    ]
    if adverse:
        # the level nearer the entry is reached first on an adverse move
        level, reason = (max if long else min)(adverse, key=lambda lr: lr[0])
        if (candle.low <= level) if long else (candle.high >= level):
            gapped = candle.open <= level if long else candle.open >= level
            return reason, candle.open if gapped else level
    take = position.take_profit
    if take is not None and ((candle.high >= take) if long else (candle.low <= take)):
        gapped = candle.open >= take if long else candle.open <= take
        return ExitReason.TAKE_PROFIT, candle.open if gapped else take
    return None


def charge_funding(
    wallet: Wallet, market: MarketSpec, rate: Decimal, mark: Decimal
) -> tuple[Wallet, Decimal]:
    """Settle funding on the open position of ``market``; returns the signed amount received."""
    position = wallet.positions.get(market.symbol)
    if position is None:
        return wallet, Decimal(0)
    amount = book(
        funding_amount(
            market.market_type, position.side, position.qty, market.contract_size, mark, rate
        )
    )
    return wallet.with_(wallet.balance + amount, wallet.positions), amount


def unrealized(
    wallet: Wallet, markets: dict[str, MarketSpec], marks: dict[str, Decimal]
) -> Decimal:
    """Unrealised PnL of all open positions at the given mark prices."""
    total = Decimal(0)
    for symbol, position in wallet.positions.items():
        market = markets[symbol]
        total += pnl(
            market.market_type,
            position.side,
            position.qty,
            market.contract_size,
            position.entry_price,
            marks[symbol],
        )
    return total
