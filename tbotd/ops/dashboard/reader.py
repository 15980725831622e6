"""The dashboard's reads: its own read-only SQLite connection, used by one worker thread.

The cycle writes through the store's connection on the event loop; the page's questions go to
a second, read-only connection in a single worker thread (WAL lets it read while the cycle
writes), so a page — or twenty — never runs a query on the loop, and their queries queue behind
each other instead of multiplying. Each question is one short read transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tbotd.domain.values import timeframe_delta
from tbotd.ops.dashboard import shape

T = TypeVar("T")
MAX_BARS = 1200  # candles per chart answer (≈ 70 KB of JSON)
MAX_EQUITY_POINTS = 1200
MAX_MARKERS = 300  # newest entries and exits each (a year holds thousands: unreadable anyway)
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
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
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


def timeframe_ms(timeframe: str) -> int:
    """A bar's length in milliseconds."""
    return int(timeframe_delta(timeframe).total_seconds() * 1000)


def rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """A query's rows as dicts."""
    return [dict(r) for r in conn.execute(sql, params)]


def latest_per_symbol(
    conn: sqlite3.Connection, table: str, symbols: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The newest row per symbol of ``predictions`` or ``decisions`` (by candle time): one
    index seek each, never a scan of a year of rows."""
    if table not in ("predictions", "decisions"):
        raise ValueError(table)
    found: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        newest = rows(
            conn,
            f"SELECT * FROM {table} WHERE symbol = ? "  # noqa: S608 - a fixed table name
            "ORDER BY candle_time DESC LIMIT 1",
            (symbol,),
        )
        if newest:
            found[symbol] = newest[0]
    return found


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


def bars(
    conn: sqlite3.Connection, symbol: str, timeframe: str, since_ms: int, bucket: int
) -> list[shape.Bar]:
    """Candles since ``since_ms`` merged per ``bucket`` ms inside SQLite (as
    :func:`~tbotd.ops.dashboard.shape.downsample_bars` defines): a year is 105,120 rows, and
    only the buckets cross into Python."""
    return [
        (t // 1000, float(o), h, lo, float(c))
        for t, o, h, lo, c in conn.execute(
            """WITH b AS (
                 SELECT MIN(open_time) AS t0, MAX(open_time) AS t1,
                        MAX(CAST(high AS REAL)) AS h, MIN(CAST(low AS REAL)) AS lo
                 FROM candles WHERE symbol = :s AND timeframe = :tf AND open_time >= :since
                 GROUP BY (open_time - :since) / :bucket)
               SELECT b.t0, f.open, b.h, b.lo, l.close FROM b
               JOIN candles f ON f.symbol = :s AND f.timeframe = :tf AND f.open_time = b.t0
               JOIN candles l ON l.symbol = :s AND l.timeframe = :tf AND l.open_time = b.t1
               ORDER BY b.t0""",
            {"s": symbol, "tf": timeframe, "since": since_ms, "bucket": bucket},
        )
    ]


def chart(
    conn: sqlite3.Connection, symbol: str, timeframe: str, since_ms: int, last_ms: int
) -> dict[str, Any]:
    """Closed candles since ``since_ms`` (down-sampled), entries and exits with the decision's
    provenance (the newest :data:`MAX_MARKERS` of each), the open position's protective levels
    and the predictions' ``sd`` band (one per bucket: its last candle's)."""
    step = timeframe_ms(timeframe)
    bucket = shape.bucket_ms(since_ms, last_ms, step, MAX_BARS)
    candles = bars(conn, symbol, timeframe, since_ms, bucket)
    band = conn.execute(
        "SELECT p.candle_time, p.sd, c.close FROM predictions p JOIN candles c ON "
        "c.symbol = p.symbol AND c.timeframe = ? AND c.open_time = p.candle_time "
        "WHERE p.symbol = ? AND p.candle_time >= ? AND p.sd IS NOT NULL "
        "AND (p.candle_time - ?) % ? = ? ORDER BY p.candle_time",
        (timeframe, symbol, since_ms, since_ms, bucket, bucket - step),
    ).fetchall()
    sd_band = [(t // 1000, _p(float(c) * (1 - sd)), _p(float(c) * (1 + sd))) for t, sd, c in band]
    entries = rows(
        conn,
        "SELECT o.created_at AS time, o.side, o.avg_fill_price AS price, d.provenance "
        "FROM orders o LEFT JOIN decisions d ON d.id = o.decision_id WHERE o.symbol = ? AND "
        "o.role = 'entry' AND o.state = 'filled' AND o.created_at >= ? "
        "ORDER BY o.created_at DESC LIMIT ?",
        (symbol, since_ms, MAX_MARKERS),
    )
    exits = rows(
        conn,
        "SELECT exit_time AS time, side, exit_price AS price, exit_reason, pnl FROM trades "
        "WHERE symbol = ? AND exit_time >= ? ORDER BY exit_time DESC LIMIT ?",
        (symbol, since_ms, MAX_MARKERS),
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
        "bars_total": (last_ms - since_ms) // step + 1,
        "bucket": bucket // step,
        "candles": candles,
        "sd_band": sd_band,
        "entries": entries[::-1],
        "exits": exits[::-1],
        "position": position[0] if position else None,
        "protective_orders": protective,
    }


def _p(price: float) -> float:
    """Seven significant digits: plenty on a chart, a third of the bytes of a full float."""
    return float(f"{price:.7g}")


def last_candle_ms(conn: sqlite3.Connection, symbol: str, timeframe: str) -> int | None:
    """The newest stored candle's open time."""
    row = conn.execute(
        "SELECT MAX(open_time) FROM candles WHERE symbol = ? AND timeframe = ?",
        (symbol, timeframe),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def equity(conn: sqlite3.Connection) -> dict[str, Any]:
    """The equity curve down-sampled to each time bucket's trough, peak and last point, its
    drawdown, and the maximum drawdown over every recorded point (a year is ~0.2 s here, once
    per data version: the routes cache the answer)."""
    plain = conn.cursor()
    plain.row_factory = None  # tuples: a year is 105,120 rows
    found = plain.execute("SELECT time / 1000, CAST(equity AS REAL) FROM equity ORDER BY time")
    points: list[shape.Point] = found.fetchall()
    curve: list[shape.Point] = []
    if points:
        first, last = points[0][0], points[-1][0]
        width = max(1, -(-(last - first + 1) // (MAX_EQUITY_POINTS // 3)))
        curve = shape.downsample_line(points, first, width)
    return {
        "points_total": len(points),
        "equity": curve,
        "drawdown_pct": [(t, round(d, 3)) for t, d in shape.drawdown(curve)],
        "max_drawdown_pct": shape.max_drawdown(points),
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
