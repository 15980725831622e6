"""Accounts, one-way positions and the margin arithmetic of the local exchange, over Decimal.

The rules, per margin asset (USDT for linear contracts, the coin for inverse ones):

* ``wallet`` is the wallet balance; it includes the isolated margin of isolated positions.
* a position's initial margin is its notional at the mark price ÷ leverage, its maintenance
  margin the notional × the maintenance ratio;
* ``available`` = cross wallet + cross unrealized PnL − cross initial margin − margin held by
  open limit orders. An order that adds exposure needs initial margin + taker fee ≤ available
  (else -2019);
* an isolated position is liquidated when its isolated wallet + unrealized PnL falls to its
  maintenance margin; cross positions when the cross wallet + their unrealized PnL falls to theirs;
* a wallet never goes below zero: a loss beyond it (a price gap through the liquidation price)
  is absorbed by the insurance fund and recorded as such.

PnL, notional and funding use :mod:`tbotd.domain.positions`, so the paper broker, the backtest
and the sim agree on what a trade earned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from tbotd.domain.enums import MarketType, Side
from tbotd.domain.positions import pnl
from tbotd.sim.instruments import Instrument

ZERO = Decimal(0)
DEFAULT_LEVERAGE = 20


class MarginType(StrEnum):
    """Binance's names for margin modes."""

    CROSSED = "CROSSED"
    ISOLATED = "ISOLATED"

    @property
    def short(self) -> str:
        """``cross`` / ``isolated``, as positionRisk and ACCOUNT_UPDATE print it."""
        return "cross" if self is MarginType.CROSSED else "isolated"


@dataclass
class PositionState:
    """A one-way position: ``qty`` is signed contracts (negative = short)."""

    symbol: str
    qty: Decimal = ZERO
    entry: Decimal = ZERO
    isolated_wallet: Decimal = ZERO
    update_ms: int = 0

    @property
    def side(self) -> Side | None:
        """Long, short, or None when flat."""
        if self.qty > 0:
            return Side.LONG
        return Side.SHORT if self.qty < 0 else None


@dataclass
class Account:
    """One API key's futures account."""

    api_key: str
    secret: str
    wallets: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, PositionState] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, MarginType] = field(default_factory=dict)
    dual_side: bool = False
    insurance_used: dict[str, Decimal] = field(default_factory=dict)
    update_ms: int = 0

    def position(self, symbol: str) -> PositionState:
        """The (possibly flat) position in ``symbol``."""
        if symbol not in self.positions:
            self.positions[symbol] = PositionState(symbol)
        return self.positions[symbol]

    def leverage_of(self, symbol: str) -> int:
        """Leverage set for ``symbol`` (Binance's default is 20×)."""
        return self.leverage.get(symbol, DEFAULT_LEVERAGE)

    def margin_type_of(self, symbol: str) -> MarginType:
        """Margin mode set for ``symbol`` (cross by default)."""
        return self.margin_type.get(symbol, MarginType.CROSSED)

    def credit(self, asset: str, amount: Decimal) -> Decimal:
        """Add ``amount`` (signed) to a wallet, never below zero; returns what was absorbed."""
        balance = self.wallets.get(asset, ZERO) + amount
        absorbed = ZERO
        if balance < 0:
            absorbed = -balance
            balance = ZERO
            self.insurance_used[asset] = self.insurance_used.get(asset, ZERO) + absorbed
        self.wallets[asset] = balance
        return absorbed


def unrealized(inst: Instrument, pos: PositionState, mark: Decimal) -> Decimal:
    """Unrealized PnL of ``pos`` at ``mark``, in the margin asset."""
    if pos.side is None:
        return ZERO
    return pnl(inst.market_type, pos.side, abs(pos.qty), inst.contract_size, pos.entry, mark)


def average_entry(
    inst: Instrument, qty: Decimal, entry: Decimal, add: Decimal, price: Decimal
) -> Decimal:
    """Entry price after adding ``add`` contracts at ``price`` to ``qty`` at ``entry`` (same side).

    Linear contracts average prices; inverse ones average in 1/price (what each contract is
    worth in coins), as COIN-M does.
    """
    qty, add = abs(qty), abs(add)
    if qty == 0:
        return price
    if inst.market_type is MarketType.LINEAR:
        return (qty * entry + add * price) / (qty + add)
    return (qty + add) / (qty / entry + add / price)


