"""The matching engine: placing, filling and cancelling orders against the simulated market.

Everything here is synchronous and runs on the event loop between awaits, so each request sees
and leaves a consistent exchange. Results go three ways: the returned record (the REST answer),
the :class:`~tbotd.sim.records.Ledger` (the exchange's own memory) and ``events`` (user-data
stream messages the server pushes to the account's listen keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from tbotd.domain.enums import MarketType, Side
from tbotd.domain.positions import pnl
from tbotd.sim import render
from tbotd.sim.accounts import (
    ZERO,
    Account,
    AssetSummary,
    Exposure,
    MarginType,
    average_entry,
    summarize,
    unrealized,
)
from tbotd.sim.auth import SimError, insufficient_margin
from tbotd.sim.clock import MarketClock
from tbotd.sim.instruments import Instrument
from tbotd.sim.market import MarketData
from tbotd.sim.records import AlgoStatus, Ledger, OrderStatus, SimAlgoOrder, SimFill, SimOrder

Event = tuple[str, str, dict[str, Any]]  # (api key, venue "fapi" | "dapi", user-data payload)


def venue_of(inst: Instrument) -> str:
    """Which venue's user-data stream hears about ``inst``: ``fapi`` or ``dapi``."""
    return "fapi" if inst.market_type is MarketType.LINEAR else "dapi"


@dataclass(frozen=True)
class EngineConfig:
    """Fees and fill model (rates as fractions, slippage in basis points)."""

    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    slippage_bps: Decimal = Decimal(1)
    funding_rate: Decimal = Decimal("0.0001")
    funding_rates: dict[int, Decimal] = field(default_factory=dict)


