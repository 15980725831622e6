"""The dashboard's reads: its own read-only SQLite connection, used by one worker thread.

The cycle writes through the store's connection on the event loop; the page's questions go to
a second, read-only connection in a single worker thread (WAL lets it read while the cycle
writes), so a page — or twenty — never runs a query on the loop, and their queries queue behind
each other instead of multiplying. Each question is one short read transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tbotd.ops.dashboard import shape

T = TypeVar("T")
MAX_BARS = 1200  # candles per chart answer (≈ 70 KB of JSON)
MAX_EQUITY_POINTS = 1000
ROWS = 200  # trades, events


class Reader:
    """Read-only questions about one database, answered off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-db")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    async def run(self, question: Callable[[sqlite3.Connection], T]) -> T:
        """Answer ``question`` in the worker thread, inside one read transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._answer, question)

    def _answer(self, question: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 2000")
        conn = self._conn
        conn.execute("BEGIN")
        try:
            return question(conn)
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (in its thread) and stop the worker; safe to call twice."""
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._pool.submit(close).result()
        self._pool.shutdown(wait=True)


def rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """A query's rows as dicts."""
    return [dict(r) for r in conn.execute(sql, params)]


def latest_per_symbol(conn: sqlite3.Connection, table: str) -> dict[str, dict[str, Any]]:
    """The newest row per symbol of ``predictions`` or ``decisions`` (by candle time)."""
    if table not in ("predictions", "decisions"):
        raise ValueError(table)
    found = rows(
        conn,
        f"SELECT * FROM {table} p WHERE candle_time = "  # noqa: S608 - a fixed table name
        f"(SELECT MAX(candle_time) FROM {table} q WHERE q.symbol = p.symbol)",
    )
    return {r["symbol"]: r for r in found}


def holdings(conn: sqlite3.Connection) -> dict[str, Any]:
    """Open positions, live orders, the newest equity and the last reconciliation event."""
    positions = rows(conn, "SELECT * FROM positions ORDER BY symbol")
    orders = rows(
        conn,
        "SELECT client_id, symbol, role, type, side, qty, state, price, trigger_price, "
        "created_at FROM orders INDEXED BY orders_live "
        "WHERE state NOT IN ('filled', 'canceled', 'rejected', 'expired') ORDER BY created_at",
    )
    equity = rows(conn, "SELECT * FROM equity ORDER BY time DESC LIMIT 1")
    reconciled = rows(
        conn,
        "SELECT time, kind, symbol, message FROM events WHERE kind IN "
        "('reconcile', 'adopt', 'position-gone', 'orphan', 'stale-order', 'imported', "
        "'fills-recovered', 'protect', 'protected') ORDER BY id DESC LIMIT 1",
    )
    return {
        "positions": positions,
        "orders": orders,
        "equity": equity[0] if equity else None,
        "last_reconciliation_event": reconciled[0] if reconciled else None,
    }


def chart(conn: sqlite3.Connection, symbol: str, timeframe: str, since_ms: int) -> dict[str, Any]:
    """Closed candles since ``since_ms`` (down-sampled), entries and exits with the decision's
    provenance, the open position's protective levels and the predictions' ``sd`` band."""
    candles = conn.execute(
        "SELECT open_time, open, high, low, close FROM candles WHERE symbol = ? AND "
        "timeframe = ? AND open_time >= ? ORDER BY open_time",
        (symbol, timeframe, since_ms),
    ).fetchall()
    bars = [(t // 1000, float(o), float(h), float(lo), float(c)) for t, o, h, lo, c in candles]
    sampled = shape.downsample_bars(bars, MAX_BARS)
    step = max(1, -(-len(bars) // MAX_BARS))
    band = conn.execute(
        "SELECT p.candle_time, p.sd, c.close FROM predictions p JOIN candles c ON "
        "c.symbol = p.symbol AND c.timeframe = ? AND c.open_time = p.candle_time "
        "WHERE p.symbol = ? AND p.candle_time >= ? AND p.sd IS NOT NULL ORDER BY p.candle_time",
        (timeframe, symbol, since_ms),
    ).fetchall()
    sd_band = [(t // 1000, float(c) * (1 - sd), float(c) * (1 + sd)) for t, sd, c in band[::step]]
    entries = rows(
        conn,
        "SELECT o.created_at AS time, o.side, o.avg_fill_price AS price, d.provenance "
        "FROM orders o LEFT JOIN decisions d ON d.id = o.decision_id WHERE o.symbol = ? AND "
        "o.role = 'entry' AND o.state = 'filled' AND o.created_at >= ? ORDER BY o.created_at",
        (symbol, since_ms),
    )
    exits = rows(
        conn,
        "SELECT exit_time AS time, side, exit_price AS price, exit_reason, pnl FROM trades "
        "WHERE symbol = ? AND exit_time >= ? ORDER BY exit_time",
        (symbol, since_ms),
    )
    position = rows(conn, "SELECT * FROM positions WHERE symbol = ?", (symbol,))
    protective = rows(
        conn,
        "SELECT role, side, qty, trigger_price, state FROM orders INDEXED BY orders_live "
        "WHERE state NOT IN ('filled', 'canceled', 'rejected', 'expired') AND symbol = ? "
        "AND role IN ('stop_loss', 'take_profit') ORDER BY created_at",
        (symbol,),
    )
    return {
        "symbol": symbol,
        "bars_total": len(bars),
        "bucket": step,
        "candles": sampled,
        "sd_band": sd_band,
        "entries": entries,
        "exits": exits,
        "position": position[0] if position else None,
        "protective_orders": protective,
    }


def last_candle_ms(conn: sqlite3.Connection, symbol: str, timeframe: str) -> int | None:
    """The newest stored candle's open time."""
    row = conn.execute(
        "SELECT MAX(open_time) FROM candles WHERE symbol = ? AND timeframe = ?",
        (symbol, timeframe),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def equity(conn: sqlite3.Connection) -> dict[str, Any]:
    """The equity curve (down-sampled, troughs kept) and its drawdown."""
    found = conn.execute("SELECT time, equity FROM equity ORDER BY time")
    points = [(t // 1000, float(e)) for t, e in found]
    curve = shape.downsample_line(points, MAX_EQUITY_POINTS)
    return {
        "points_total": len(points),
        "equity": curve,
        "drawdown_pct": shape.drawdown(curve),
        "max_drawdown_pct": min((d for _, d in shape.drawdown(points)), default=0.0),
        "classic_only": shape.missing(shape.Missing.COUNTERFACTUAL_NOT_RECORDED),
    }


def trades(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The newest closed trades, newest first."""
    return rows(
        conn,
        "SELECT symbol, side, qty, entry_time, exit_time, entry_price, exit_price, "
        "exit_reason, pnl, fees, funding, currency FROM trades ORDER BY exit_time DESC LIMIT ?",
        (ROWS,),
    )


def events(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The newest events (with their data), newest first."""
    return rows(conn, "SELECT * FROM events ORDER BY id DESC LIMIT ?", (ROWS,))
