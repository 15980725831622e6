"""The dashboard's SQL down-sampling of candles is the pure definition's, its equity keeps
the extremes, and it reads off a separate read-only connection while the store writes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tbotd.ops.dashboard import reader, shape
from tbotd.store import Store

STEP = 300_000
prices = st.integers(100, 10_000)


def write(db: Path, closes: list[int]) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM candles")
    conn.execute("DELETE FROM equity")
    for i, c in enumerate(closes):
        o, t = closes[i - 1] if i else c, i * STEP
        hi, lo = max(o, c) + 1, min(o, c) - 1
        conn.execute(
            "INSERT INTO candles VALUES ('X', '5m', ?, ?, ?, ?, ?, '1')",
            (t, str(o), str(hi), str(lo), str(c)),
        )
        conn.execute("INSERT INTO equity VALUES (?, 'USDT', ?, '0', ?)", (t, str(c), str(c)))
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reader") / "t.sqlite"
    Store.open(path).close()
    return path


@settings(max_examples=40, deadline=None)
@given(st.lists(prices, min_size=1, max_size=300), st.integers(1, 40), st.integers(0, 20))
def test_sql_down_sampling_is_the_pure_definition(
    db: Path, closes: list[int], width: int, skip: int
) -> None:
    """Candles bucketed inside SQLite equal ``shape``'s reference function; the equity curve
    keeps the highest, lowest and last values and the exact maximum drawdown."""
    write(db, closes)
    since = skip * STEP
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row  # as the reader's own connection
    try:
        got = reader.bars(conn, "X", "5m", since, width * STEP)
        every = [
            (t // 1000, float(o), float(h), float(lo), float(c))
            for t, o, h, lo, c in conn.execute(
                "SELECT open_time, open, high, low, close FROM candles WHERE open_time >= ? "
                "ORDER BY open_time",
                (since,),
            )
        ]
        assert got == shape.downsample_bars(every, since // 1000, width * STEP // 1000)
        curve = reader.equity(conn)["equity"]
        points = [(i * STEP // 1000, float(c)) for i, c in enumerate(closes)]
        assert max(v for _, v in curve) == max(closes)
        assert min(v for _, v in curve) == min(closes)
        assert curve[-1] == points[-1]
        worst = min(d for _, d in shape.drawdown(points))
        assert reader.equity(conn)["max_drawdown_pct"] == pytest.approx(worst)
        assert len(curve) <= reader.MAX_EQUITY_POINTS
    finally:
        conn.close()


async def test_the_reader_answers_while_the_store_holds_a_write(tmp_path: Path) -> None:
    """An open write transaction on the store's connection does not block the dashboard's read
    (WAL), and the read runs off the event loop's thread."""
    store = Store.open(tmp_path / "t.sqlite")
    page = reader.Reader(tmp_path / "t.sqlite")
    loop_thread = __import__("threading").get_ident()
    try:
        with store.transaction():
            store.db.execute("INSERT INTO equity VALUES (1, 'USDT', '5', '0', '5')")
            answer = await asyncio.wait_for(
                page.run(lambda c: (__import__("threading").get_ident(), reader.equity(c))), 10
            )
        assert answer[0] != loop_thread
        assert answer[1]["points_total"] == 0  # not committed yet: the reader never sees it
    finally:
        page.close()
        store.close()
