"""Sending orders safely: intent first, unknown outcomes resolved by client id, never resent.

The base of :class:`tbotd.execution.live.LiveBroker`. Each order goes through :meth:`_send`:

1. its intent is already in the store (state ``pending``);
2. the request is made; a lost answer marks it ``unknown`` and the venue is asked about the
   client id (with the one retry helper) before anything else happens;
3. whatever the venue says becomes the stored state; a refusal is stored as ``rejected``.

An order is never re-sent with the same client id: Binance only rejects a duplicate id while the
first order is *open*, so resending a filled market order would double the position.

Records of what the venue did (states, fills, trades, positions) are written **best effort**: a
database that cannot be written (disk full) must never stop a stop-loss from being placed or a
fill from being acted on. The failure is remembered (``Store.unwritable``), no new risk is taken
while it lasts, and reconciliation re-derives the missing records from the venue (our client ids
carry our owner tag, so our orders are recognised even when their intent was never stored). Only
the intent of an *entry* is strict: no intent, no entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import TypeVar

from tbotd.domain.enums import OrderRole
from tbotd.domain.errors import (
    OutcomeUnknownError,
    RejectedError,
    RetryableError,
    StorageUnavailableError,
)
from tbotd.domain.market import MarketSpec
from tbotd.domain.orders import Fill, Order, OrderState, owner_tag
from tbotd.domain.positions import Position
from tbotd.execution.broker import record_trade
from tbotd.execution.venue import CcxtVenue
from tbotd.execution.venue_answers import VenueOrderState
from tbotd.ops.clock import Clock
from tbotd.ops.logs import get_logger
from tbotd.ops.retry import Backoff, retry
from tbotd.store import Store, Trade

log = get_logger(__name__)
T = TypeVar("T")
# Requests that are safe to repeat (reads, lookups, cancels, settings, and sends the venue
# refused before executing: 429, clock) are retried with backoff until PATIENCE_S of the clock
# have passed: a rate-limit burst or a few seconds of 5xx must not cost a cycle, an order's
# protection or an unknown order's resolution. The attempt counts only bound a runaway loop.
PATIENCE_S = 30.0
LOOKUP = Backoff(attempts=100, base_s=0.2, cap_s=5.0)
SEND = Backoff(attempts=100, base_s=0.5, cap_s=5.0)
READ = Backoff(attempts=100, base_s=0.25, cap_s=5.0)
POLLS = 6  # how often a market order that is not yet final is asked about again
_FINAL = (OrderState.FILLED, OrderState.CANCELED, OrderState.EXPIRED, OrderState.REJECTED)


class LiveOrders:
    """Order plumbing shared by the live broker's trading and recovery paths."""

    currency: str

    def __init__(
        self,
        store: Store,
        venue: CcxtVenue,
        markets: Mapping[str, MarketSpec],
        instance: str,
        clock: Clock,
    ) -> None:
        self._store, self._venue, self._instance, self._clock = store, venue, instance, clock
        self._markets = dict(markets)
        self._tag = owner_tag(instance)
        self._traded: set[str] | None = None  # symbols we ever sent an order for
        self._activity: dict[str, int] = {}  # orders sent per symbol (snapshots go stale)

    def traded(self) -> frozenset[str]:
        """Symbols this database ever sent an order for (read once, then kept up to date)."""
        if self._traded is None:
            self._traded = set(self._store.traded_symbols())
        return frozenset(self._traded)

    @contextlib.contextmanager
    def _recording(self) -> Iterator[None]:
        """Write records of venue facts in one transaction, or go on without them when the
        database refuses (the store remembers why; reconciliation restores the records)."""
        try:
            with self._store.transaction():
                yield
        except StorageUnavailableError as e:
            log.warning("record not written; the venue's state stands", error=str(e))

    async def _send(
        self, order: Order, request: Callable[[], Awaitable[VenueOrderState]]
    ) -> tuple[Order, VenueOrderState]:
        """Make ``request`` for the recorded ``order``; returns the order as the venue has it."""
        conditional = order.type.is_conditional
        try:  # a 429 or a clock error means "not executed": the same request may be repeated
            state = await self._patiently(request, f"send {order.client_id}", SEND)
        except OutcomeUnknownError as e:
            order = self._update(order, OrderState.UNKNOWN, f"answer lost: {e}")
            found = await self._lookup(order.symbol, order.client_id, conditional)
            if found is None:  # proven not executed: sending again (a new client id) is safe
                self._update(order, OrderState.REJECTED, "never reached the venue (looked up)")
                raise RetryableError(f"order {order.client_id} never reached the venue") from e
            state = found
        except (RejectedError, RetryableError) as e:  # refused, or not executed (429, clock)
            self._update(order, OrderState.REJECTED, str(e))
            raise
        return self._apply(order, state), state

    async def _patiently(
        self, request: Callable[[], Awaitable[T]], what: str, policy: Backoff
    ) -> T:
        """``request`` retried on RetryableError for up to PATIENCE_S of the clock."""
        deadline = self._clock.now() + timedelta(seconds=PATIENCE_S)
        return await retry(request, what, policy, self._clock, deadline=deadline)

    async def _idempotent(self, request: Callable[[], Awaitable[T]], what: str) -> T:
        """A request that is safe to repeat (a read, or setting a value), retried through
        transient failures (5xx, 429, timeouts): one of them must not cost a whole cycle."""
        return await self._patiently(request, what, READ)

    async def _lookup(
        self, symbol: str, client_id: str, conditional: bool
    ) -> VenueOrderState | None:
        """What the venue knows of ``client_id`` (retrying transient failures of the lookup)."""
        return await self._patiently(
            partial(self._venue.find_order, symbol, client_id, conditional),
            f"look up order {client_id}",
            LOOKUP,
        )

    async def _until_final(
        self, order: Order, state: VenueOrderState
    ) -> tuple[Order, VenueOrderState]:
        """Market orders fill at once; if the venue still says open, ask again a few times."""
        for _ in range(POLLS):
            if state.state in _FINAL:
                break
            await self._clock.sleep(LOOKUP.base_s)
            found = await self._lookup(order.symbol, order.client_id, order.type.is_conditional)
            if found is not None:
                state = found
                order = self._apply(order, state)
        return order, state

    def _apply(self, order: Order, state: VenueOrderState) -> Order:
        """Store the venue's view of ``order`` (state, fills so far, average price, id)."""
        if order.state.is_terminal:
            return order
        if (state.state, state.filled_qty, state.exchange_id) == (
            order.state,
            order.filled_qty,
            order.exchange_id,
        ):
            return order
        changes: dict[str, object] = {"exchange_id": state.exchange_id or order.exchange_id}
        if state.filled_qty:
            changes["filled_qty"] = (
                min(state.filled_qty, order.qty) if order.qty else state.filled_qty
            )
        if state.avg_price:
            changes["avg_fill_price"] = state.avg_price
        updated = order.transition(state.state, self._clock.now(), **changes)
        with self._recording():
            self._store.update_order(updated, f"venue says {state.state}", insert_missing=True)
        return updated

    def _update(self, order: Order, state: OrderState, detail: str) -> Order:
        updated = order.transition(state, self._clock.now(), reason=detail[:500])
        with self._recording():
            self._store.update_order(updated, detail[:500], insert_missing=True)
        return updated

    def _intent(self, order: Order, strict: bool = False) -> None:
        """Record an order before it is sent: strictly for entries (no intent, no new risk);
        for protective orders and closes best effort — protection never waits for the disk."""
        if self._traded is not None:
            self._traded.add(order.symbol)
        self._activity[order.symbol] = self._activity.get(order.symbol, 0) + 1
        if strict:
            self._store.record_order_intent(order)
            return
        with self._recording():
            self._store.record_order_intent(order)

    async def _record_fills(self, order: Order, state: VenueOrderState) -> list[Fill]:
        """Fetch and store the executions of a filled order (a conditional one's child order)."""
        exchange_id = state.child_order_id or state.exchange_id
        fills = await self._patiently(
            partial(
                self._venue.fills_of,
                order.symbol,
                exchange_id,
                order.client_id,
                order.created_at,
                self._clock.now(),
            ),
            f"fills of {order.client_id}",
            LOOKUP,
        )
        with self._recording():
            self._store.record_fills(fills)
        return fills

    def _finish(self, position: Position, fills: list[Fill], reason: str) -> Trade:
        """Book the closed round trip from the venue's exit fills and forget the position."""
        qty = sum((f.qty for f in fills), Decimal(0))
        price = sum((f.qty * f.price for f in fills), Decimal(0)) / qty if qty else Decimal(0)
        at = fills[-1].time if fills else self._clock.now()
        trade = Trade(
            position.symbol,
            position.side,
            position.qty,
            position.opened_at,
            at,
            position.entry_price,
            price or position.entry_price,
            reason,
            sum((f.realized_pnl for f in fills), Decimal(0)),
            self._entry_fee_share(position) + sum((f.fee for f in fills), Decimal(0)),
            self._store.funding_total(position.symbol, position.opened_at),
            self.currency,
            position.stop_loss,
            position.take_profit,
        )
        with self._recording():
            self._store.record_trade(trade)
            self._store.remove_position(position.symbol)
            record_trade(self._store, at, trade)
        return trade

    def _entry_fee_share(self, position: Position) -> Decimal:
        """The part of our entry's fees that closing ``position`` books, so that they are booked
        once: all of them for a whole close, the closed share for a part (the rest's close
        books the rest), none when the entry was booked by an earlier trade (a position found
        on the venue later, e.g. opened by hand, did not pay them)."""
        entry = self._store.latest_entry(position.symbol)
        if entry is None or not entry.filled_qty:
            return Decimal(0)
        trades = self._store.trades(position.symbol)
        if any(entry.created_at <= t.entry_time < position.opened_at for t in trades):
            return Decimal(0)
        parts = sum((t.qty for t in trades if t.entry_time == position.opened_at), Decimal(0))
        left = min(position.qty, entry.filled_qty - parts)
        if left <= 0:
            return Decimal(0)
        fees = sum((f.fee for f in self._store.fills_of(entry.client_id)), Decimal(0))
        return fees * left / entry.filled_qty

    def _finish_part(self, ours: Position, closing: list[Fill], qty: Decimal) -> None:
        """Book ``qty`` of ``ours`` closed by hand (all of it when ``qty`` is its size)."""
        if qty >= ours.qty:
            self._finish(ours, closing, "external")
            return
        part = Position(
            ours.symbol, ours.side, qty, ours.entry_price, ours.opened_at,
            ours.stop_loss, ours.take_profit, ours.leverage,
        )  # fmt: skip
        self._finish(part, closing, "external")

    async def _cancel_protection(
        self,
        symbol: str,
        keep: set[str] | None = None,
        roles: tuple[OrderRole, ...] = (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT),
    ) -> None:
        """Cancel our resting protective orders of ``roles`` on ``symbol`` (except ``keep``)."""
        for order in self._store.live_orders(symbol):
            if order.role in roles and order.client_id not in (keep or set()):
                await self._cancel(symbol, order.client_id)

    async def _cancel(self, symbol: str, client_id: str) -> OrderState:
        """Cancel one conditional order by client id, record what became of it, and say so."""
        try:  # cancelling is idempotent: a lost answer is simply asked again
            cancel = partial(self._venue.cancel, symbol, client_id, conditional=True)
            await self._patiently(cancel, f"cancel {client_id}", SEND)
        except RetryableError as e:  # the lookup below says what happened
            log.warning("cancel not confirmed", client_id=client_id, error=str(e))
        found = await self._lookup(symbol, client_id, conditional=True)
        state = found.state if found else OrderState.CANCELED
        if state is OrderState.OPEN:
            log.warning("protective order still open after cancel", client_id=client_id)
            return state
        order = self._store.order(client_id)
        if order is not None and found is not None:
            self._apply(order, found)
        elif order is not None:
            self._update(order, OrderState.CANCELED, "gone from the venue")
        return state

    @staticmethod
    def _with_exits(position: Position, stop: Decimal | None, take: Decimal | None) -> Position:
        return replace(position, stop_loss=stop, take_profit=take)