@dataclass(frozen=True, slots=True)
class AssetSummary:
    """Balances of one margin asset, as account/balance endpoints report them."""

    asset: str
    wallet: Decimal
    cross_wallet: Decimal
    unrealized: Decimal
    cross_unrealized: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal
    maint_margin: Decimal
    available: Decimal

    @property
    def margin_balance(self) -> Decimal:
        """Wallet + unrealized PnL."""
        return self.wallet + self.unrealized

    @property
    def initial_margin(self) -> Decimal:
        """Position + open-order initial margin."""
        return self.position_initial_margin + self.open_order_initial_margin


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the margin summary needs from outside: instruments, marks and open-order margin."""

    instruments: dict[str, Instrument]
    marks: dict[str, Decimal]
    order_margin: dict[str, Decimal]  # per symbol, initial margin held by open orders


def summarize(account: Account, asset: str, exposure: Exposure) -> AssetSummary:
    """Wallet, unrealized PnL, margins and available balance of ``asset``."""
    wallet = account.wallets.get(asset, ZERO)
    iso_wallets = upnl = cross_upnl = pos_im = cross_im = maint = order_im = ZERO
    for symbol, inst in exposure.instruments.items():
        if inst.margin_asset != asset:
            continue
        order_im += exposure.order_margin.get(symbol, ZERO)
        pos = account.positions.get(symbol)
        if pos is None or pos.qty == 0:
            continue
        mark = exposure.marks[symbol]
        u = unrealized(inst, pos, mark)
        im = inst.notional(pos.qty, mark) / account.leverage_of(symbol)
        upnl += u
        pos_im += im
        maint += inst.notional(pos.qty, mark) * inst.maint_margin_ratio
        if account.margin_type_of(symbol) is MarginType.ISOLATED:
            iso_wallets += pos.isolated_wallet
        else:
            cross_upnl += u
            cross_im += im
    cross_wallet = wallet - iso_wallets
    available = cross_wallet + cross_upnl - cross_im - order_im
    return AssetSummary(
        asset=asset,
        wallet=wallet,
        cross_wallet=cross_wallet,
        unrealized=upnl,
        cross_unrealized=cross_upnl,
        position_initial_margin=pos_im,
        open_order_initial_margin=order_im,
        maint_margin=maint,
        available=available,
    )


def liquidation_price(inst: Instrument, pos: PositionState, collateral: Decimal) -> Decimal:
    """The mark price at which ``collateral`` + unrealized PnL equals maintenance margin.

    ``collateral`` is the isolated wallet (isolated) or what the cross wallet can lose for this
    position (cross). Returns 0 when the position cannot be liquidated.
    """
    if pos.side is None:
        return ZERO
    q, e, mmr = abs(pos.qty), pos.entry, inst.maint_margin_ratio
    long = pos.side is Side.LONG
    if inst.market_type is MarketType.LINEAR:
        q = q * inst.contract_size
        price = (
            (e * q - collateral) / (q * (1 - mmr))
            if long
            else (collateral + e * q) / (q * (1 + mmr))
        )
    else:
        qs = q * inst.contract_size
        denominator = (collateral + qs / e) if long else (qs / e - collateral)
        if denominator <= 0:
            return ZERO
        price = ((1 + mmr) if long else (1 - mmr)) * qs / denominator
    return price if price > 0 else ZERO


def collateral_for(
    account: Account, inst: Instrument, exposure: Exposure, summary: AssetSummary
) -> Decimal:
    """What ``inst``'s position can lose before liquidation, beyond its own maintenance margin.

    Isolated: its isolated wallet. Cross: the cross wallet plus the other cross positions'
    unrealized PnL, less their maintenance margin (held fixed).
    """
    pos = account.position(inst.symbol)
    if account.margin_type_of(inst.symbol) is MarginType.ISOLATED:
        return pos.isolated_wallet
    mark = exposure.marks[inst.symbol]
    own_u = unrealized(inst, pos, mark)
    others_maint = ZERO
    for symbol, other in exposure.instruments.items():
        other_pos = account.positions.get(symbol)
        if (
            symbol == inst.symbol
            or other.margin_asset != inst.margin_asset
            or other_pos is None
            or other_pos.qty == 0
            or account.margin_type_of(symbol) is MarginType.ISOLATED
        ):
            continue
        others_maint += (
            other.notional(other_pos.qty, exposure.marks[symbol]) * other.maint_margin_ratio
        )
    return summary.cross_wallet + summary.cross_unrealized - own_u - others_maint
