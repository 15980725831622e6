"""Recording the trading side: orders with their state history, fills and open positions.

The order intent is inserted *before* the request is sent (ARCHITECTURE: orders); every later state
change is an update plus an ``order_events`` row, in one transaction, so the history can be
replayed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlite_utils

from tbotd.domain.enums import OrderRole, OrderSide, OrderType, Side
from tbotd.domain.orders import Fill, Order, OrderState
from tbotd.domain.positions import Position
from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.store.db import dec, undec

# Live orders come from the ``orders_live`` partial index, named (the planner would otherwise pick
# the symbol index and scan every order of the symbol), with its own WHERE term repeated verbatim
# (SQLite reads a partial index only then): a cycle's cost must not grow with the order history.
_LIVE_ORDERS = (
    "SELECT * FROM orders INDEXED BY orders_live"
    " WHERE state NOT IN ('filled', 'canceled', 'rejected', 'expired')"
)


class TradingRecords:
    """Mixin of :class:`tbotd.store.Store` for orders, fills and positions."""

    db: sqlite_utils.Database

    def record_order_intent(self, order: Order, decision_id: int | None = None) -> None:
        """Insert a new order (state PENDING) before it is sent; the client id must be new."""
        with self.db.atomic():
            self.db.execute(
                """INSERT INTO orders (client_id, symbol, side, type, role, qty, state, price,
                       trigger_price, reduce_only, close_position, exchange_id, filled_qty,
                       avg_fill_price, created_at, updated_at, reason, decision_id)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    order.client_id,
                    order.symbol,
                    order.side.value,
                    order.type.value,
                    order.role.value,
                    dec(order.qty),
                    order.state.value,
                    dec(order.price),
                    dec(order.trigger_price),
                    int(order.reduce_only),
                    int(order.close_position),
                    order.exchange_id,
                    dec(order.filled_qty),
                    dec(order.avg_fill_price),
                    datetime_to_ms(order.created_at),
                    None if order.updated_at is None else datetime_to_ms(order.updated_at),
                    order.reason,
                    decision_id,
                ),
            )
            self._order_event(order, order.created_at, "intent")

    def update_order(self, order: Order, detail: str = "", insert_missing: bool = False) -> None:
        """Persist an order's new state (from :meth:`Order.transition`) and log the change.

        ``insert_missing``: an order whose intent could not be recorded (the database refused
        the write; protection was sent anyway) is recorded now, as it stands.
        """
        at = order.updated_at or order.created_at
        if insert_missing and self.order(order.client_id) is None:
            with self.db.atomic():
                self.record_order_intent(replace(order, state=OrderState.PENDING))
                self._set_state(order, at, detail)
            return
        with self.db.atomic():
            self._set_state(order, at, detail)

    def _set_state(self, order: Order, at: datetime, detail: str) -> None:
        cursor = self.db.execute(
            """UPDATE orders SET state = ?, exchange_id = ?, filled_qty = ?,
                   avg_fill_price = ?, updated_at = ?, reason = ?, qty = ?
               WHERE client_id = ?""",
            (
                order.state.value,
                order.exchange_id,
                dec(order.filled_qty),
                dec(order.avg_fill_price),
                datetime_to_ms(at),
                order.reason,
                dec(order.qty),
                order.client_id,
            ),
        )
        if cursor.rowcount != 1:
            raise KeyError(f"order {order.client_id} was never recorded")
        self._order_event(order, at, detail)

    def _order_event(self, order: Order, at: datetime, detail: str) -> None:
        self.db.execute(
            "INSERT INTO order_events (client_id, state, at, detail) VALUES (?,?,?,?)",
            (order.client_id, order.state.value, datetime_to_ms(at), detail),
        )

    def order(self, client_id: str) -> Order | None:
        """The order with this client id, or None."""
        rows = list(self.db.query("SELECT * FROM orders WHERE client_id = ?", (client_id,)))
        return _order(rows[0]) if rows else None

    def live_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders not yet in a terminal state (including PENDING and UNKNOWN ones)."""
        sql = _LIVE_ORDERS
        params: list[Any] = []
        if symbol is not None:
            sql += " AND symbol = ?"
            params.append(symbol)
        return [_order(r) for r in self.db.query(sql + " ORDER BY created_at, client_id", params)]

    def orders(self, symbol: str | None = None) -> list[Order]:
        """All orders, oldest first."""
        if symbol is None:
            rows = self.db.query("SELECT * FROM orders ORDER BY created_at, client_id")
        else:
            rows = self.db.query(
                "SELECT * FROM orders WHERE symbol = ? ORDER BY created_at, client_id", (symbol,)
            )
        return [_order(r) for r in rows]

    def order_count(self, symbol: str, role: OrderRole) -> int:
        """How many orders of ``role`` were ever recorded on ``symbol`` (numbers the next one).

        Indexed: the cost does not grow with the history, as scanning :meth:`orders` would.
        """
        row = self.db.execute(
            "SELECT COUNT(*) FROM orders WHERE symbol = ? AND role = ?", (symbol, role.value)
        ).fetchone()
        return int(row[0])

    def closing_orders(self, symbol: str, since: datetime) -> list[Order]:
        """Filled exits, stops and targets on ``symbol`` updated at or after ``since``."""
        rows = self.db.query(
            """SELECT * FROM orders WHERE symbol = ? AND role != 'entry' AND state = 'filled'
                 AND COALESCE(updated_at, created_at) >= ? ORDER BY created_at, client_id""",
            (symbol, datetime_to_ms(since)),
        )
        return [_order(r) for r in rows]

    def orders_by_id(self, client_ids: Iterable[str]) -> list[Order]:
        """The recorded orders among ``client_ids`` (unknown ids are left out)."""
        found = []
        for client_id in client_ids:
            order = self.order(client_id)
            if order is not None:
                found.append(order)
        return found

    def order_by_exchange_id(self, exchange_id: str) -> Order | None:
        """Our order the venue numbered ``exchange_id`` (a rare question: no index)."""
        rows = list(self.db.query("SELECT * FROM orders WHERE exchange_id = ?", (exchange_id,)))
        return _order(rows[0]) if rows else None

    def traded_symbols(self) -> frozenset[str]:
        """Symbols this database ever recorded an order for (an empty database has none)."""
        rows = self.db.execute("SELECT DISTINCT symbol FROM orders").fetchall()
        return frozenset(r[0] for r in rows)

    def fill_count(self) -> int:
        """How many fills are recorded."""
        return int(self.db.execute("SELECT COUNT(*) FROM fills").fetchone()[0])

    def order_history(self, client_id: str) -> list[tuple[OrderState, datetime, str]]:
        """Every state an order went through, in order."""
        rows = self.db.query(
            "SELECT state, at, detail FROM order_events WHERE client_id = ? ORDER BY id",
            (client_id,),
        )
        return [(OrderState(r["state"]), ms_to_datetime(r["at"]), r["detail"]) for r in rows]

    def record_fill(self, fill: Fill) -> bool:
        """Record an execution once; returns False when it was already known."""
        cursor = self.db.execute(
            """INSERT OR IGNORE INTO fills (symbol, trade_id, client_order_id, side, qty, price,
                   fee, fee_currency, realized_pnl, time) VALUES (?,?,?,?,?,?,?,?,?,?)""",
            (
                fill.symbol,
                fill.trade_id,
                fill.client_order_id,
                fill.side.value,
                dec(fill.qty),
                dec(fill.price),
                dec(fill.fee),
                fill.fee_currency,
                dec(fill.realized_pnl),
                datetime_to_ms(fill.time),
            ),
        )
        return cursor.rowcount == 1

    def fills(self, symbol: str | None = None) -> list[Fill]:
        """Recorded fills, oldest first."""
        if symbol is None:
            return self._fills("", ())
        return self._fills(" WHERE symbol = ?", (symbol,))

    def known_trade_ids(self, symbol: str, trade_ids: Iterable[str]) -> set[str]:
        """Which of ``symbol``'s ``trade_ids`` are recorded (by the primary key, not a scan)."""
        ids = list(trade_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # below SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT trade_id FROM fills WHERE symbol = ? AND trade_id IN ({marks})"  # noqa: S608 - only marks
            found.update(r[0] for r in self.db.execute(sql, [symbol, *chunk]))
        return found

    def newest_fill_time(self, symbol: str) -> datetime | None:
        """When ``symbol``'s newest recorded fill happened (venue time), if any."""
        row = self.db.execute("SELECT MAX(time) FROM fills WHERE symbol = ?", (symbol,)).fetchone()
        return None if row[0] is None else ms_to_datetime(row[0])

    def fills_of(self, client_order_id: str) -> list[Fill]:
        """Fills of one order (by the ``fills_order`` index)."""
        return self._fills(" WHERE client_order_id = ?", (client_order_id,))

    def _fills(self, where: str, params: tuple[str, ...]) -> list[Fill]:
        sql = "SELECT * FROM fills" + where  # noqa: S608 - constant text, values bound
        return [
            Fill(
                r["trade_id"],
                r["client_order_id"],
                r["symbol"],
                OrderSide(r["side"]),
                Decimal(r["qty"]),
                Decimal(r["price"]),
                Decimal(r["fee"]),
                r["fee_currency"],
                ms_to_datetime(r["time"]),
                Decimal(r["realized_pnl"]),
            )
            for r in self.db.query(sql + " ORDER BY time, trade_id", params)
        ]

    def filled_without_fills(self) -> list[Order]:
        """Orders stored as (partly) filled whose executions were never recorded.

        A crash between storing an order's new state and fetching its fills leaves these; the
        live broker's recovery fetches the missing fills.
        """
        rows = self.db.query(
            """SELECT * FROM orders o WHERE state IN ('filled', 'partially_filled')
                 AND NOT EXISTS (SELECT 1 FROM fills f WHERE f.client_order_id = o.client_id)
               ORDER BY created_at, client_id"""
        )
        return [_order(r) for r in rows]

    def latest_entry(self, symbol: str) -> Order | None:
        """The latest filled entry order of ``symbol``."""
        rows = list(
            self.db.query(
                "SELECT * FROM orders WHERE symbol = ? AND role = 'entry' AND state = 'filled'"
                " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (symbol,),
            )
        )
        return _order(rows[0]) if rows else None

    def entry_fees(self, symbol: str) -> Decimal:
        """Fees paid by the fills of the latest filled entry of ``symbol`` (for the trade row)."""
        entry = self.latest_entry(symbol)
        if entry is None:
            return Decimal(0)
        return sum((f.fee for f in self.fills_of(entry.client_id)), Decimal(0))

    def save_position(self, position: Position, at: datetime) -> None:
        """Insert or replace the open position of ``position.symbol``."""
        self.db.execute(
            "INSERT OR REPLACE INTO positions VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                position.symbol,
                position.side.value,
                dec(position.qty),
                dec(position.entry_price),
                datetime_to_ms(position.opened_at),
                dec(position.stop_loss),
                dec(position.take_profit),
                dec(position.leverage),
                dec(position.liquidation_price),
                datetime_to_ms(at),
            ),
        )

    def remove_position(self, symbol: str) -> None:
        """Forget the position of ``symbol`` (it was closed)."""
        self.db.execute("DELETE FROM positions WHERE symbol = ?", (symbol,))

    def positions(self) -> dict[str, Position]:
        """Open positions by symbol."""
        return {
            r["symbol"]: Position(
                r["symbol"],
                Side(r["side"]),
                Decimal(r["qty"]),
                Decimal(r["entry_price"]),
                ms_to_datetime(r["opened_at"]),
                undec(r["stop_loss"]),
                undec(r["take_profit"]),
                Decimal(r["leverage"]),
                undec(r["liquidation_price"]),
            )
            for r in self.db.query("SELECT * FROM positions ORDER BY symbol")
        }

    def record_fills(self, fills: Iterable[Fill]) -> int:
        """Record several fills in one transaction; returns how many were new."""
        with self.db.atomic():
            return sum(self.record_fill(f) for f in fills)


def _order(r: dict[str, Any]) -> Order:
    return Order(
        client_id=r["client_id"],
        symbol=r["symbol"],
        side=OrderSide(r["side"]),
        type=OrderType(r["type"]),
        role=OrderRole(r["role"]),
        qty=Decimal(r["qty"]),
        created_at=ms_to_datetime(r["created_at"]),
        state=OrderState(r["state"]),
        price=undec(r["price"]),
        trigger_price=undec(r["trigger_price"]),
        reduce_only=bool(r["reduce_only"]),
        close_position=bool(r["close_position"]),
        exchange_id=r["exchange_id"],
        filled_qty=Decimal(r["filled_qty"]),
        avg_fill_price=undec(r["avg_fill_price"]),
        updated_at=None if r["updated_at"] is None else ms_to_datetime(r["updated_at"]),
        reason=r["reason"],
    )
