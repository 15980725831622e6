"""Recovery and synchronisation of the live broker: startup is recovery (DESIGN §4).

:meth:`LiveRecovery._reconcile` takes snapshots (our orders and positions; the venue's open
orders and positions), asks the pure functions of :mod:`tbotd.execution.reconcile` what differs,
and applies each fix, writing an event for every difference. :meth:`LiveRecovery.sync` settles a
stop or target that fired (cancelling its sibling) and records funding.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from tbotd.domain.enums import OrderRole, OrderSide, Side
from tbotd.domain.orders import Fill, Order, OrderState
from tbotd.domain.positions import Position
from tbotd.execution.broker import protection_after_fill
from tbotd.execution.live_orders import SEND, LiveOrders
from tbotd.execution.reconcile import (
    AdoptPosition,
    CancelOrphan,
    DropPosition,
    Protect,
    ReportUnknown,
    ResolveOrder,
    VenueOrder,
    reconcile_orders,
    reconcile_positions,
)
from tbotd.ops.logs import get_logger
from tbotd.strategy.exits import ExitParams, Protection, fixed_exits

log = get_logger(__name__)
_PROTECTIVE = (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT)


class LiveRecovery(LiveOrders):
    """Reconciliation and protective-order settlement for the live broker."""

    async def _protect(
        self, position: Position, prices: Protection, candle_time: datetime
    ) -> set[str]:
        raise NotImplementedError  # provided by LiveBroker

    async def sync(
        self, symbol: str, still_open: set[str] | None = None, funding: bool = True
    ) -> None:
        """Settle a fired stop/target of ``symbol`` (cancel its sibling) and record funding.

        ``still_open``: client ids the venue just listed as open (no need to ask about them).
        """
        position = self._store.positions().get(symbol)
        for order in self._store.live_orders(symbol):
            if order.role not in _PROTECTIVE or order.state is not OrderState.OPEN:
                continue
            if still_open is not None and order.client_id in still_open:
                continue
            state = await self._lookup(symbol, order.client_id, conditional=True)
            if state is None or state.state is OrderState.OPEN:
                continue
            settled = self._apply(order, state)
            if settled.state is OrderState.FILLED and position is not None:
                fills = await self._record_fills(settled, state)
                self._finish(position, fills, settled.role.value)
                await self._cancel_protection(symbol)
                position = None
        if funding:
            await self._record_funding(symbol)

    async def _record_funding(self, symbol: str) -> None:
        rows = self._store.query("SELECT MAX(time) AS t FROM funding WHERE symbol = ?", (symbol,))
        last = rows[0]["t"] if rows and rows[0]["t"] is not None else None
        since = (
            self._clock.now() - timedelta(days=2)
            if last is None
            else datetime.fromtimestamp(last / 1000 + 1, self._clock.now().tzinfo)
        )
        payments = await self._idempotent(
            partial(self._venue.funding_since, symbol, since, self.currency), f"funding {symbol}"
        )
        for payment in payments:
            self._store.record_funding(payment)

    async def _reconcile(self, symbols: list[str], fallback: ExitParams) -> int:
        """Orders first (resolve what we sent), then positions and their protection."""
        fixes = 0
        venue_open = await self._open_orders(symbols)
        for fix in reconcile_orders(self._store.live_orders(), venue_open):
            fixes += 1
            if isinstance(fix, ResolveOrder):
                await self._resolve(fix)
            elif isinstance(fix, ReportUnknown):
                self._event(
                    "unknown-order",
                    f"open order {fix.order.client_id} is not ours",
                    fix.order.symbol,
                )
        await self._recover_fills()
        for symbol in symbols:
            await self.sync(symbol)
        venue_positions = await self._idempotent(
            partial(self._venue.positions, symbols), "positions"
        )
        venue_open = await self._open_orders(symbols)
        for change in reconcile_positions(
            self._store.positions(),
            venue_positions,
            self._store.orders_by_id(o.client_id for o in venue_open),
            venue_open,
        ):
            fixes += 1
            if isinstance(change, AdoptPosition):
                self._adopt(change)
            elif isinstance(change, DropPosition | Protect):
                # The snapshots are moments apart: a stop or target may have just fired.
                # Settle that first; only a position still recorded after it is dropped or
                # protected.
                await self.sync(change.symbol, funding=False)
                ours = self._store.positions().get(change.symbol)
                if ours is None:
                    continue
                if isinstance(change, Protect):
                    await self._restore_protection(change, fallback)
                    continue
                self._event(
                    "position-gone", "position closed on the venue while away", change.symbol
                )
                self._finish(ours, *self._closing_fills(ours))
            elif isinstance(change, CancelOrphan):
                orphan = change.order
                cancel = partial(
                    self._venue.cancel, orphan.symbol, orphan.client_id, orphan.conditional
                )
                await self._patiently(cancel, f"cancel {orphan.client_id}", SEND)
                self._event("orphan", f"cancelled {change.order.client_id}", change.order.symbol)
                await self._resolve(
                    ResolveOrder(change.order.client_id, change.order.symbol, conditional=True)
                )
        if fixes:
            log.warning("reconciled", fixes=fixes)
        return fixes

    async def _open_orders(self, symbols: list[str]) -> list[VenueOrder]:
        return await self._idempotent(partial(self._venue.open_orders, symbols), "open orders")

    async def _recover_fills(self) -> None:
        """Fetch the executions of orders stored as filled but never booked (a crash between
        the two writes): without them the balance, fees and the trade would be wrong."""
        for order in self._store.filled_without_fills():
            state = await self._lookup(order.symbol, order.client_id, order.type.is_conditional)
            if state is not None and state.filled_qty:
                fills = await self._record_fills(order, state)
                self._event(
                    "fills-recovered", f"{order.client_id}: {len(fills)} fill(s)", order.symbol
                )

    def _closing_fills(self, position: Position) -> tuple[list[Fill], str]:
        """The fills (and the reason) of the order of ours that closed ``position``, if any."""
        closers = self._store.closing_orders(position.symbol, position.opened_at)
        for order in reversed(closers):
            fills = self._store.fills_of(order.client_id)
            if fills:
                reason = "decision" if order.role is OrderRole.EXIT else order.role.value
                return fills, reason
        return [], "external"

    async def _resolve(self, fix: ResolveOrder) -> None:
        order = self._store.order(fix.client_id)
        if order is None:
            return
        state = await self._lookup(fix.symbol, fix.client_id, fix.conditional)
        if state is None:
            terminal = (
                OrderState.REJECTED
                if order.state in (OrderState.PENDING, OrderState.UNKNOWN)
                else OrderState.EXPIRED
            )
            self._update(order, terminal, "not found on the venue")
            self._event("resolved", f"{fix.client_id}: never reached the venue", fix.symbol)
            return
        order = self._apply(order, state)
        if order.state is OrderState.FILLED and not self._store.fills_of(order.client_id):
            await self._record_fills(order, state)
        self._event("resolved", f"{fix.client_id}: {order.state}", fix.symbol)
        if order.role is OrderRole.ENTRY and order.state is OrderState.FILLED:
            self._entry_found(order)

    def _entry_found(self, order: Order) -> None:
        """An entry filled while we were away: record the position (protected next)."""
        if order.symbol in self._store.positions() or order.avg_fill_price is None:
            return
        position = Position(
            order.symbol,
            Side.LONG if order.side is OrderSide.BUY else Side.SHORT,
            order.filled_qty,
            order.avg_fill_price,
            order.updated_at or order.created_at,
        )
        self._store.save_position(position, self._clock.now())

    def _adopt(self, fix: AdoptPosition) -> None:
        ours, theirs = fix.ours, fix.position
        keep = ours is not None and ours.side is theirs.side
        position = Position(
            theirs.symbol,
            theirs.side,
            theirs.qty,
            theirs.entry_price,
            ours.opened_at if ours is not None and keep else self._clock.now(),
            ours.stop_loss if ours is not None and keep else None,
            ours.take_profit if ours is not None and keep else None,
        )
        self._store.save_position(position, self._clock.now())
        self._event(
            "adopt",
            f"venue position {theirs.side} {theirs.qty} adopted",
            theirs.symbol,
            ours=None if ours is None else f"{ours.side} {ours.qty}",
        )

    async def _restore_protection(self, fix: Protect, fallback: ExitParams) -> None:
        position = self._store.positions()[fix.symbol]
        if position.stop_loss is not None and position.take_profit is not None:
            prices = Protection(position.stop_loss, position.take_profit)
        else:
            market = self._markets[fix.symbol]
            prices = protection_after_fill(
                fixed_exits(fallback), position.side, position.entry_price, market, fallback
            )
        await self._cancel_protection(fix.symbol)  # one complete pair, never a half
        self._event(
            "protect",
            "position found without full protection",
            fix.symbol,
            missing=[r.value for r in fix.missing],
        )
        await self._protect(position, prices, self._clock.now())

    def _event(self, kind: str, message: str, symbol: str | None = None, **data: object) -> None:
        self._store.record_event(self._clock.now(), kind, message, symbol, **data)
        log.warning(message, kind=kind, symbol=symbol, **data)
