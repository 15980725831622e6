"""The account's executions in the live broker's books: ours whose booking a crash cut short,
a person's found when a position differs, and a person's round trip that leaves no difference.

Every fill on the account moves its balance, so the books record every one of them — whoever
placed the order — and book each closing one in a trade (README: Protection): the database's
ledger then equals the exchange's wallet, and realised PnL equals what the trades say.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from tbotd.domain.enums import OrderRole, OrderSide, Side
from tbotd.domain.errors import StorageUnavailableError
from tbotd.domain.orders import Fill, Order
from tbotd.domain.positions import Position
from tbotd.execution.broker import record_trade
from tbotd.execution.live_protect import LiveProtection
from tbotd.execution.reconcile import RoundTrip, closed_before, outside_round_trip
from tbotd.store import Trade

ADOPT_LOOKBACK = timedelta(days=2)  # how far back a position's hand-made fills are looked for
UNEXPLAINED_AFTER = timedelta(hours=1)  # how long fills that do not net may wait for a reason


class LiveFills(LiveProtection):
    """Recording the venue's fills that the order flow did not (a mixin of the live broker)."""

    _swept: dict[str, datetime]  # symbol → every outside fill before this time is in the books

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
                if order.role is OrderRole.ENTRY and not self._booked_after(order):
                    self._entry_found(order)  # its stop or target may have closed it since

    def _booked_after(self, entry: Order) -> bool:
        """Whether a trade opened at or after ``entry`` was sent is already in the books."""
        return any(t.entry_time >= entry.created_at for t in self._store.trades(entry.symbol))

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
        with self._recording():
            self._store.save_position(position, self._clock.now())

    async def _venue_fills(self, symbol: str, since: datetime) -> list[Fill]:
        """The venue's executions on ``symbol`` since ``since`` that we never recorded (a
        person's, or ours while the database could not be written), now recorded."""
        _, unrecorded = await self._unrecorded_fills(symbol, since)
        new = []
        for exchange_id, fill in unrecorded:
            order = self._store.order_by_exchange_id(exchange_id)
            new.append(fill if order is None else replace(fill, client_order_id=order.client_id))
        with self._recording():
            self._store.record_fills(new)
        return new

    async def _unrecorded_fills(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> tuple[list[tuple[str, Fill]], list[tuple[str, Fill]]]:
        """The venue's executions on ``symbol`` since ``since`` (with their exchange order ids),
        and those of them the books do not have yet."""
        until = until or self._clock.now()
        found: list[tuple[str, Fill]] = await self._idempotent(
            partial(self._venue.fills_since, symbol, since, until), f"fills {symbol}"
        )
        known = self._store.known_trade_ids(symbol, (fill.trade_id for _, fill in found))
        return found, [(eid, fill) for eid, fill in found if fill.trade_id not in known]

    async def sweep_fills(self, symbol: str) -> None:
        """Book a person's round trip on ``symbol`` that no position difference revealed.

        Called by reconciliation (every symbol lock held) where our books and the venue are
        both flat: then none of our orders can be filling, and every unrecorded fill since the
        last sweep is someone else's. Fills that do not add up to nothing are a position
        change that adopting or dropping records; the sweep waits for them.
        """
        since, until = self._sweep_start(symbol), self._clock.now()
        _, unrecorded = await self._unrecorded_fills(symbol, since, until)
        outside = [
            fill
            for exchange_id, fill in unrecorded
            if self._store.order_by_exchange_id(exchange_id) is None
        ]
        trips = closed_before(outside)  # from the oldest on, what adds up to nothing
        trip = outside_round_trip(trips)
        if trip is not None and not self._book_round_trip(symbol, trip):
            return  # the database refused: the next sweep books it
        rest = [f for f in outside if f not in trips]
        if rest:
            oldest = min(f.time for f in rest)
            if until - oldest < UNEXPLAINED_AFTER:
                self._swept[symbol] = oldest  # a change in progress: adopting or dropping books it
                return
            if not self._record_unexplained(symbol, rest):
                return
        self._swept[symbol] = until  # searched to here: the next sweep starts here

    def _sweep_start(self, symbol: str) -> datetime:
        """Where the next sweep of ``symbol`` starts: every outside fill before it is booked."""
        return self._swept.get(symbol) or self._first_sweep(symbol)

    def _trips_before(self, symbol: str, fills: list[Fill], start: datetime) -> None:
        """A person's round trips among the fills that adopting their position recorded (bought
        and sold, then bought again, between two reconciliations): booked as the sweep would
        have, from ``start`` (the sweep's; a new database starts its books when it starts)."""
        trip = outside_round_trip(closed_before(f for f in fills if f.time >= start))
        if trip is not None:
            self._book_round_trip(symbol, trip)

    def _record_unexplained(self, symbol: str, fills: list[Fill]) -> bool:
        """Fills that neither a position change nor a round trip explains after an hour (half of a
        trip that began before our books did, an execution of ours under an id we do not know):
        recorded so that the books show them, said loudly, and no longer waited for — waiting
        would keep every later round trip on the symbol out of the books. False: not written."""
        try:
            with self._store.transaction():
                self._store.record_fills(fills)
        except StorageUnavailableError:
            return False
        net = sum((f.qty if f.side is OrderSide.BUY else -f.qty for f in fills), Decimal(0))
        self._event(
            "fills-unexplained",
            f"{len(fills)} fill(s) on the venue (net {net}) that no position change or round "
            "trip explains: recorded, not booked in a trade — check the account's history",
            symbol,
            trade_ids=[f.trade_id for f in fills],
        )
        return True

    def _first_sweep(self, symbol: str) -> datetime:
        """Our newest fill on ``symbol``; a database without any starts its books now."""
        newest = self._store.newest_fill_time(symbol)
        return self._clock.now() if newest is None else newest

    def _book_round_trip(self, symbol: str, trip: RoundTrip) -> bool:
        """Its fills and its trade in one transaction; False when the database refused."""
        trade = Trade(
            symbol, trip.side, trip.qty, trip.fills[0].time, trip.fills[-1].time,
            trip.entry_price, trip.exit_price, "external", trip.pnl, trip.fees,
            Decimal(0), self.currency,
        )  # fmt: skip
        try:
            with self._store.transaction():
                self._store.record_fills(trip.fills)
                self._store.record_trade(trade)
                record_trade(self._store, trade.exit_time, trade)
        except StorageUnavailableError:
            return False
        self._event(
            "round-trip-by-hand",
            f"{trip.side} {trip.qty} opened and closed on the venue by someone else "
            f"(realised {trip.pnl}, fees {trip.fees}); booked as an external trade",
            symbol,
            fills=len(trip.fills),
        )
        return True
