"""The live broker: perp positions on a real venue through ccxt, always protected.

Entries are market orders; right after the fill, stop-loss and take-profit are placed as two
separate reduce-only conditional orders computed from the actual fill price (Binance has no
attached TP/SL). When one of them fills, the sibling is cancelled — on the user-data stream's
word, with polling at every candle close as the safety net. Moving protection places the new
orders before cancelling the old ones. A position that cannot be protected is closed at once.
Start-up is recovery: see :mod:`tbotd.execution.live_recovery`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from functools import partial

from tbotd.domain.actions import ExitPlan
from tbotd.domain.enums import MarginMode, OrderRole, OrderType, Side
from tbotd.domain.errors import OutcomeUnknownError, RejectedError, RetryableError
from tbotd.domain.market import Candle, MarketSpec
from tbotd.domain.orders import Order, OrderState
from tbotd.domain.positions import Position, is_funding_time
from tbotd.execution.broker import Equity, PriceSource, order_qty, protection_after_fill
from tbotd.execution.live_recovery import LiveRecovery
from tbotd.execution.orders import new_order
from tbotd.execution.venue import (
    CcxtVenue,
    ImmediateTriggerError,
    ReduceOnlyRejectedError,
    VenueOrderState,
)
from tbotd.ops.clock import Clock
from tbotd.ops.logs import get_logger
from tbotd.ops.retry import Backoff
from tbotd.store import Store, Trade
from tbotd.strategy.exits import ExitParams, Protection

log = get_logger(__name__)
PROTECTION_ATTEMPTS = 3
USER_STREAM = Backoff(attempts=1_000_000, base_s=0.5, cap_s=30.0)


class LiveBroker(LiveRecovery):
    """The Broker protocol over a ccxt venue (see module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        venue: CcxtVenue,
        symbols: list[str],
        currency: str,
        instance: str,
        clock: Clock,
        prices: PriceSource,
        leverage: int,
        margin_mode: MarginMode,
        fallback_exits: ExitParams,
    ) -> None:
        super().__init__(store, venue, {}, instance, clock)
        self.currency = currency
        self._symbols, self._prices = symbols, prices
        self._leverage, self._margin_mode, self._fallback = leverage, margin_mode, fallback_exits
        self._locks: dict[str, asyncio.Lock] = {s: asyncio.Lock() for s in symbols}
        self._snapshots: dict[datetime, asyncio.Future[set[str]]] = {}
        self.synced = asyncio.Condition()  # notified after every sync (tests and status wait on it)

    async def start(self) -> None:
        """Markets, idempotent account set-up, then recovery (reconcile and protect)."""
        self._markets = await self._idempotent(
            partial(self._venue.markets, self._symbols), "markets"
        )
        now = self._clock.now()
        for symbol in self._symbols:
            notes = await self._idempotent(
                partial(self._venue.setup, symbol, self._leverage, self._margin_mode),
                f"account set-up {symbol}",
            )
            for note in notes:
                log.info("account set-up", symbol=symbol, note=note)
        self._store.record_event(
            now,
            "start",
            "live broker ready",
            leverage=self._leverage,
            margin_mode=str(self._margin_mode),
        )
        await self.reconcile()

    async def stop(self) -> None:
        """Close connections; protective orders stay on the venue."""
        await self._venue.close()

    def market(self, symbol: str) -> MarketSpec:
        """Trading rules of ``symbol``."""
        return self._markets[symbol]

    async def open_position(
        self, symbol: str, side: Side, qty: Decimal, exits: ExitPlan, candle_time: datetime
    ) -> Position:
        """Enter at market, then protect from the fill price (or close if that fails)."""
        async with self._locks[symbol]:
            market = self._markets[symbol]
            if symbol in self._store.positions():
                raise RejectedError(f"{symbol} already has an open position")
            qty = order_qty(market, qty, self._prices(symbol).price)
            now = self._clock.now()
            entry = new_order(self._instance, symbol, side, OrderRole.ENTRY, qty, candle_time, now)
            self._store.record_order_intent(entry)
            entry, state = await self._send(
                entry,
                lambda: self._venue.market_order(
                    symbol, entry.side, qty, entry.client_id, reduce_only=False
                ),
            )
            entry, state = await self._until_final(entry, state)
            if entry.state is not OrderState.FILLED:
                raise RejectedError(f"entry {entry.client_id} ended {entry.state}, not filled")
            fills = await self._record_fills(entry, state)
            price = entry.avg_fill_price or fills[0].price
            protection = protection_after_fill(exits, side, price, market, self._fallback)
            position = Position(
                symbol,
                side,
                entry.filled_qty,
                price,
                fills[0].time if fills else now,
                protection.stop_loss,
                protection.take_profit,
                Decimal(self._leverage),
            )
            with self._store.transaction():
                self._store.save_position(position, now)
                self._store.record_event(now, "entry", f"{side} {position.qty} at {price}", symbol)
            await self._protect(position, protection, candle_time)
            return self._store.positions().get(symbol, position)

    async def close_position(self, symbol: str, reason: str, candle_time: datetime) -> Trade | None:
        """Reduce-only market close, then cancel the protection; None when already flat."""
        async with self._locks[symbol]:
            return await self._close(symbol, reason, candle_time)

    async def _close(
        self, symbol: str, reason: str, candle_time: datetime, seq: int = 0
    ) -> Trade | None:
        position = self._store.positions().get(symbol)
        if position is None:
            return None
        now = self._clock.now()
        exit_ = new_order(
            self._instance,
            symbol,
            position.side,
            OrderRole.EXIT,
            position.qty,
            candle_time,
            now,
            seq=seq,
            reason=reason,
        )
        self._store.record_order_intent(exit_)
        try:
            exit_, state = await self._send(
                exit_,
                lambda: self._venue.market_order(
                    symbol, exit_.side, position.qty, exit_.client_id, reduce_only=True
                ),
            )
        except ReduceOnlyRejectedError:
            await self.sync(symbol)  # the venue is already flat: a stop or target fired
            return None
        exit_, state = await self._until_final(exit_, state)
        fills = await self._record_fills(exit_, state)
        trade = self._finish(position, fills, "decision" if seq == 0 else reason)
        await self._cancel_protection(symbol)
        return trade

    async def move_protection(
        self, symbol: str, stop_loss: Decimal, take_profit: Decimal, candle_time: datetime
    ) -> Position:
        """New stop and target first, then the old ones cancelled."""
        async with self._locks[symbol]:
            position = self._store.positions()[symbol]
            old = {o.client_id for o in self._store.live_orders(symbol)}
            placed = await self._protect(position, Protection(stop_loss, take_profit), candle_time)
            await self._cancel_protection(symbol, keep=placed)
            moved = self._with_exits(position, stop_loss, take_profit)
            self._store.save_position(moved, self._clock.now())
            log.info("protection moved", symbol=symbol, replaced=len(old))
            return moved

    async def _protect(
        self, position: Position, prices: Protection, candle_time: datetime
    ) -> set[str]:
        """Place stop then target; an unprotectable position is closed at once."""
        placed: set[str] = set()
        symbol = position.symbol
        for role, kind, trigger in (
            (OrderRole.STOP_LOSS, OrderType.STOP_MARKET, prices.stop_loss),
            (OrderRole.TAKE_PROFIT, OrderType.TAKE_PROFIT_MARKET, prices.take_profit),
        ):
            for _attempt in range(PROTECTION_ATTEMPTS):
                seq = self._store.order_count(symbol, role)
                order = new_order(
                    self._instance,
                    symbol,
                    position.side,
                    role,
                    position.qty,
                    candle_time,
                    self._clock.now(),
                    trigger_price=trigger,
                    seq=seq,
                )
                self._store.record_order_intent(order)
                try:
                    order, _ = await self._send(order, self._conditional(order, kind))
                except ImmediateTriggerError as e:
                    await self._emergency_close(
                        position, candle_time, f"{role} already crossed: {e}"
                    )
                    return placed
                except RetryableError:
                    await self._clock.sleep(1.0)
                    continue
                except RejectedError as e:
                    await self._emergency_close(position, candle_time, f"{role} refused: {e}")
                    return placed
                placed.add(order.client_id)
                break
            else:
                await self._emergency_close(position, candle_time, f"{role} could not be placed")
                return placed
        with self._store.transaction():
            self._store.save_position(
                self._with_exits(position, prices.stop_loss, prices.take_profit), self._clock.now()
            )
        return placed

    def _conditional(
        self, order: Order, kind: OrderType
    ) -> Callable[[], Awaitable[VenueOrderState]]:
        trigger = order.trigger_price or Decimal(0)
        return lambda: self._venue.conditional_order(
            order.symbol, order.side, kind, trigger, order.qty, order.client_id
        )

    async def _emergency_close(self, position: Position, candle_time: datetime, why: str) -> None:
        """Never leave a position unprotected: close it and say so loudly."""
        now = self._clock.now()
        log.error("closing unprotectable position", symbol=position.symbol, reason=why)
        self._store.record_event(
            now, "alert", f"position closed, could not protect: {why}", position.symbol
        )
        await self._close(position.symbol, "unprotectable", candle_time, seq=7)

    async def positions(self) -> dict[str, Position]:
        """Open positions as recorded (reconciled with the venue at start and every candle)."""
        return self._store.positions()

    async def equity(self) -> Equity:
        """The venue's wallet balance and unrealised PnL."""
        balance, unrealized = await self._idempotent(
            partial(self._venue.balance, self.currency), "balance"
        )
        return Equity(self.currency, balance, unrealized)

    async def on_closed_candle(self, candle: Candle) -> None:
        """Safety net for the user-data stream: settle fired stops/targets, record funding.

        One request lists every open conditional order for all symbols of this close; only an
        order missing from it is looked up. Funding is fetched at funding times only.
        """
        still_open = await self._open_snapshot(candle.close_time)
        async with self._locks[candle.symbol]:
            await self.sync(candle.symbol, still_open, funding=is_funding_time(candle.close_time))

    async def _open_snapshot(self, close_time: datetime) -> set[str]:
        """The venue's open conditional orders, fetched once per candle close for all symbols."""
        task = self._snapshots.get(close_time)
        if task is None:
            self._snapshots = {
                close_time: asyncio.ensure_future(self._venue.open_conditional_ids(self._symbols))
            }
            task = self._snapshots[close_time]
        try:
            return await asyncio.shield(task)
        except RetryableError:
            self._snapshots.pop(close_time, None)
            return set()  # unknown: every protective order is looked up

    async def on_order_update(self, symbol: str) -> None:
        """The user-data stream reported a change on ``symbol``: sync it now."""
        async with self._locks[symbol]:
            await self.sync(symbol, funding=False)
        async with self.synced:
            self.synced.notify_all()

    async def watch_user_stream(self) -> None:
        """Settle fired stops/targets as soon as the venue says so; reconcile after a drop.

        Polling at every candle close (:meth:`on_closed_candle`) remains the safety net. A
        transient failure (the stream dropped, or the venue failing while settling) never ends
        this task: it backs off, reconciles and listens again.
        """
        failures, lost = 0, False
        while True:
            try:
                if lost:  # what happened while the stream was down is reconciled first
                    await self.reconcile()
                    lost = False
                updates = await self._venue.watch_orders()
                failures = 0
                for symbol in self._touched(updates):
                    await self.on_order_update(symbol)
            except (RetryableError, OutcomeUnknownError) as e:
                delay = USER_STREAM.delay(failures)
                failures, lost = failures + 1, True
                log.warning("user-data stream lost", error=str(e), retry_in_s=round(delay, 2))
                await self._clock.sleep(delay)

    def _touched(self, updates: list[VenueOrderState]) -> list[str]:
        """Symbols with a live order of ours among ``updates``."""
        symbols = set()
        for update in updates:
            order = self._store.order(update.client_id)
            if order is not None and order.state.is_live:
                symbols.add(order.symbol)
        return sorted(symbols)

    async def reconcile(self) -> int:
        """Compare with the venue and fix every difference (exchange wins on positions)."""
        async with contextlib.AsyncExitStack() as stack:  # every symbol, in a fixed order
            for symbol in sorted(self._locks):
                await stack.enter_async_context(self._locks[symbol])
            return await self._reconcile(self._symbols, self._fallback)
