"""The store keeps money exact, migrates idempotently, is private, and is all-or-nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbotd.domain import (
    Candle,
    Fill,
    FundingPayment,
    Hold,
    Order,
    OrderRole,
    OrderSide,
    OrderState,
    OrderType,
    Position,
    Prediction,
    Side,
    client_order_id,
)
from tbotd.domain.actions import HoldKind
from tbotd.store import SCHEMA_VERSION, Store, StoreError
from tests.conftest import REPO, tbotd_env

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SYMBOL = "BTC/USD:BTC"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "t.sqlite")


def test_decimal_values_read_back_exactly(store: Store) -> None:
    """0.1 + 0.2, a 1e-8 quantity and 8-decimal BTC prices come back digit for digit."""
    price = Decimal("0.1") + Decimal("0.2")
    c = Candle(SYMBOL, "5m", T0, "0.00002345", "0.00002350", "0.00002300", "0.00002301", "1E-8")
    store.record_candles([c])
    fill = Fill(
        "t1",
        "abc",
        SYMBOL,
        OrderSide.BUY,
        Decimal("1e-8"),
        price,
        Decimal("0.00000001"),
        "BTC",
        T0,
        Decimal("-0.12345678"),
    )
    store.record_fill(fill)
    [back] = store.candles(SYMBOL, "5m")
    assert back == c
    assert str(back.volume) == "1E-8"
    [fill_back] = store.fills()
    assert fill_back == fill
    assert fill_back.price == Decimal("0.3")
    assert str(fill_back.realized_pnl) == "-0.12345678"


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_any_finite_decimal_round_trips(store: Store, value: Decimal) -> None:
    """Whatever Decimal goes in comes out identical, exponent included."""
    store.record_equity(T0, "USDT", value, Decimal(0))
    [row] = store.query("SELECT balance FROM equity WHERE time = ?", (int(T0.timestamp() * 1000),))
    assert Decimal(row["balance"]).as_tuple() == value.as_tuple()


def test_database_file_is_private(tmp_path: Path) -> None:
    """The database and its WAL files are readable by the owner only (0600)."""
    old = os.umask(0o022)
    try:
        Store.open(tmp_path / "db.sqlite").record_event(T0, "test", "hello")
    finally:
        os.umask(old)
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_migration_is_idempotent(tmp_path: Path) -> None:
    """Migrating an empty database and re-opening it changes nothing and keeps the data."""
    path = tmp_path / "db.sqlite"
    first = Store.open(path)
    assert first.version == SCHEMA_VERSION
    schema = first.query("SELECT name, sql FROM sqlite_master ORDER BY name")
    first.record_event(T0, "test", "kept")
    first.close()
    second = Store.open(path)
    assert second.version == SCHEMA_VERSION
    assert second.query("SELECT name, sql FROM sqlite_master ORDER BY name") == schema
    assert [e["message"] for e in second.events()] == ["kept"]
    assert second.integrity_ok()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database written by a newer tbotd is not misread."""
    path = tmp_path / "db.sqlite"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(path)


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    """A file that is not SQLite gives a clear error, not a crash deep inside."""
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        Store.open(path)


@pytest.mark.parametrize("immediate", [False, True])
def test_transaction_is_all_or_nothing(store: Store, immediate: bool) -> None:
    """An error inside a transaction leaves none of its writes (one that takes the write lock
    at its start too), and the store takes the next transaction as usual."""

    def two_writes_then_fail() -> None:
        with store.transaction(immediate=immediate):
            store.record_event(T0, "a", "first")
            store.record_event(T0, "b", "second")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        two_writes_then_fail()
    assert store.events() == []
    with store.transaction(immediate=immediate):
        store.record_event(T0, "c", "third")
    assert [e["kind"] for e in store.events()] == ["c"]


def entry(qty: str = "3") -> Order:
    return Order(
        client_id=client_order_id("i", SYMBOL, T0, OrderRole.ENTRY),
        symbol=SYMBOL,
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        role=OrderRole.ENTRY,
        qty=Decimal(qty),
        created_at=T0,
    )


