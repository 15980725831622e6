"""The risk guard in the daemon: its state survives a restart, a trip is an event the notifier
turns into a critical message, a metric and a /status field, and the operator's commands are
applied once each."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry

from tbotd.commands.status import flatten_text
from tbotd.daemon.risk import RiskKeeper, load_state, read_command, risk_status, write_command
from tbotd.domain.enums import Side
from tbotd.domain.notices import EventRecord, Severity
from tbotd.domain.values import ms_to_datetime
from tbotd.notify.classify import notice_for
from tbotd.ops.metrics import DaemonMetrics
from tbotd.risk.guard import OnTrip, RiskLimits
from tbotd.store import Store, Trade

T0 = 1_700_006_400_000
BAR = 300_000
LIMITS = RiskLimits(max_drawdown=Decimal("0.05"))
SYMBOL = "BTC/USDT:USDT"


def keeper(db: Path) -> tuple[RiskKeeper, Store, CollectorRegistry]:
    registry = CollectorRegistry()
    store = Store.open(db)
    return RiskKeeper(store, LIMITS, DaemonMetrics.create(registry)), store, registry


def test_a_trip_survives_a_restart_and_is_an_event_a_metric_and_a_status(tmp_path: Path) -> None:
    """Equity 100 → 94: tripped, recorded as risk-trip (a critical notice), the gauge at 1,
    /status lists it; a new keeper over the same database still refuses entries."""
    heard: list[EventRecord] = []
    first, store, registry = keeper(tmp_path / "k.db")
    store.add_event_listener(heard.append)
    first.observe(T0, Decimal(100))
    seen = first.observe(T0 + BAR, Decimal(94))
    assert [c.kind for c in seen.changes] == ["risk-trip"]
    assert [e.kind for e in heard] == ["risk-trip"]
    notice = notice_for(heard[0])
    assert notice is not None
    assert notice.severity is Severity.CRITICAL
    assert "max_drawdown" in notice.text
    gauge = registry.get_sample_value("tbotd_risk_tripped", {"rule": "max_drawdown"})
    assert gauge == 1.0
    assert first.status()["trips"][0]["rule"] == "max_drawdown"
    store.close()
    again, store, registry = keeper(tmp_path / "k.db")
    assert again.state == seen.state
    assert registry.get_sample_value("tbotd_risk_tripped", {"rule": "max_drawdown"}) == 1.0
    assert again.observe(T0 + 2 * BAR, Decimal(200)).changes == ()  # only resume resets it
    store.close()


def test_commands_apply_once_and_resume_resets(tmp_path: Path) -> None:
    """A halt with flatten asks for flatten at the next close, and no more once the book is
    flat; resume lifts it and the tripped drawdown, with the equity then as the new peak."""
    guard, store, _ = keeper(tmp_path / "c.db")
    guard.observe(T0, Decimal(100))
    guard.observe(T0 + BAR, Decimal(90))
    write_command(store, halt=True, flatten=True, at=datetime.now(UTC))
    halted = guard.observe(T0 + 2 * BAR, Decimal(90))
    assert halted.flatten
    assert guard.status()["halted"]
    guard.flatten_reported(T0 + 2 * BAR, set())  # the cycle closed everything
    assert not guard.observe(T0 + 3 * BAR, Decimal(90)).flatten
    write_command(store, halt=False, flatten=False, at=datetime.now(UTC))
    resumed = guard.observe(T0 + 4 * BAR, Decimal(90))
    assert {c.kind for c in resumed.changes} == {"risk-reset"}
    assert resumed.state.trips == ()
    assert resumed.state.halt is None
    assert resumed.state.peak == Decimal(90)
    store.close()


def test_a_command_not_yet_applied_shows_as_pending(tmp_path: Path) -> None:
    """`tbotd halt` written while the daemon is down (or between closes): the status says it is
    pending; once the next close applies it, it says halted and nothing is pending."""
    guard, store, _ = keeper(tmp_path / "p.db")
    guard.observe(T0, Decimal(100))
    write_command(store, halt=True, flatten=True, at=datetime.now(UTC))
    before = risk_status(load_state(store), read_command(store))
    assert before["pending"] == {"seq": 1, "command": "halt with flatten"}
    assert guard.status()["pending"] == before["pending"]  # the running daemon's /status too
    assert not before["halted"]
    guard.observe(T0 + BAR, Decimal(100))
    after = risk_status(load_state(store), read_command(store))
    assert (after["halted"], after["pending"]) == (True, None)
    store.close()


def test_a_second_halt_before_the_first_is_applied_keeps_its_flatten(tmp_path: Path) -> None:
    """`halt --flatten` then a plain `halt` before the next close: the close still flattens
    (the second command overwrote the first and lost it); once applied, a plain halt is plain."""
    guard, store, _ = keeper(tmp_path / "f.db")
    guard.observe(T0, Decimal(100))
    write_command(store, halt=True, flatten=True, at=datetime.now(UTC))
    write_command(store, halt=True, flatten=False, at=datetime.now(UTC))
    assert guard.observe(T0 + BAR, Decimal(100)).flatten
    guard.flatten_reported(T0 + BAR, set())
    write_command(store, halt=True, flatten=False, at=datetime.now(UTC))
    assert not guard.observe(T0 + 2 * BAR, Decimal(100)).flatten
    store.close()


def test_commands_written_at_once_take_distinct_numbers(tmp_path: Path) -> None:
    """Several `tbotd halt`/`resume` at once, while the daemon commits its own writes: no
    "database is locked", and every command gets its own number (none is lost to another)."""
    db = tmp_path / "race.db"
    Store.open(db).close()
    start = threading.Barrier(4)
    seqs: list[int] = []

    def operator(halt: bool) -> None:
        store = Store.open(db)
        start.wait()
        now = datetime.now(UTC)
        seqs.extend(write_command(store, halt=halt, flatten=False, at=now).seq for _ in range(25))
        store.close()

    def daemon() -> None:
        store = Store.open(db)
        start.wait()
        for i in range(100):
            with store.transaction():
                store.set_meta("busy", str(i))
        store.close()

    threads = [threading.Thread(target=operator, args=(h,)) for h in (True, False, True)]
    threads.append(threading.Thread(target=daemon))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 76))
    last = read_command(Store.open(db))
    assert last is not None
    assert last.seq == 75


def test_a_pending_flatten_survives_a_restart_and_the_status_shows_it(tmp_path: Path) -> None:
    """`halt --flatten` whose close failed: the status says what is still open, a new keeper
    over the same database asks again at its first close, and once the book is reported flat
    it is done (one ``flatten-done`` event) and asked no more."""
    first, store, _ = keeper(tmp_path / "r.db")
    first.observe(T0, Decimal(100))
    write_command(store, halt=True, flatten=True, at=datetime.now(UTC))
    assert first.observe(T0 + BAR, Decimal(100)).flatten
    first.flatten_reported(T0 + BAR, {SYMBOL})
    shown = risk_status(load_state(store), read_command(store))["flatten"]
    since = ms_to_datetime(T0 + BAR).isoformat()
    assert shown == {"since": since, "by": "operator halt #1", "tries": 1, "open": [SYMBOL]}
    assert flatten_text(shown) == (
        f"flatten pending (asked by operator halt #1 since {since}): 1 position(s) open after "
        f"1 close(s) ({SYMBOL}); asked again at every close"
    )
    store.close()
    again, store, _ = keeper(tmp_path / "r.db")
    assert again.observe(T0 + 2 * BAR, Decimal(100)).flatten
    again.flatten_reported(T0 + 2 * BAR, set())
    assert again.status()["flatten"] is None
    assert not again.observe(T0 + 3 * BAR, Decimal(100)).flatten
    assert [r["kind"] for r in store.query("SELECT kind FROM events")].count("flatten-done") == 1
    store.close()


def test_a_resume_then_a_halt_before_the_next_close_cancels_the_pending_flatten(
    tmp_path: Path,
) -> None:
    """`halt --flatten` whose close failed, then `resume` and a plain `halt` before the next
    close (the daemon reads only the latest command): the resume still counts — no more
    flatten, positions kept with their stops, entries halted by the new halt."""
    guard, store, _ = keeper(tmp_path / "rh.db")
    guard.observe(T0, Decimal(100))
    write_command(store, halt=True, flatten=True, at=datetime.now(UTC))
    assert guard.observe(T0 + BAR, Decimal(100)).flatten
    guard.flatten_reported(T0 + BAR, {SYMBOL})  # the close failed: still pending
    write_command(store, halt=False, flatten=False, at=datetime.now(UTC))
    write_command(store, halt=True, flatten=False, at=datetime.now(UTC))
    seen = guard.observe(T0 + 2 * BAR, Decimal(100))
    assert not seen.flatten
    assert guard.state.flatten is None
    assert guard.state.halt is not None
    assert guard.state.halt.seq == 3
    assert not guard.observe(T0 + 3 * BAR, Decimal(100)).flatten
    [ended] = store.events("flatten-ended")
    assert "(the operator resumed)" in ended["message"]
    store.close()


def test_a_flatten_that_stops_being_asked_is_said(tmp_path: Path) -> None:
    """A daily loss's flatten whose close failed, then the new UTC day resets the rule: the
    operator hears that the flatten is no longer asked and what stays open (not silence after
    "flatten not done")."""
    store = Store.open(tmp_path / "d.db")
    limits = RiskLimits(daily_loss=Decimal("0.1"), on_trip=OnTrip.FLATTEN)
    guard = RiskKeeper(store, limits, DaemonMetrics.create(CollectorRegistry()))
    guard.observe(T0, Decimal(100))
    assert guard.observe(T0 + BAR, Decimal(85)).flatten
    guard.flatten_reported(T0 + BAR, {SYMBOL})
    assert not guard.observe(T0 + 86_400_000 + BAR, Decimal(85)).flatten
    [ended] = store.events("flatten-ended")
    assert ended["message"].endswith(f"(nothing refuses entries any more); still open: {SYMBOL}")
    notice = notice_for(
        EventRecord.of(datetime.now(UTC), "flatten-ended", ended["message"], None, {})
    )
    assert notice is not None
    assert notice.severity is Severity.WARNING
    store.close()


def stopped(at_ms: int) -> Trade:
    """A long stopped out at ``at_ms``."""
    exit_time = ms_to_datetime(at_ms)
    return Trade(
        SYMBOL,
        Side.LONG,
        Decimal(1),
        exit_time - timedelta(minutes=30),
        exit_time,
        Decimal(100),
        Decimal(99),
        "stop_loss",
        Decimal(-1),
        Decimal(0),
        Decimal(0),
        "USDT",
    )


def test_a_stop_booked_after_the_close_it_belongs_to_is_still_heard(tmp_path: Path) -> None:
    """A paper stop found in a candle that came after its cycle is booked at that candle's
    time, before the guard's last close: the stop-loss streak still counts it (once)."""
    store = Store.open(tmp_path / "late.db")
    limits = RiskLimits(stop_loss_streak=1, cooldown_ms=15 * 60_000)
    guard = RiskKeeper(store, limits, DaemonMetrics.create(CollectorRegistry()))
    guard.observe(T0, Decimal(100))
    guard.observe(T0 + BAR, Decimal(100))
    store.record_trade(stopped(T0 + BAR // 2))  # booked now, closed before the last close
    seen = guard.observe(T0 + 2 * BAR, Decimal(99))
    assert {c.kind for c in seen.changes} == {"risk-trip"}  # the book's streak and the symbol's
    assert guard.observe(T0 + 3 * BAR, Decimal(99)).changes == ()  # heard once, not again
    store.close()
