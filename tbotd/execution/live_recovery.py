"""Recovery and synchronisation of the live broker: startup is recovery (ARCHITECTURE: orders;
README: Protection).

:meth:`LiveRecovery.reconcile_symbols` takes snapshots (our orders and positions; the venue's
open orders, positions, leverage and margin mode), asks the pure functions of
:mod:`tbotd.execution.reconcile` what differs, and applies each fix, writing an event for every
difference. :meth:`LiveRecovery.sync` settles a stop or target that fired (cancelling its
sibling) and records funding. A position changed by hand is adopted with the venue's fills
recorded, so what was closed by hand is booked with its real PnL, and then protected for its
whole quantity; a symbol another tbotd (or a person's opening orders) works is suspended.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from tbotd.domain.enums import OrderRole, OrderSide, Side
from tbotd.domain.orders import Fill, OrderState, id_role
from tbotd.domain.positions import Position
from tbotd.domain.values import datetime_to_ms
from tbotd.execution.live_fills import ADOPT_LOOKBACK, LiveFills
from tbotd.execution.live_orders import SEND
from tbotd.execution.orders import new_order
from tbotd.execution.protection import VenueOrder, VenuePosition
from tbotd.execution.reconcile import (
    AdoptPosition,
    Books,
    CancelOrphan,
    CancelStale,
    DropPosition,
    Fix,
    ImportOrder,
    Ownership,
    Protect,
    ReportUnknown,
    ResolveOrder,
    Suspend,
    classify,
    reconcile_orders,
    reconcile_positions,
)
from tbotd.execution.venue_answers import SymbolSettings
from tbotd.ops.logs import get_logger

log = get_logger(__name__)
_PROTECTIVE = (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT)


class LiveRecovery(LiveFills):
    """Reconciliation and protective-order settlement for the live broker."""

    suspended: dict[str, str]  # symbol → why another trader's orders stop our entries there
    _reported: set[str]  # manual orders already reported

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
        with self._recording():
            for payment in payments:
                self._store.record_funding(payment)

    async def reconcile_symbols(self, symbols: list[str]) -> int:
        """Orders first (resolve what we sent), then positions, protection and settings."""
        fixes = 0
        venue_open = await self._open_orders(symbols)
        for fix in reconcile_orders(self._store.live_orders(), venue_open, self._tag):
            fixes += 1
            if isinstance(fix, ResolveOrder):
                await self._resolve(fix)
            else:
                self._import(fix)
        await self._recover_fills()
        for symbol in symbols:
            await self.sync(symbol)
        positions, settings = await self._idempotent(
            partial(self._venue.account, symbols), "positions"
        )
        venue_open = await self._open_orders(symbols)
        found = self.position_fixes(symbols, positions, venue_open)
        for change in found:
            fixes += await self._apply_fix(change, venue_open)
        suspended = {f.symbol for f in found if isinstance(f, Suspend)}
        for symbol in symbols:
            if symbol not in suspended:
                self._lift(symbol)
            if not ({symbol} & (suspended | set(positions) | set(self._store.positions()))):
                await self.sweep_fills(symbol)
            await self.check_settings(
                symbol, settings.get(symbol, SymbolSettings(None, None)), symbol not in positions
            )
        if fixes:
            log.warning("reconciled", fixes=fixes)
        return fixes

    def position_fixes(
        self,
        symbols: list[str],
        positions: dict[str, VenuePosition],
        venue_open: list[VenueOrder],
    ) -> list[Fix]:
        """What differs between our books and this venue snapshot (pure, see reconcile.py)."""
        known = {o.client_id for o in self._store.orders_by_id(o.client_id for o in venue_open)}
        books = Books(
            self._store.positions(),
            frozenset(known),
            self._tag,
            self.traded(),
            datetime_to_ms(self._clock.now()),
        )
        bounds = {s: self.stop_bounds(s) for s in symbols}
        return reconcile_positions(books, positions, venue_open, bounds)

    async def _apply_fix(self, change: Fix, venue_open: list[VenueOrder]) -> int:
        """Carry out one position fix; returns 1 when something was changed or reported."""
        if isinstance(change, Suspend):
            self._suspend(change)
            return 0
        if isinstance(change, AdoptPosition):
            await self._adopt(change)
        elif isinstance(change, DropPosition):
            await self._drop(change)
        elif isinstance(change, Protect):
            # The snapshots are moments apart: a stop or target may have just fired.
            await self.sync(change.symbol, funding=False)
            venue = await self._idempotent(
                partial(self._venue.positions, [change.symbol]), "positions"
            )
            if change.symbol not in venue:
                return 1
            mine = [o for o in venue_open if o.symbol == change.symbol and self._mine(o)]
            await self.repair(replace(change, position=venue[change.symbol]), mine)
        elif isinstance(change, CancelOrphan | CancelStale):
            await self._cancel_order(change)
        elif isinstance(change, ReportUnknown):
            if change.order.client_id in self._reported:
                return 0
            self._reported.add(change.order.client_id)
            self._event(
                "unknown-order",
                f"open order {change.order.client_id} is not ours",
                change.order.symbol,
            )
        return 1

    def _mine(self, order: VenueOrder) -> bool:
        return classify(order, lambda c: self._store.order(c) is not None, self._tag) is (
            Ownership.OURS
        )

    async def _cancel_order(self, change: CancelOrphan | CancelStale) -> None:
        order = change.order
        cancel = partial(self._venue.cancel, order.symbol, order.client_id, order.conditional)
        await self._patiently(cancel, f"cancel {order.client_id}", SEND)
        if isinstance(change, CancelStale):
            self._event(
                "stale-order",
                f"cancelled {order.client_id}: a reduce-only order nothing of ours needs "
                "(left by a lost database, or by hand)",
                order.symbol,
            )
            return
        self._event("orphan", f"cancelled {order.client_id}", order.symbol)
        await self._resolve(ResolveOrder(order.client_id, order.symbol, conditional=True))

    def _suspend(self, fix: Suspend) -> None:
        ids = ", ".join(sorted(o.client_id for o in fix.orders))
        why = (
            f"orders of another trader on {fix.symbol} ({ids}): another tbotd on this account, "
            "a lost database's orders, or a person's; new entries stop until they are gone "
            "(run one daemon per account, or use sub-accounts)"
        )
        if self.suspended.get(fix.symbol) == why:
            return
        self.suspended[fix.symbol] = why
        self._event("alert", why, fix.symbol, kind_detail="suspended")

    def _lift(self, symbol: str) -> None:
        if self.suspended.pop(symbol, None) is not None:
            self._event("resumed", "no other trader's orders on the symbol any more", symbol)

    async def _open_orders(self, symbols: list[str]) -> list[VenueOrder]:
        return await self._idempotent(partial(self._venue.open_orders, symbols), "open orders")

    async def _adopt(self, fix: AdoptPosition) -> None:
        """The venue's position replaces ours: a hand change, its fills recorded and any part
        it closed booked as a trade, before the position is protected for its whole size."""
        ours, theirs = fix.ours, fix.position
        now, start = self._clock.now(), self._sweep_start(theirs.symbol)
        fills = await self._venue_fills(
            theirs.symbol, ours.opened_at if ours is not None else now - ADOPT_LOOKBACK
        )
        if ours is not None:
            closing = [f for f in fills if f.side is ours.side.exit_order_side]
            if closing:
                closed = ours.qty if ours.side is not theirs.side else ours.qty - theirs.qty
                self._finish_part(ours, closing, closed)
        else:
            self._trips_before(theirs.symbol, fills, start)
        keep = ours is not None and ours.side is theirs.side
        position = Position(
            theirs.symbol,
            theirs.side,
            theirs.qty,
            theirs.entry_price,
            ours.opened_at if ours is not None and keep else now,
            ours.stop_loss if ours is not None and keep else None,
            ours.take_profit if ours is not None and keep else None,
            Decimal(self._leverage),
            theirs.liquidation_price,
        )
        with self._recording():
            self._store.save_position(position, now)
        self._event(
            "adopt",
            f"venue position {theirs.side} {theirs.qty} adopted",
            theirs.symbol,
            ours=None if ours is None else f"{ours.side} {ours.qty}",
            fills=len(fills),
        )

    async def _drop(self, fix: DropPosition) -> None:
        # The snapshots are moments apart: a stop or target may have just fired. Settle that
        # first; only a position still recorded after it is dropped.
        await self.sync(fix.symbol, funding=False)
        ours = self._store.positions().get(fix.symbol)
        if ours is None:
            return
        fills, reason = self._closing_fills(ours)
        if not fills:  # closed by hand: the venue's own fills say at what price
            fills = [
                f
                for f in await self._venue_fills(ours.symbol, ours.opened_at)
                if f.side is ours.side.exit_order_side
            ]
        self._event("position-gone", f"position closed on the venue ({reason})", fix.symbol)
        self._finish(ours, fills, reason)

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

    def _import(self, fix: ImportOrder) -> None:
        """Record an order of ours the venue holds but the database never heard of (sent while
        the database could not be written)."""
        venue = fix.order
        role = id_role(venue.client_id)
        if role is None or venue.side is None:
            return
        buys = venue.side is OrderSide.BUY
        opens = role is OrderRole.ENTRY  # entries buy a long; stops, targets and exits sell it
        side = Side.LONG if buys == opens else Side.SHORT
        order = new_order(
            self._instance, venue.symbol, side, role, venue.qty, self._clock.now(),
            self._clock.now(), trigger_price=venue.trigger_price,
        )  # fmt: skip
        order = replace(order, client_id=venue.client_id, exchange_id=venue.exchange_id)
        with self._recording():
            self._store.record_order_intent(order)
            self._store.update_order(
                order.transition(OrderState.OPEN, self._clock.now()), "imported from the venue"
            )
        self._event("imported", f"{venue.client_id}: ours, placed while unrecorded", venue.symbol)