def test_orders_keep_their_state_history(store: Store) -> None:
    """The intent is stored before sending; each transition is kept in order."""
    order = entry()
    decision = store.record_decision(SYMBOL, T0, [Hold(SYMBOL, "test", HoldKind.ABSTAIN)], T0)
    store.record_order_intent(order, decision)
    assert [o.client_id for o in store.live_orders()] == [order.client_id]
    unknown = order.transition(OrderState.UNKNOWN, T0 + timedelta(seconds=1))
    store.update_order(unknown, "timeout")
    filled = unknown.transition(
        OrderState.FILLED,
        T0 + timedelta(seconds=2),
        filled_qty=Decimal(3),
        avg_fill_price=Decimal("42000.5"),
        exchange_id="77",
    )
    store.update_order(filled, "found by client id")
    assert store.order(order.client_id) == filled
    assert [s for s, _, _ in store.order_history(order.client_id)] == [
        OrderState.PENDING,
        OrderState.UNKNOWN,
        OrderState.FILLED,
    ]
    assert store.live_orders() == []


def test_duplicate_client_id_is_refused(store: Store) -> None:
    """The same client id can never be recorded twice."""
    store.record_order_intent(entry())
    with pytest.raises(sqlite3.IntegrityError):
        store.record_order_intent(entry())


def test_positions_predictions_funding_round_trip(store: Store) -> None:
    """Positions, predictions and funding are stored and read back as recorded."""
    pos = Position(
        SYMBOL, Side.SHORT, Decimal(5), Decimal("43000.1"), T0, Decimal(44000), Decimal(41000)
    )
    store.save_position(pos, T0)
    assert store.positions() == {SYMBOL: pos}
    store.remove_position(SYMBOL)
    assert store.positions() == {}
    store.record_prediction(Prediction.neutral(SYMBOL, T0, "test"), 1.5, T0)
    pay = FundingPayment(
        SYMBOL, T0, Decimal("0.0001"), Decimal(5), Decimal(43000), Decimal("-0.00000116"), "BTC"
    )
    store.record_funding(pay)
    store.record_funding(pay)
    assert store.query("SELECT COUNT(*) AS n FROM funding")[0]["n"] == 1
    assert store.query("SELECT source FROM predictions")[0]["source"] == "neutral"


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from tbotd.store import Store
    store = Store.open(sys.argv[1])
    at = datetime(2024, 1, 1, tzinfo=UTC)
    with store.transaction():
        for i in range(500):
            store.record_event(at, "batch", f"row {i}")
            if i == 250:
                print("half", flush=True)
                sys.stdin.readline()  # parked mid-transaction until the parent kills us
    print("committed", flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.parametrize(("wait_for", "expected_rows"), [("half", 0), ("committed", 500)])
def test_sigkill_mid_transaction_leaves_all_or_nothing(
    tmp_path: Path, wait_for: str, expected_rows: int
) -> None:
    """A process killed with SIGKILL inside a multi-row transaction leaves no partial write."""
    path = tmp_path / "db.sqlite"
    Store.open(path).close()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=tbotd_env(),
        cwd=REPO,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    while (line := child.stdout.readline().strip()) != wait_for:
        assert line, "child exited early"
        child.stdin.write("\n")  # let it go on past the half-way point
        child.stdin.flush()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    reopened = Store.open(path)
    assert reopened.integrity_ok()
    assert len(reopened.events("batch")) == expected_rows


def test_order_history_questions_are_answered_from_an_index(store: Store) -> None:
    """How many stops a symbol had, what closed a position, its last filled entry: exact
    answers read through the (symbol, role) index, so a cycle's cost does not grow with years
    of orders (regression: every protective order and every reconciliation scanned them all)."""
    other = "BTC/USDT:USDT"
    for i in range(3):
        for symbol, role in ((SYMBOL, OrderRole.STOP_LOSS), (other, OrderRole.ENTRY)):
            order = Order(
                client_order_id("i", symbol, T0 + timedelta(minutes=5 * i), role),
                symbol,
                OrderSide.SELL,
                OrderType.STOP_MARKET if role is OrderRole.STOP_LOSS else OrderType.MARKET,
                role,
                Decimal(1),
                T0 + timedelta(minutes=5 * i),
                trigger_price=Decimal(100) if role is OrderRole.STOP_LOSS else None,
            )
            store.record_order_intent(order)
            at = order.created_at + timedelta(seconds=1)
            store.update_order(order.transition(OrderState.FILLED, at, filled_qty=Decimal(1)))
    assert store.order_count(SYMBOL, OrderRole.STOP_LOSS) == 3
    assert store.order_count(SYMBOL, OrderRole.ENTRY) == 0
    assert [o.created_at for o in store.closing_orders(SYMBOL, T0 + timedelta(minutes=4))] == [
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=10),
    ]
    for sql in (
        "SELECT COUNT(*) FROM orders WHERE symbol = 'x' AND role = 'entry'",
        (
            "SELECT client_id FROM orders WHERE symbol = 'x' AND role = 'entry' "
            "AND state = 'filled' ORDER BY created_at DESC, rowid DESC LIMIT 1"
        ),
    ):
        plan = " ".join(str(r["detail"]) for r in store.query("EXPLAIN QUERY PLAN " + sql))
        assert "orders_symbol_role" in plan, plan


