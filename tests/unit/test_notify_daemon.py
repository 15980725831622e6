"""What the daemon itself says: start or crash-restart, stop, and a database that cannot be
written — from memory, since no event can be recorded then."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from tbotd.config import NotifyConfig
from tbotd.daemon.lifecycle import Daemon
from tbotd.notify import lifecycle as said
from tbotd.notify.classify import storage_notice
from tbotd.notify.service import Notifications
from tbotd.notify.targets import Message, SendResult
from tbotd.ops.clock import ManualClock
from tbotd.ops.metrics import NotifyMetrics
from tbotd.store import Store
from tests.unit.test_daemon_resilience import T0, settings


class Phone:
    """A target that takes every message and remembers it."""

    name, scheme = "phone", "fake"

    def __init__(self) -> None:
        self.got: list[Message] = []
        self.arrived = asyncio.Condition()

    async def send(self, message: Message, timeout_s: float) -> SendResult:  # noqa: ARG002
        async with self.arrived:
            self.got.append(message)
            self.arrived.notify_all()
        return SendResult(ok=True)

    async def wait_for(self, n: int) -> list[str]:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.got) >= n), 10)
        return [m.body.splitlines()[0] for m in self.got]


def rigged(tmp_path: Path) -> tuple[Daemon, Any, Phone]:
    """A daemon whose notifier sends to :class:`Phone`, and a stand-in for its app."""
    daemon = Daemon(settings())
    phone = Phone()
    config = NotifyConfig(urls=SecretStr("json://h/x"), cooldown_s=0, daily_summary_utc="")
    clock = ManualClock(T0)
    daemon.notifications = Notifications(
        config, "t", [phone], "USDT", clock, NotifyMetrics.create(CollectorRegistry())
    )
    app = SimpleNamespace(clock=clock, store=Store.open(tmp_path / "d.sqlite"), broker=None)
    daemon.notifications.start()
    return daemon, app, phone


async def test_a_database_that_cannot_be_written_is_said_once_and_its_return_too(
    tmp_path: Path,
) -> None:
    """Every failed probe calls it down; the operator hears it once, then that it is back."""
    daemon, app, phone = rigged(tmp_path)
    for _ in range(3):
        daemon._storage_down(app, "disk I/O error")
    daemon.notifications.notify(storage_notice(app.clock.now(), writable=True))
    texts = await phone.wait_for(2)
    assert texts[0].startswith("DATABASE CANNOT BE WRITTEN (disk I/O error)")
    assert texts[1] == "database writable again; cycling"
    await daemon.notifications.close()
    app.store.close()


async def test_a_start_after_a_run_that_never_stopped_says_crash_and_a_clean_stop_is_marked(
    tmp_path: Path,
) -> None:
    """The run mark in the database decides between "starting" and "restarted after a crash";
    a clean stop writes the mark that makes the next start ordinary."""
    daemon, app, phone = rigged(tmp_path)
    app.store.set_meta(said.RUN_KEY, said.RunMark("running", 4242, T0).text())
    daemon._announce_start(app)
    [first] = await phone.wait_for(1)
    assert first.startswith("restarted after a crash: the previous run (pid 4242")
    assert said.RunMark.parse(app.store.meta(said.RUN_KEY)).state == "running"  # type: ignore[union-attr]
    daemon.cycles = 7
    await daemon._announce_stop(app)
    assert (await phone.wait_for(2))[1].startswith("stopped cleanly after 7 cycle(s)")
    assert said.RunMark.parse(app.store.meta(said.RUN_KEY)).state == "stopped"  # type: ignore[union-attr]
    app.store.close()
