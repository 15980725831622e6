"""Sending orders safely: intent first, unknown outcomes resolved by client id, never resent.

The base of :class:`tbotd.execution.live.LiveBroker`. Each order goes through :meth:`_send`:

1. its intent is already in the store (state ``pending``);
2. the request is made; a lost answer marks it ``unknown`` and the venue is asked about the
   client id (with the one retry helper) before anything else happens;
3. whatever the venue says becomes the stored state; a refusal is stored as ``rejected``.

An order is never re-sent with the same client id: Binance only rejects a duplicate id while the
first order is *open*, so resending a filled market order would double the position.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import TypeVar

from tbotd.domain.enums import OrderRole
from tbotd.domain.errors import OutcomeUnknownError, RejectedError, RetryableError
from tbotd.domain.market import MarketSpec
from tbotd.domain.orders import Fill, Order, OrderState
from tbotd.domain.positions import Position
from tbotd.execution.venue import CcxtVenue, VenueOrderState
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
        self._store.update_order(updated, f"venue says {state.state}")
        return updated

    def _update(self, order: Order, state: OrderState, detail: str) -> Order:
        updated = order.transition(state, self._clock.now(), reason=detail[:500])
        self._store.update_order(updated, detail[:500])
        return updated

    async def _record_fills(self, order: Order, state: VenueOrderState) -> list[Fill]:
        """Fetch and store the executions of a filled order (a conditional one's child order)."""
        exchange_id = state.child_order_id or state.exchange_id
        fills = await self._patiently(
            partial(
                self._venue.fills_of, order.symbol, exchange_id, order.client_id, order.created_at
            ),
            f"fills of {order.client_id}",
            LOOKUP,
        )
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
            self._store.entry_fees(position.symbol) + sum((f.fee for f in fills), Decimal(0)),
            self._store.funding_total(position.symbol, position.opened_at),
            self.currency,
            position.stop_loss,
            position.take_profit,
        )
        with self._store.transaction():
            self._store.record_trade(trade)
            self._store.remove_position(position.symbol)
            self._store.record_event(
                at,
                "trade",
                f"position closed: {reason}",
                position.symbol,
                pnl=str(trade.pnl),
                fees=str(trade.fees),
            )
        return trade

    async def _cancel_protection(self, symbol: str, keep: set[str] | None = None) -> None:
        """Cancel our resting stop/target orders on ``symbol`` (except client ids in ``keep``)."""
        for order in self._store.live_orders(symbol):
            if order.role not in (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT):
                continue
            if keep and order.client_id in keep:
                continue
            cid = order.client_id
            try:  # cancelling is idempotent: a lost answer is simply asked again
                cancel = partial(self._venue.cancel, symbol, cid, conditional=True)
                await self._patiently(cancel, f"cancel {cid}", SEND)
            except RetryableError as e:  # the lookup below says what happened
                log.warning("cancel not confirmed", client_id=cid, error=str(e))
            found = await self._lookup(symbol, cid, conditional=True)
            state = found.state if found else OrderState.CANCELED
            if state is OrderState.OPEN:
                log.warning("protective order still open after cancel", client_id=order.client_id)
                continue
            if found is not None:
                self._apply(order, found)
            else:
                self._update(order, OrderState.CANCELED, "gone from the venue")

    @staticmethod
    def _with_exits(position: Position, stop: Decimal, take: Decimal) -> Position:
        return replace(position, stop_loss=stop, take_profit=take)