def _stop(i: int, symbol: str = SYMBOL) -> Order:
    """The ``i``-th stop order of ``symbol``, recorded as an intent (pending)."""
    at = T0 + timedelta(minutes=5 * i)
    return Order(
        client_order_id("i", symbol, at, OrderRole.STOP_LOSS),
        symbol,
        OrderSide.SELL,
        OrderType.STOP_MARKET,
        OrderRole.STOP_LOSS,
        Decimal(1),
        at,
        trigger_price=Decimal(100),
    )


def test_live_orders_are_exactly_those_not_yet_terminal(store: Store) -> None:
    """An order in every state: live_orders lists the ones that may still fill, no other."""
    for i, state in enumerate(OrderState):
        order = _stop(i)
        store.record_order_intent(order)
        if state is not OrderState.PENDING:
            filled = Decimal(1) if state is OrderState.FILLED else Decimal(0)
            if state is OrderState.PARTIALLY_FILLED:
                filled = Decimal("0.5")
            store.update_order(order.transition(state, order.created_at, filled_qty=filled))
    assert {o.state for o in store.live_orders(SYMBOL)} == {s for s in OrderState if s.is_live}
    assert store.live_orders("ETH/USDT:USDT") == []


def _steps(store: Store, question: Callable[[], object]) -> int:
    """SQLite virtual-machine steps (in hundreds) spent answering ``question``."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    store.db.conn.set_progress_handler(tick, 100)
    try:
        question()
    finally:
        store.db.conn.set_progress_handler(None, 100)
    return count


def test_listing_live_orders_does_not_grow_with_the_order_history(store: Store) -> None:
    """Every cycle lists the live orders: the answer comes from the partial index, so 4,000
    finished orders cost what 400 do (regression: the IN list scanned every order ever sent and
    a cycle went from 41 to 65 ms over 5,000 soak cycles)."""

    def finish(first: int, count: int) -> None:
        with store.transaction():
            for i in range(first, first + count):
                order = _stop(i)
                store.record_order_intent(order)
                store.update_order(order.transition(OrderState.CANCELED, order.created_at))

    store.record_order_intent(_stop(100_000))
    finish(0, 400)
    few = _steps(store, lambda: store.live_orders(SYMBOL))
    finish(400, 3600)
    many = _steps(store, lambda: store.live_orders(SYMBOL))
    assert [o.state for o in store.live_orders(SYMBOL)] == [OrderState.PENDING]
    assert many <= few + 1, (few, many)
