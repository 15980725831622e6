"""The paper broker: real market data, simulated fills and wallet, persisted in the same SQLite.

It needs no API keys. Fills follow :mod:`tbotd.execution.paper_model` (the same code the backtest
runs): market orders fill at the next price with slippage and the taker fee, stop-loss and
take-profit are checked against each closed candle (stop first), funding is settled every 8 h and
isolated positions are liquidated — over every candle, also those the cycle was never handed
(:mod:`tbotd.execution.paper_settle`). Every outcome — order states, fills, position, wallet,
trade — is written in one transaction, so a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from tbotd.domain.actions import ExitPlan
from tbotd.domain.enums import OrderRole, Side
from tbotd.domain.errors import InsufficientMarginError, RejectedError
from tbotd.domain.market import Candle, MarketSpec
from tbotd.domain.orders import Order, OrderState
from tbotd.domain.positions import FundingPayment, Position, is_funding_time
from tbotd.execution import paper_model as pm
from tbotd.execution.broker import (
    Equity,
    FundingSource,
    PriceSource,
    order_qty,
    protection_after_fill,
    record_entry,
    record_trade,
)
from tbotd.execution.orders import new_order
from tbotd.execution.paper_orders import place_protection, record_fill
from tbotd.execution.paper_settle import Watermarks, report_hole
from tbotd.execution.protection import StopBounds, VenuePosition, as_venue_order, verdict
from tbotd.ops.clock import Clock
from tbotd.store import Store, Trade
from tbotd.strategy.exits import ExitParams, Protection, fixed_exits


class PaperBroker:
    """Simulated execution over the configured markets (see module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        markets: Mapping[str, MarketSpec],
        params: pm.FillParams,
        currency: str,
        initial_balance: Decimal,
        instance: str,
        clock: Clock,
        prices: PriceSource,
        funding: FundingSource,
        fallback_exits: ExitParams,
    ) -> None:
        self.currency = currency
        self._store, self._markets, self._params = store, dict(markets), params
        self._initial, self._instance, self._clock = initial_balance, instance, clock
        self._prices, self._funding, self._fallback = prices, funding, fallback_exits
        self._wallet = pm.Wallet(currency, initial_balance)
        self._trade_ids = itertools.count(1)
        self._marks = Watermarks()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the wallet and positions; finish what a crash interrupted (startup is recovery)."""
        now = self._clock.now()
        balance = self._store.wallet_balance(self.currency)
        if balance is None:
            balance = self._initial
            with self._store.transaction():
                self._store.save_wallet_balance(self.currency, balance, now)
                self._store.record_event(now, "paper", f"paper wallet funded with {balance}")
        positions = {
            s: pm.restored(p, self._markets[s], self._params)
            for s, p in self._store.positions().items()
            if s in self._markets
        }
        self._wallet = pm.Wallet(self.currency, balance, positions)
        self._trade_ids = itertools.count(self._store.fill_count() + 1)
        self._marks = Watermarks.recovered(self._store, list(self._markets))
        await self.reconcile()

    async def stop(self) -> None:
        """Nothing to release: the state is already in the store."""

    def market(self, symbol: str) -> MarketSpec:
        """Trading rules of ``symbol``."""
        return self._markets[symbol]

    def retune(self, params: pm.FillParams, fallback_exits: ExitParams) -> None:
        """A reloaded config's costs, leverage and fallback exits, for what opens from now on
        (an open position keeps the margin and leverage it was opened with)."""
        self._params, self._fallback = params, fallback_exits

    # -- trading ---------------------------------------------------------------------------

    async def open_position(
        self, symbol: str, side: Side, qty: Decimal, exits: ExitPlan, candle_time: datetime
    ) -> Position:
        """Fill an entry at the next price and protect it, atomically."""
        market = self._markets[symbol]
        if symbol in self._wallet.positions:
            raise RejectedError(f"{symbol} already has an open position")
        ref = self._prices(symbol)
        qty = order_qty(market, qty, ref.price)
        entry = new_order(self._instance, symbol, side, OrderRole.ENTRY, qty, candle_time, ref.time)
        self._store.record_order_intent(entry)
        try:
            wallet, execution = pm.open_position(
                self._wallet, market, side, qty, ref.price, self._params, ref.time
            )
        except InsufficientMarginError as e:
            self._store.update_order(entry.transition(OrderState.REJECTED, ref.time, reason=str(e)))
            raise
        protection = protection_after_fill(exits, side, execution.price, market, self._fallback)
        wallet = pm.protect(wallet, symbol, protection.stop_loss, protection.take_profit)
        opened = wallet.positions[symbol].as_position()
        with self._store.transaction():
            self._record_fill(entry, execution)
            self._place_protection(wallet.positions[symbol], protection, candle_time, ref.time)
            self._commit(wallet, ref.time)
            record_entry(self._store, ref.time, opened, candle_time)
        return opened

    async def close_position(self, symbol: str, reason: str, candle_time: datetime) -> Trade | None:
        """Close at the next price; cancels the protective orders in the same transaction."""
        position = self._wallet.positions.get(symbol)
        if position is None:
            return None
        ref = self._prices(symbol)
        order = new_order(
            self._instance,
            symbol,
            position.side,
            OrderRole.EXIT,
            position.qty,
            candle_time,
            ref.time,
            reason=reason,
        )
        self._store.record_order_intent(order)
        return self._close(position, order, ref.price, ref.time, pm.ExitReason.DECISION, slip=True)

    async def move_protection(
        self, symbol: str, stop_loss: Decimal, take_profit: Decimal, candle_time: datetime
    ) -> Position:
        """New stop and target first, then the old ones cancelled (one transaction in paper)."""
        now = self._clock.now()
        wallet = pm.protect(self._wallet, symbol, stop_loss, take_profit)
        old = self._store.live_orders(symbol)
        with self._store.transaction():
            self._place_protection(
                wallet.positions[symbol], Protection(stop_loss, take_profit), candle_time, now
            )
            for order in old:
                self._store.update_order(order.transition(OrderState.CANCELED, now), "replaced")
            self._commit(wallet, now)
        return wallet.positions[symbol].as_position()

    async def on_closed_candle(self, candle: Candle) -> None:
        """Settle the candles since the last one settled that the cycle was never handed, in
        time order (a span the store lacks is said, not skipped silently), then ``candle``; one
        settled already is not settled again (:mod:`tbotd.execution.paper_settle`)."""
        if self._marks.done(candle):
            return
        if candle.symbol in self._wallet.positions:
            for missed in self._marks.missed(self._store, candle):
                if isinstance(missed, Candle):
                    await self._settle(missed)
                elif candle.symbol in self._wallet.positions:  # (a stop may have closed it)
                    report_hole(self._store, self._clock.now(), missed)
        await self._settle(candle)

    # -- queries ---------------------------------------------------------------------------

    async def positions(self) -> dict[str, Position]:
        """Open paper positions."""
        return {s: p.as_position() for s, p in self._wallet.positions.items()}

    async def equity(self) -> Equity:
        """Wallet balance plus unrealised PnL at the latest prices."""
        marks = {s: self._prices(s).price for s in self._wallet.positions}
        unrealized = pm.unrealized(self._wallet, self._markets, marks)
        return Equity(self.currency, self._wallet.balance, unrealized)

    def protection_status(self) -> dict[str, dict[str, object]]:
        """Per symbol: protected by the strict definition (paper stops are its own records)."""
        status: dict[str, dict[str, object]] = {}
        for symbol, p in self._wallet.positions.items():
            position = VenuePosition(
                symbol, p.side, p.qty, p.entry_price, liquidation_price=p.liquidation_price
            )
            orders = [as_venue_order(o) for o in self._store.live_orders(symbol)]
            bounds = self._fallback.bounds
            judged = verdict(
                position,
                orders,
                StopBounds(bounds.min_stop, bounds.max_stop, self._markets[symbol].tick_size),
            )
            status[symbol] = {
                "protected": judged.protected,
                "problems": [str(x) for x in judged.problems],
                "covered_qty": str(judged.covered),
                "entries_refused": None,
            }
        return status

    async def reconcile(self) -> int:
        """Paper is its own venue: only finish interrupted intents and restore protection."""
        now, fixes = self._clock.now(), 0
        for order in self._store.live_orders():
            role, symbol = order.role, order.symbol
            keep = role in (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT) and (
                symbol in self._wallet.positions and order.state is OrderState.OPEN
            )
            if not keep:
                state = (
                    OrderState.CANCELED if order.state is OrderState.OPEN else OrderState.REJECTED
                )
                self._store.update_order(order.transition(state, now), "recovery: never executed")
                fixes += 1
        for position in self._wallet.positions.values():
            roles = {o.role for o in self._store.live_orders(position.symbol)}
            if {OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT} - roles:
                protection = self._restored_protection(position)
                with self._store.transaction():
                    self._place_protection(position, protection, now, now)
                    self._store.record_event(
                        now, "reconcile", "protection restored", position.symbol
                    )
                fixes += 1
        return fixes

    # -- internals -------------------------------------------------------------------------

    async def _settle(self, candle: Candle) -> None:
        """Stop-loss / take-profit / liquidation inside the candle, then funding."""
        position = self._wallet.positions.get(candle.symbol)
        if position is not None and position.opened_at < candle.close_time:
            hit = pm.candle_exit(position, candle)
            if hit is not None:
                await self._exit_on_trigger(position, candle, *hit)
        held = self._wallet.positions.get(candle.symbol)  # after the exit, if any
        if is_funding_time(candle.close_time) and held and held.opened_at < candle.close_time:
            await self._settle_funding(candle)  # (a catch-up may settle a candle before it)
        self._marks.settled(candle)

    async def _exit_on_trigger(
        self, position: pm.PaperPosition, candle: Candle, reason: pm.ExitReason, price: Decimal
    ) -> None:
        role = {
            pm.ExitReason.STOP_LOSS: OrderRole.STOP_LOSS,
            pm.ExitReason.TAKE_PROFIT: OrderRole.TAKE_PROFIT,
        }.get(reason)
        live = {o.role: o for o in self._store.live_orders(position.symbol)}
        order = live.get(role) if role is not None else None
        if order is None:  # liquidation (or a missing stop): an exchange-initiated close
            order = new_order(
                self._instance,
                position.symbol,
                position.side,
                OrderRole.EXIT,
                position.qty,
                candle.open_time,
                candle.open_time,
                seq=9,
                reason=str(reason),
            )
            self._store.record_order_intent(order)
        slip = reason is not pm.ExitReason.LIQUIDATION
        self._close(position, order, price, candle.open_time, reason, slip=slip)

    def _close(
        self,
        position: pm.PaperPosition,
        order: Order,
        price: Decimal,
        at: datetime,
        reason: pm.ExitReason,
        slip: bool,
    ) -> Trade:
        market = self._markets[position.symbol]
        wallet, execution = pm.close_position(
            self._wallet, market, price, self._params, at, reason, slip=slip
        )
        trade = Trade(
            position.symbol,
            position.side,
            position.qty,
            position.opened_at,
            at,
            position.entry_price,
            execution.price,
            str(reason),
            execution.realized_pnl,
            self._store.entry_fees(position.symbol) + execution.fee,
            self._store.funding_total(position.symbol, position.opened_at),
            self.currency,
            position.stop_loss,
            position.take_profit,
        )
        with self._store.transaction():
            self._record_fill(order, execution)
            for sibling in self._store.live_orders(position.symbol):
                self._store.update_order(
                    sibling.transition(OrderState.CANCELED, at), "position closed"
                )
            self._store.record_trade(trade)
            self._commit(wallet, at)
            record_trade(self._store, at, trade)  # logs the one "position closed" line
        return trade

    async def _settle_funding(self, candle: Candle) -> None:
        if self._store.funding_recorded(candle.symbol, candle.close_time):
            return  # charged when this candle was settled before a restart: never twice
        rate = await self._funding(candle.symbol, candle.close_time)
        if rate is None:
            return
        market, position = self._markets[candle.symbol], self._wallet.positions[candle.symbol]
        wallet, amount = pm.charge_funding(self._wallet, market, rate, candle.close)
        payment = FundingPayment(
            candle.symbol,
            candle.close_time,
            rate,
            position.qty,
            candle.close,
            amount,
            self.currency,
        )
        with self._store.transaction():
            self._store.record_funding(payment)
            self._commit(wallet, candle.close_time)

    def _record_fill(self, order: Order, execution: pm.Execution) -> None:
        record_fill(self._store, order, execution, f"p{next(self._trade_ids)}", self.currency)

    def _place_protection(
        self, position: pm.PaperPosition, prices: Protection, candle_time: datetime, at: datetime
    ) -> None:
        place_protection(self._store, self._instance, position, prices, candle_time, at)

    def _commit(self, wallet: pm.Wallet, at: datetime) -> None:
        """Persist the wallet and positions (inside the caller's transaction), then adopt it."""
        self._store.save_wallet_balance(self.currency, wallet.balance, at)
        for symbol in self._wallet.positions.keys() - wallet.positions.keys():
            self._store.remove_position(symbol)
        for position in wallet.positions.values():
            self._store.save_position(position.as_position(), at)
        self._wallet = wallet

    def _restored_protection(self, position: pm.PaperPosition) -> Protection:
        if position.stop_loss is not None and position.take_profit is not None:
            return Protection(position.stop_loss, position.take_profit)
        market = self._markets[position.symbol]
        plan = fixed_exits(self._fallback)
        return protection_after_fill(
            plan, position.side, position.entry_price, market, self._fallback
        )