class Engine:
    """Accounts, orders and fills over the markets; see :mod:`tbotd.sim.triggers` for time."""

    def __init__(
        self,
        instruments: dict[str, Instrument],
        markets: dict[str, MarketData],
        clock: MarketClock,
        accounts: dict[str, Account],
        config: EngineConfig,
    ) -> None:
        self.instruments = instruments
        self.markets = markets
        self.clock = clock
        self.accounts = accounts
        self.config = config
        self.ledger = Ledger()
        self.events: list[Event] = []
        self.marks_override: dict[str, Decimal] = {}
        # Whether an account has a user-data stream open; events nobody listens to are skipped.
        self.listening: Callable[[str], bool] = lambda _api_key: True
        self._mark_cache: dict[str, tuple[int, Decimal]] = {}

    # -- prices and margin --------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        """Market time."""
        return self.clock.now_ms

    def instrument(self, symbol: str) -> Instrument:
        """The instrument, or -1121 for an unknown symbol."""
        inst = self.instruments.get(symbol)
        if inst is None:
            raise SimError(-1121, "Invalid symbol.")
        return inst

    def mark(self, symbol: str) -> Decimal:
        """Mark (= last) price of ``symbol`` at market time."""
        if symbol in self.marks_override:
            return self.marks_override[symbol]
        cached = self._mark_cache.get(symbol)
        if cached is not None and cached[0] == self.now_ms:
            return cached[1]
        price = self.markets[self.instruments[symbol].asset].price_at(self.now_ms)
        self._mark_cache[symbol] = (self.now_ms, price)
        return price

    def exposure(self, account: Account | None = None) -> Exposure:
        """Marks of every instrument and the margin held by ``account``'s open limit orders."""
        marks = {s: self.mark(s) for s in self.instruments}
        held: dict[str, Decimal] = {}
        if account is not None:
            for order in self.ledger.open_orders(account.api_key):
                if order.type == "LIMIT" and not order.reduce_only:
                    inst = self.instruments[order.symbol]
                    im = inst.notional(order.remaining, order.price) / account.leverage_of(
                        order.symbol
                    )
                    held[order.symbol] = held.get(order.symbol, ZERO) + im
        return Exposure(self.instruments, marks, held)

    def summary(self, account: Account, asset: str) -> AssetSummary:
        """Balances of ``asset`` in ``account`` at market time."""
        return summarize(account, asset, self.exposure(account))

    def check_margin(
        self, account: Account, inst: Instrument, sign: int, qty: Decimal, price: Decimal
    ) -> None:
        """-2019 unless available balance covers the added initial margin and the taker fee."""
        pos = account.position(inst.symbol)
        same_side = pos.qty == 0 or (pos.qty > 0) == (sign > 0)
        increase = qty if same_side else max(ZERO, qty - abs(pos.qty))
        if increase == 0:
            return
        need = inst.notional(increase, price) / account.leverage_of(inst.symbol)
        need += inst.notional(qty, price) * self.config.taker_fee
        if need > self.summary(account, inst.margin_asset).available:
            raise insufficient_margin()

    def taker_price(self, inst: Instrument, sign: int, price: Decimal) -> Decimal:
        """``price`` moved against the taker by the slippage, on the tick grid."""
        moved = price * (1 + sign * self.config.slippage_bps / Decimal(10_000))
        rounding = ROUND_CEILING if sign > 0 else ROUND_FLOOR
        ticks = (moved / inst.tick_size).to_integral_value(rounding=rounding)
        return max(ticks * inst.tick_size, inst.tick_size)

    # -- orders -------------------------------------------------------------------------------

    def new_order(self, account: Account, inst: Instrument, **fields: Any) -> SimOrder:
        """Record a NEW order and announce it."""
        order = SimOrder(
            order_id=self.ledger.new_order_id(),
            account=account.api_key,
            symbol=inst.symbol,
            time_ms=self.now_ms,
            **fields,
        )
        self.ledger.add_order(order)
        self.emit_order(order, "NEW")
        return order

    def reducible(self, account: Account, symbol: str, sign: int) -> Decimal:
        """How much an order of side ``sign`` can reduce the position (0 if it cannot)."""
        qty = account.position(symbol).qty
        return abs(qty) if qty != 0 and (qty > 0) != (sign > 0) else ZERO

    def run_market(self, account: Account, order: SimOrder, base_price: Decimal) -> None:
        """Fill a market order as taker. Reduce-only / close-position orders fill at most the
        position and expire the rest; with nothing to reduce they expire unfilled."""
        inst = self.instruments[order.symbol]
        room = self.reducible(account, order.symbol, order.sign)
        if order.close_position:
            order.qty = room
        qty = min(order.remaining, room) if order.reduce_only else order.remaining
        if qty > 0:
            price = self.taker_price(inst, order.sign, base_price)
            self.execute(account, order, qty, price, maker=False)
        if order.status.is_open:
            self.finish(order, OrderStatus.EXPIRED, "EXPIRED")

    def finish(self, order: SimOrder, status: OrderStatus, execution: str) -> None:
        """Move an order to a terminal status and announce it."""
        order.status = status
        order.update_ms = self.now_ms
        self.ledger.touch_order(order)
        self.emit_order(order, execution)
        self.sync_parent(order)

    def set_algo_status(self, algo: SimAlgoOrder, status: AlgoStatus) -> None:
        """Move a conditional order to ``status`` and announce it."""
        algo.status = status
        algo.update_ms = self.now_ms
        self.ledger.touch_algo(algo)
        if not self.listening(algo.account):
            return
        payload = render.algo_event(algo, self.instruments[algo.symbol], self.now_ms)
        self.events.append((algo.account, venue_of(self.instruments[algo.symbol]), payload))

    def sync_parent(self, order: SimOrder) -> None:
        """When a triggered child order is done, its conditional parent is FINISHED/EXPIRED."""
        if order.algo_id is None or order.status.is_open:
            return
        algo = self.ledger.algos[order.algo_id]
        if algo.status is not AlgoStatus.TRIGGERED:
            return
        algo.executed_qty = order.executed_qty
        algo.avg_price = order.avg_price
        done = AlgoStatus.FINISHED if order.executed_qty > 0 else AlgoStatus.EXPIRED
        self.set_algo_status(algo, done)

    def execute(
        self,
        account: Account,
        order: SimOrder,
        qty: Decimal,
        price: Decimal,
        maker: bool,
        liquidation: bool = False,
    ) -> SimFill:
        """Fill ``qty`` of ``order`` at ``price``: position, PnL, one fee, records, events."""
        inst = self.instruments[order.symbol]
        pos = account.position(order.symbol)
        sign = order.sign
        isolated = account.margin_type_of(order.symbol) is MarginType.ISOLATED
        lev = account.leverage_of(order.symbol)
        realized = ZERO
        if pos.qty == 0 or (pos.qty > 0) == (sign > 0):
            pos.entry = average_entry(inst, pos.qty, pos.entry, qty, price)
            pos.qty += sign * qty
            if isolated:
                pos.isolated_wallet += inst.notional(qty, price) / lev
        else:
            side = Side.LONG if pos.qty > 0 else Side.SHORT
            closing = min(qty, abs(pos.qty))
            realized = pnl(inst.market_type, side, closing, inst.contract_size, pos.entry, price)
            released = pos.isolated_wallet * closing / abs(pos.qty) if isolated else ZERO
            if liquidation and isolated:
                realized = max(realized, -released)
            pos.isolated_wallet -= released
            pos.qty += sign * closing
            opening = qty - closing
            if pos.qty == 0:
                pos.entry = ZERO
                pos.isolated_wallet = ZERO
            if opening > 0:
                pos.qty = sign * opening
                pos.entry = price
                if isolated:
                    pos.isolated_wallet = inst.notional(opening, price) / lev
        realized = render.money(realized)
        rate = self.config.maker_fee if maker else self.config.taker_fee
        fee = render.money(inst.notional(qty, price) * rate)
        account.credit(inst.margin_asset, realized - fee)
        pos.update_ms = self.now_ms
        fill = SimFill(
            trade_id=self.ledger.new_trade_id(),
            order_id=order.order_id,
            client_id=order.client_id,
            account=account.api_key,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            fee=fee,
            fee_asset=inst.margin_asset,
            realized_pnl=realized,
            maker=maker,
            time_ms=self.now_ms,
            liquidation=liquidation,
        )
        self.ledger.fills.append(fill)
        total = order.executed_qty + qty
        order.avg_price = (order.avg_price * order.executed_qty + price * qty) / total
        order.executed_qty = total
        order.cum_quote += qty * inst.contract_size * price
        order.cum_base += qty * inst.contract_size / price
        order.status = OrderStatus.FILLED if order.remaining <= 0 else OrderStatus.PARTIALLY_FILLED
        order.update_ms = self.now_ms
        self.ledger.touch_order(order)
        self.emit_order(order, "TRADE", fill)
        self.emit_account(account, inst, "ORDER")
        self.sync_parent(order)
        return fill

    # -- events -------------------------------------------------------------------------------

    def emit_order(self, order: SimOrder, execution: str, fill: SimFill | None = None) -> None:
        """Queue an ORDER_TRADE_UPDATE for the order's account."""
        if not self.listening(order.account):
            return
        inst = self.instruments[order.symbol]
        payload = render.order_event(order, inst, self.now_ms, execution, fill)
        self.events.append((order.account, venue_of(inst), payload))

    def emit_account(self, account: Account, inst: Instrument, reason: str) -> None:
        """Queue an ACCOUNT_UPDATE with ``inst``'s margin asset and position."""
        if not self.listening(account.api_key):
            return
        summary = self.summary(account, inst.margin_asset)
        pos = account.position(inst.symbol)
        upnl = unrealized(inst, pos, self.mark(inst.symbol))
        payload = render.account_event(account, summary, [(inst, pos, upnl)], self.now_ms, reason)
        self.events.append((account.api_key, venue_of(inst), payload))

    def drain(self) -> list[Event]:
        """Take the queued user-data events."""
        events, self.events = self.events, []
        return events
