"""The live broker: perp positions on a real venue through ccxt, always protected (README:
Protection).

Entries are market orders; right after the fill — before its fills are fetched or anything is
written — the stop-loss and then the take-profit are placed as separate reduce-only conditional
orders computed from the fill price the order's answer gives (Binance has no attached TP/SL).
When one of them fills, the sibling is cancelled — on the user-data stream's word, with polling
at every candle close as the safety net. Every close also takes the venue's snapshot (positions
with leverage, margin mode and liquidation price; the open conditional orders) and checks each
symbol against it by the strict definition of "protected"; anything that differs is reconciled
at once. A position that could not be protected is retried every few seconds by
:meth:`LiveBroker.protect_forever`. Moving protection places the new orders before cancelling
the old ones. Start-up is recovery: see :mod:`tbotd.execution.live_recovery`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from tbotd.domain.actions import ExitPlan
from tbotd.domain.enums import MarginMode, OrderRole, Side
from tbotd.domain.errors import OutcomeUnknownError, RejectedError, RetryableError
from tbotd.domain.market import Candle, MarketSpec
from tbotd.domain.orders import Order, OrderState
from tbotd.domain.positions import Position, is_funding_time
from tbotd.execution.broker import (
    Equity,
    PriceSource,
    order_qty,
    protection_after_fill,
    record_entry,
)
from tbotd.execution.live_checks import CloseChecks, Snapshot, known
from tbotd.execution.order_round import before_bookkeeping
from tbotd.execution.orders import new_order
from tbotd.execution.protection import Verdict
from tbotd.execution.venue import CcxtVenue
from tbotd.ops.clock import Clock
from tbotd.ops.logs import get_logger
from tbotd.ops.retry import Backoff
from tbotd.store import Store, Trade
from tbotd.strategy.exits import ExitParams

log = get_logger(__name__)
USER_STREAM = Backoff(attempts=1_000_000, base_s=0.5, cap_s=30.0)
REPAIR = Backoff(attempts=1_000_000, base_s=1.0, cap_s=10.0)


class LiveBroker(CloseChecks):
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
        self._last: tuple[datetime, Snapshot] | None = None
        self._checks: dict[str, asyncio.Task[None]] = {}  # each symbol's check of the last close
        self.synced = asyncio.Condition()  # notified after every sync (tests and status wait on it)
        self.repair_soon = asyncio.Event()
        self.entry_blocked: dict[str, str] = {}
        self.suspended: dict[str, str] = {}
        self.verdicts: dict[str, Verdict] = {}
        self._reported: set[str] = set()
        self._swept: dict[str, datetime] = {}
        self._seq_floor: dict[tuple[str, OrderRole], int] = {}
        self._retuned: set[str] = set()  # symbols whose leverage a reload changed, not yet set

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
        with self._recording():
            self._store.record_event(
                now,
                "start",
                "live broker ready",
                leverage=self._leverage,
                margin_mode=str(self._margin_mode),
            )
        await self.reconcile()

    def retune(self, leverage: int, fallback_exits: ExitParams) -> None:
        """A reloaded config's leverage and fallback exits. The venue's leverage is set by the
        next close's check, which every entry waits for (so no entry runs at the old one)."""
        if leverage != self._leverage:
            self._retuned.update(self._symbols)
        self._leverage, self._fallback = leverage, fallback_exits

    async def stop(self) -> None:
        """Close connections; protective orders stay on the venue."""
        await self.cancel_checks()
        await self._venue.close()

    def market(self, symbol: str) -> MarketSpec:
        """Trading rules of ``symbol``."""
        return self._markets[symbol]

    def entries_refused(self, symbol: str) -> str:
        """Why no new position may be opened on ``symbol`` now ("" when one may)."""
        unwritable = self._store.unwritable
        if unwritable:
            return f"the database cannot be written ({unwritable})"
        return self.suspended.get(symbol) or self.entry_blocked.get(symbol, "")

    async def open_position(
        self, symbol: str, side: Side, qty: Decimal, exits: ExitPlan, candle_time: datetime
    ) -> Position:
        """Enter at market, place the stop (then the target) from the fill price, then book."""
        await self.checked(symbol)  # this close's check (venue leverage, hand changes) first
        async with self._locks[symbol]:
            refused = self.entries_refused(symbol)
            if refused:
                raise RejectedError(f"{symbol}: no new entries: {refused}")
            market = self._markets[symbol]
            if symbol in self._store.positions():
                raise RejectedError(f"{symbol} already has an open position")
            unresolved = self._unresolved_entry(symbol)
            if unresolved:
                raise RejectedError(f"{symbol}: entry {unresolved} is not resolved yet")
            qty = order_qty(market, qty, self._prices(symbol).price)
            now = self._clock.now()
            entry = new_order(self._instance, symbol, side, OrderRole.ENTRY, qty, candle_time, now)
            self._intent(entry, strict=True)
            try:
                entry, state = await self._send(
                    entry,
                    lambda: self._venue.market_order(
                        symbol, entry.side, qty, entry.client_id, reduce_only=False
                    ),
                )
                entry, state = await self._until_final(entry, state)
            except (RetryableError, OutcomeUnknownError) as e:
                stored = self._store.order(entry.client_id)
                if stored is None or stored.state.is_live:  # not refused before it executed
                    self._entry_unsettled(entry, f"its outcome is unknown ({e})")
                raise
            if entry.state is not OrderState.FILLED:
                if entry.filled_qty or not entry.state.is_terminal:
                    self._entry_unsettled(
                        entry, f"it ended {entry.state}, {entry.filled_qty} filled"
                    )
                raise RejectedError(f"entry {entry.client_id} ended {entry.state}, not filled")
            price = entry.avg_fill_price or self._prices(symbol).price
            position = Position(
                symbol, side, entry.filled_qty, price, now, leverage=Decimal(self._leverage)
            )
            protection = protection_after_fill(exits, side, price, market, self._fallback)
            levels = {
                OrderRole.STOP_LOSS: protection.stop_loss,
                OrderRole.TAKE_PROFIT: protection.take_profit,
            }
            placed = await self._protect(
                symbol, side, position.qty, levels, candle_time, position
            )  # first: the stop never waits for bookkeeping
            if placed.closed:
                return position
            await before_bookkeeping(symbol)  # every symbol's order before anyone's records
            return await self._book_entry(
                entry, state, position, protection.stop_loss, protection.take_profit, candle_time
            )

    def _unresolved_entry(self, symbol: str) -> str:
        """The client id of an entry on ``symbol`` whose outcome we do not know yet (a lost
        answer, a fill not final): a second entry could double the position."""
        for order in self._store.live_orders(symbol):
            if order.role is OrderRole.ENTRY:
                return order.client_id
        return ""

    def _entry_unsettled(self, entry: Order, why: str) -> None:
        """An entry that may hold a position we did not protect: reconcile now (the repair loop
        adopts and protects whatever the venue holds) and say so."""
        self.repair_soon.set()
        self._event("unprotected", f"entry {entry.client_id}: {why}; reconciling", entry.symbol)

    async def _book_entry(
        self,
        entry: Any,
        state: Any,
        position: Position,
        stop: Decimal,
        take: Decimal,
        candle_time: datetime,
    ) -> Position:
        """Fills, position and event, once the venue already holds the stop."""
        try:
            fills = await self._record_fills(entry, state)
        except (RetryableError, OutcomeUnknownError) as e:  # recovered by reconciliation
            log.warning("entry fills not fetched yet", client_id=entry.client_id, error=str(e))
            fills = []
        booked = replace(
            position,
            opened_at=fills[0].time if fills else position.opened_at,
            stop_loss=stop,
            take_profit=take,
        )
        with self._recording():
            self._store.save_position(booked, self._clock.now())
            record_entry(self._store, self._clock.now(), booked, candle_time)
        return booked

    async def close_position(self, symbol: str, reason: str, candle_time: datetime) -> Trade | None:
        """Reduce-only market close, then cancel the protection; None when already flat."""
        async with self._locks[symbol]:
            position = self._store.positions().get(symbol)
            if position is None:
                return None
            return await self._close(position, reason, candle_time)

    async def move_protection(
        self, symbol: str, stop_loss: Decimal, take_profit: Decimal, candle_time: datetime
    ) -> Position:
        """New stop and target first, then the old ones cancelled; a position the move had to
        close (a level refused) stays closed."""
        async with self._locks[symbol]:
            position = self._store.positions().get(symbol)
            if position is None:  # a stop or target fired since the decision
                raise RejectedError(f"{symbol}: no open position to move the exits of")
            levels = {OrderRole.STOP_LOSS: stop_loss, OrderRole.TAKE_PROFIT: take_profit}
            placed = await self._protect(
                symbol, position.side, position.qty, levels, candle_time, position
            )
            if placed.closed or placed.failed:  # gone, or the old orders still protect it
                return position
            await self._cancel_protection(symbol, keep=placed.ids)
            moved = self._with_exits(position, stop_loss, take_profit)
            with self._recording():
                self._store.save_position(moved, self._clock.now())
            log.info("protection moved", symbol=symbol)
            return moved

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
        """Safety net for the user-data stream, and the per-close protection check.

        One snapshot per close for all symbols: the open conditional orders (an order of ours
        missing from them is looked up — a stop that fired) and, in parallel, the positions
        with leverage, margin mode and liquidation price. The check of each symbol against it
        runs off the decision's path; an entry waits for its symbol's check (leverage verified
        before each entry), and any difference is reconciled at once. Funding is fetched at
        funding times only.
        """
        snapshot = self._snapshot(candle.close_time)
        conditional = await known(snapshot.conditional)
        async with self._locks[candle.symbol]:
            still_open = None if conditional is None else {o.client_id for o in conditional}
            await self.sync(candle.symbol, still_open, funding=is_funding_time(candle.close_time))
        self.spawn_check(candle.symbol, snapshot)

    async def on_order_update(self, symbol: str) -> None:
        """The user-data stream reported a change on ``symbol``: sync it now."""
        async with self._locks[symbol]:
            await self.sync(symbol, funding=False)
        async with self.synced:
            self.synced.notify_all()

    async def watch_user_stream(self) -> None:
        """Settle fired stops/targets as soon as the venue says so; reconcile after a drop.

        Polling at every candle close (:meth:`on_closed_candle`) remains the safety net. An
        order that is not ours on one of our symbols (another daemon, a person) starts a
        reconciliation at once. A transient failure never ends this task: it backs off,
        reconciles and listens again.
        """
        failures, lost = 0, False
        while True:
            try:
                if lost:  # what happened while the stream was down is reconciled first
                    await self.reconcile()
                    lost = False
                updates = await self._venue.watch_orders()
                failures = 0
                ours, foreign = self._touched(updates)
                for symbol in ours:
                    await self.on_order_update(symbol)
                if foreign:
                    self.repair_soon.set()
            except (RetryableError, OutcomeUnknownError) as e:
                delay = USER_STREAM.delay(failures)
                failures, lost = failures + 1, True
                log.warning("user-data stream lost", error=str(e), retry_in_s=round(delay, 2))
                await self._clock.sleep(delay)

    def _touched(self, updates: list[tuple[str, Any]]) -> tuple[list[str], bool]:
        """Symbols with a live order of ours among ``updates``; and whether any update was
        another trader's on one of our symbols."""
        symbols, foreign = set(), False
        for symbol, update in updates:
            order = self._store.order(update.client_id)
            if order is not None and order.state.is_live:
                symbols.add(order.symbol)
            elif order is None and symbol in self._locks:
                foreign = True
        return sorted(symbols), foreign

    async def protect_forever(self) -> None:
        """Whenever a position could not be protected (or another trader's order appeared),
        reconcile every symbol, backing off while the venue cannot be reached: a bare position
        is retried every few seconds, never left to the next periodic reconciliation."""
        failures = 0
        while True:
            await self.repair_soon.wait()
            self.repair_soon.clear()
            try:
                await self.reconcile()
                failures = 0
            except Exception as e:  # noqa: BLE001 - this loop is the last line of protection:
                # whatever failed (the venue, a bug), it logs, backs off and tries again
                delay = REPAIR.delay(failures)
                failures += 1
                log.warning("protection repair postponed", error=repr(e), retry_in_s=delay)
                await self._clock.sleep(delay)
                self.repair_soon.set()

    async def reconcile(self) -> int:
        """Compare with the venue and fix every difference (exchange wins on positions)."""
        async with contextlib.AsyncExitStack() as stack:  # every symbol, in a fixed order
            for symbol in sorted(self._locks):
                await stack.enter_async_context(self._locks[symbol])
            return await self.reconcile_symbols(self._symbols)

    def protection_status(self) -> dict[str, dict[str, Any]]:
        """Per symbol: protected by the strict definition (at the last check), and whether new
        entries are refused and why."""
        return {
            symbol: {
                "protected": None if v is None else v.protected,
                "problems": [] if v is None else [str(p) for p in v.problems],
                "covered_qty": None if v is None else str(v.covered),
                "entries_refused": self.entries_refused(symbol) or None,
            }
            for symbol in self._symbols
            for v in [self.verdicts.get(symbol)]
        }
