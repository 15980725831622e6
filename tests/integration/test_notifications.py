"""The notifier against a local webhook receiver: store events in, messages out through
apprise's ``json://``, failing and hanging targets contained, stops flushed, summaries on time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from benchmarks.reliability.webhook import Receiver, receiver
from tbotd.config import NotifyConfig
from tbotd.domain.errors import StorageUnavailableError
from tbotd.domain.notices import EventRecord, Notice, NoticeKind, Severity
from tbotd.notify.service import Notifications
from tbotd.notify.targets import AppriseTarget
from tbotd.ops.clock import ManualClock
from tbotd.ops.metrics import NotifyMetrics
from tbotd.store import Store

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
SYM = "BTC/USDT:USDT"
ENTRY = {"side": "long", "qty": "0.01", "price": "50000", "stop": "49500", "target": "51000"}
STOP = {"reason": "stop_loss", "side": "long", "qty": "0.01", "pnl": "-5", "fees": "0.4"}


class Rig:
    """A notifier with its own metrics registry, a store, a manual clock and a receiver."""

    def __init__(self, rx: Receiver, store: Store, targets: dict[str, str], **cfg: Any) -> None:
        urls = " ".join(rx.url(path, name) for name, path in targets.items())
        cfg = {"retries": 0, "retry_backoff_s": 0, "daily_summary_utc": "", **cfg}
        self.config = NotifyConfig(urls=SecretStr(urls), **cfg)
        self.registry = CollectorRegistry()
        self.clock = ManualClock(T0)
        senders = [AppriseTarget(u, self.config.timeout_s) for u in self.config.target_urls()]
        self.n = Notifications(
            self.config, "it", senders, "USDT", self.clock, NotifyMetrics.create(self.registry)
        )
        self.store = store
        self.n.start()
        self.n.attach(store, self.clock)
        store.add_event_listener(self.n.offer)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def events(self, kind: str) -> list[dict[str, Any]]:
        return self.store.events(kind)


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with receiver() as r:
        yield r


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "n.sqlite")


async def test_store_events_reach_every_target_even_when_the_database_refuses_them(
    rx: Receiver, store: Store
) -> None:
    """Entry and stop-loss events become messages with their fields; a repeated alert is one
    message; an event the database cannot write is still sent."""
    rig = Rig(rx, store, {"a": "a", "b": "b"})
    store.record_event(T0, "entry", "long 0.01 at 50000", SYM, **ENTRY)
    store.record_event(T0, "trade", "position closed: stop_loss", SYM, **STOP)
    for _ in range(3):
        store.record_event(T0, "alert", "orders of another trader", SYM, kind_detail="suspended")
    store.db.conn.execute("PRAGMA query_only = ON")  # a full or read-only disk
    with pytest.raises(StorageUnavailableError):
        store.record_event(T0, "trade", "position closed: take_profit", SYM, reason="take_profit")
    await rx.wait_for(lambda r: len(r.of("a")) == 4 and len(r.of("b")) == 4)
    assert [m.kind for m in rx.of("a")] == ["entry", "stop_loss", "alert", "take_profit"]
    entry, stop = rx.of("a")[:2]
    assert entry.text == f"{SYM}: opened long 0.01 at 50000 (stop 49500, target 51000)"
    assert (entry.fields["stop"], entry.fields["target"]) == ("49500", "51000")
    assert (stop.severity, stop.fields["pnl"], stop.type) == ("WARNING", "-5", "warning")
    assert (
        rig.metric("tbotd_notifications_dropped_total", reason="unchanged", severity="critical")
        == 2
    )
    store.db.conn.execute("PRAGMA query_only = OFF")
    await rig.n.close()


async def test_refusing_targets_are_an_event_and_a_metric_and_the_others_still_hear(
    rx: Receiver, store: Store
) -> None:
    """401 and 404: each failing target is counted per message and recorded once as
    ``notify-failed``; the working target gets everything; a fixed target is ``recovered``."""
    rig = Rig(rx, store, {"ok": "ok", "deny": "deny", "gone": "gone"})
    rx.modes |= {"deny": "refuse", "gone": "missing"}
    for i in range(2):
        rig.n.notify(Notice(NoticeKind.ALERT, Severity.WARNING, f"alert {i}", T0))
    await rx.wait_for(lambda r: len(r.of("ok")) == 2 and r.attempts.get("gone") == 2)
    await rx.wait_for(lambda r: r.attempts.get("deny") == 2)
    await rig.n._targets["deny"].queue.drained()
    await rig.n._targets["gone"].queue.drained()
    for name in ("deny", "gone"):
        assert rig.metric("tbotd_notifications_total", target=name, result="failed") == 2
        assert rig.metric("tbotd_notification_target_up", target=name) == 0
    failed = rig.events("notify-failed")
    assert sorted(e["message"].split(" failed:")[0] for e in failed) == [
        "target deny (json)",
        "target gone (json)",
    ]
    assert "401" in next(e["message"] for e in failed if "deny" in e["message"])
    rx.modes["deny"] = "ok"
    rig.n.notify(Notice(NoticeKind.ALERT, Severity.WARNING, "alert 3", T0))
    await rx.wait_for(lambda r: len(r.of("deny")) == 1)
    await rig.n._targets["deny"].queue.drained()
    assert [e["message"] for e in rig.events("notify-recovered")] == [
        "target deny (json) works again"
    ]
    assert rig.metric("tbotd_notification_target_up", target="deny") == 1
    await rig.n.close()


async def test_a_target_that_does_not_answer_in_time_is_a_failure(
    rx: Receiver, store: Store
) -> None:
    """A timeout is retried, then counted and recorded like a refusal."""
    rig = Rig(rx, store, {"slow": "slow"}, timeout_s=0.3, retries=1)
    rx.modes["slow"] = "hang"
    rig.n.notify(Notice(NoticeKind.ALERT, Severity.CRITICAL, "nobody hears this", T0))
    await rx.wait_for(lambda r: r.held == 2)  # the first try and the retry
    await rig.n._targets["slow"].queue.drained()
    assert rig.metric("tbotd_notifications_total", target="slow", result="failed") == 1
    [failed] = rig.events("notify-failed")
    assert failed["message"].startswith("target slow (json) failed: ")
    assert rig.n.status()["targets"][0]["up"] is False
    await rig.n.close(flush_s=0)


async def test_a_hanging_target_delays_nothing_but_itself(rx: Receiver, store: Store) -> None:
    """While one target holds every request: recording events returns at once, the other
    target gets every message, and the hanging target's full queue drops the least severe
    notices first (counted)."""
    rig = Rig(rx, store, {"slow": "slow", "fast": "fast"}, queue_size=4, timeout_s=30)
    rx.modes["slow"] = "hang"

    def entries(*numbers: int) -> None:
        for i in numbers:
            at = T0 + timedelta(minutes=i)
            store.record_event(at, "entry", f"long {i}", SYM, **ENTRY | {"qty": str(i)})

    entries(0, 1, 2)
    store.record_event(T0, "alert", "could not protect 1", SYM)  # critical
    await rx.wait_for(lambda r: len(r.of("fast")) == 4 and r.held == 1)  # slow holds entry 0
    entries(3, 4)  # slow's queue: 1, 2, alert 1, 3 — full: entry 4 is dropped
    await rx.wait_for(lambda r: len(r.of("fast")) == 6)
    store.record_event(T0, "alert", "could not protect 2", SYM)  # replaces entry 1
    await rx.wait_for(lambda r: len(r.of("fast")) == 7)
    assert [m.fields.get("qty") for m in rx.of("fast") if m.kind == "entry"] == list("01234")
    queued = [d.notice.text for d in rig.n._targets["slow"].queue._items]
    assert [q.split(": ", 1)[1] for q in queued] == [
        "opened long 2 at 50000 (stop 49500, target 51000)",
        "could not protect 1",
        "opened long 3 at 50000 (stop 49500, target 51000)",
        "could not protect 2",
    ]
    assert (
        rig.metric("tbotd_notifications_dropped_total", reason="queue_full", severity="info") == 2
    )
    rx.release()
    await rig.n.close(flush_s=10)
    assert rig.metric("tbotd_notifications_total", target="slow", result="sent") == 5


async def test_a_stop_sends_what_is_queued_and_the_state_a_cool_down_held(
    rx: Receiver, store: Store
) -> None:
    """ML down (sent), ML back within the cool-down (held), then a stop: the stop notice and
    the held "back" both go out before close returns."""
    rig = Rig(rx, store, {"a": "a"})

    def source(state: str) -> None:
        data = {"source": state, "expected": state == "remote"}
        rig.n.offer(EventRecord.of(rig.clock.now(), "ml-source", "changed", None, data))

    source("remote")
    source("neutral")
    await rx.wait_for(lambda r: len(r.of("a")) == 1)
    await rig.clock.advance(60)
    source("remote")
    rig.n.notify(Notice(NoticeKind.STOP, Severity.INFO, "stopped cleanly", rig.clock.now()))
    await rig.n.close(flush_s=10)
    assert [m.text for m in rx.of("a")] == [
        "ML degraded: predictions now come from neutral",
        "stopped cleanly",
        "ML predictions come from remote again",
    ]


async def test_the_daily_summary_goes_out_at_its_utc_time(rx: Receiver, store: Store) -> None:
    """At 00:00 UTC: one summary of the last 24 hours, then the next one a day later."""
    store.record_equity(T0, "USDT", store_decimal("10000"), store_decimal("0"))
    rig = Rig(rx, store, {"a": "a"}, daily_summary_utc="00:00")
    await rig.clock.set(T0.replace(hour=23, minute=59))
    assert rx.of("a") == []
    await rig.clock.advance(60)
    await rx.wait_for(lambda r: len(r.of("a")) == 1)
    [summary] = rx.of("a")
    assert summary.kind == "daily_summary"
    assert summary.text.startswith("last 24 h: 0 trade(s), net 0 USDT")
    assert summary.fields["equity"] == "10000"
    await rig.clock.advance(timedelta(days=1).total_seconds())
    await rx.wait_for(lambda r: len(r.of("a")) == 2)
    await rig.n.close()


async def test_events_from_another_thread_are_handed_to_the_event_loop(
    rx: Receiver, store: Store
) -> None:
    """A notice offered from a worker thread is sent like any other."""
    rig = Rig(rx, store, {"a": "a"})
    thread = threading.Thread(
        target=rig.n.notify, args=(Notice(NoticeKind.ALERT, Severity.INFO, "from a thread", T0),)
    )
    thread.start()
    await asyncio.to_thread(thread.join)
    await rx.wait_for(lambda r: len(r.of("a")) == 1)
    await rig.n.close()


def store_decimal(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)
