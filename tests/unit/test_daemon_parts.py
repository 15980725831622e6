"""The cycle scheduler follows the exchange clock, whatever the wall clock does; sd_notify speaks
systemd's datagram protocol."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tbotd.daemon.schedule import CandleCloseScheduler, just_closed, watch_wall_clock
from tbotd.daemon.systemd import Notifier
from tbotd.domain.values import floor_time
from tbotd.ops.clock import ScaledClock

WALL = datetime(2030, 1, 1, tzinfo=UTC)


class FrozenScaledClock:
    """Exchange time frozen at ``now``, running ``speed`` × faster than the wall clock."""

    def __init__(self, now: datetime, speed: float) -> None:
        self._now, self.speed = now, speed

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - unused here
        raise NotImplementedError

    def wall_seconds(self, seconds: float) -> float:
        return seconds / self.speed


def test_the_next_fire_is_the_next_close_plus_grace_in_exchange_time() -> None:
    """At 12:03:00 on the exchange the next fire is 12:05:02, at any speed."""
    exchange = datetime(2024, 1, 1, 12, 3, tzinfo=UTC)
    scheduler = CandleCloseScheduler(FrozenScaledClock(exchange, 300), "5m", 2, _nothing)
    assert scheduler.next_fire(exchange) == datetime(2024, 1, 1, 12, 5, 2, tzinfo=UTC)


def test_a_clock_read_a_hair_early_never_fires_the_same_close_twice() -> None:
    """A clock re-anchored a few ms behind reads just before close + grace after a fire: the
    next fire is the next candle's (regression: the same close fired again 10 ms later)."""
    clock = FrozenScaledClock(datetime(2024, 1, 1, 12, 3, tzinfo=UTC), 300)
    scheduler = CandleCloseScheduler(clock, "5m", 2, _nothing)
    scheduler.fired = datetime(2024, 1, 1, 12, 5, 2, tzinfo=UTC)
    early = datetime(2024, 1, 1, 12, 5, 1, 990_000, tzinfo=UTC)
    assert scheduler.next_fire(early) == datetime(2024, 1, 1, 12, 10, 2, tzinfo=UTC)


async def _nothing() -> None:
    return None


@pytest.mark.parametrize("step_s", [-3600.0, 3600.0])
async def test_a_wall_clock_step_neither_stalls_nor_skips_a_cycle(
    monkeypatch: pytest.MonkeyPatch, step_s: float
) -> None:
    """The machine's clock jumps an hour back (or forward) after the first fire: the next
    closes still fire one per candle, on time, and the jump is reported once."""
    clock = ScaledClock(datetime(2024, 1, 1, 12, 4, 59, 900_000, tzinfo=UTC), 3000.0)
    fires: list[datetime] = []
    moved = asyncio.Event()

    async def job() -> None:
        fires.append(clock.now())
        if len(fires) == 1:
            real = time.time
            monkeypatch.setattr(time, "time", lambda: real() + step_s)
        if len(fires) == 4:
            moved.set()

    steps: list[float] = []
    watch = asyncio.create_task(watch_wall_clock(steps.append, interval_s=0.02))
    scheduler = CandleCloseScheduler(clock, "5m", 0.0, job)
    scheduler.start()
    await asyncio.wait_for(moved.wait(), 10)  # 4 closes = 0.4 s of wall time at 3000×
    scheduler.shutdown()
    watch.cancel()
    closes = [floor_time(t + timedelta(seconds=150), "5m") for t in fires]
    assert [b - a for a, b in itertools.pairwise(closes)] == [timedelta(minutes=5)] * 3
    assert len(steps) == 1
    assert steps[0] == pytest.approx(step_s, abs=1.0)


def test_the_candle_that_just_closed() -> None:
    """Two seconds after 12:05 the 12:00 candle is the one that closed."""
    assert just_closed(datetime(2024, 1, 1, 12, 5, 2, tzinfo=UTC), "5m") == datetime(
        2024, 1, 1, 12, 0, tzinfo=UTC
    )


def test_notifier_sends_datagrams_and_is_silent_outside_systemd(tmp_path: Path) -> None:
    """READY/STATUS/STOPPING reach NOTIFY_SOCKET; without it nothing is sent."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000"})
        assert notifier.enabled
        assert notifier.watchdog_interval_s == 10
        notifier.ready("recovered")
        notifier.stopping()
        assert server.recv(1024) == b"READY=1\nSTATUS=recovered"
        assert server.recv(1024) == b"STOPPING=1\nSTATUS=stopping"
    quiet = Notifier({})
    assert not quiet.enabled
    quiet.ready("nobody listens")


def test_a_cycle_firing_early_or_late_decides_the_right_candle() -> None:
    """A timer 2 s early or 40 s late at the 12:05 boundary still decides the 12:00 candle."""
    from tbotd.daemon.schedule import candle_of_fire

    twelve = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    for offset in (-2, 0, 0.05, 40):
        fired = twelve + timedelta(minutes=5, seconds=offset)
        assert candle_of_fire(fired, "5m") == twelve


def test_sighup_reload_applies_strategy_changes_and_refuses_restart_ones(tmp_path: Path) -> None:
    """A valid reload changes the threshold live; a new symbol list waits for a restart."""
    from tbotd.config import load_settings
    from tbotd.daemon.lifecycle import Daemon
    from tests.conftest import CONFIGS

    config = tmp_path / "tbotd.toml"
    text = (CONFIGS / "ml_usdt_directional.toml").read_text()
    config.write_text(text)
    daemon = Daemon(load_settings(config, {}), config)
    config.write_text(text.replace("threshold = 0.70", "threshold = 0.80"))
    done = daemon.reload()
    assert daemon.settings.strategy.threshold == 0.80
    assert done is not None
    assert done.changes == ("strategy.threshold: 0.7 -> 0.8",)  # it says what it changed
    config.write_text(
        text.replace('["BTC/USDT:USDT"]', '["ETH/USDT:USDT"]').replace("0.70", "0.90")
    )
    done = daemon.reload()
    assert daemon.settings.exchange.symbols == ("BTC/USDT:USDT",)
    assert daemon.settings.strategy.threshold == 0.80  # nothing half-applied
    assert done is not None
    assert (done.applied, done.restart) == (False, ("exchange.symbols",))
    assert done.refused == "needs a restart: exchange.symbols"
    config.write_text("this is not toml [")
    daemon.reload()
    assert daemon.settings.strategy.threshold == 0.80


def test_sighup_reload_rebuilds_the_strategy_of_any_kind(tmp_path: Path) -> None:
    """Reloading a config whose strategy changed kind (ML alone → mean reversion boosted by ML)
    hands the running cycle a new strategy built by build_strategy; a broken one keeps the old."""
    from types import SimpleNamespace

    from tbotd.config import load_settings
    from tbotd.daemon.lifecycle import Daemon
    from tbotd.strategy.strategy import Strategy
    from tests.conftest import CONFIGS

    config = tmp_path / "tbotd.toml"
    config.write_text((CONFIGS / "ml_usdt_directional.toml").read_text())
    daemon = Daemon(load_settings(config, {}), config)
    used: list[Strategy] = []
    risk = SimpleNamespace(limits=None)
    cycle = SimpleNamespace(
        settings=daemon.settings, use_strategy=used.append, risk=risk, monitor=None
    )
    events: list[tuple[str, str, dict[str, object]]] = []
    store = SimpleNamespace(record_event=lambda _at, kind, msg, **d: events.append((kind, msg, d)))
    clock = SimpleNamespace(now=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    daemon.app = SimpleNamespace(  # type: ignore[assignment]
        settings=daemon.settings, cycle=cycle, broker=None, store=store, clock=clock
    )
    enhanced = (CONFIGS / "ml_enhanced_mean_reversion.toml").read_text()
    config.write_text(
        enhanced.replace(
            'instance = "ml-enhanced-mean-reversion"', 'instance = "usdt-directional"'
        ).replace('path = "ml-enhanced-mean-reversion.sqlite"', 'path = "usdt-directional.sqlite"')
        + "\n[risk]\nmax_drawdown_pct = 12\n"
    )
    daemon.reload()
    assert [s.name for s in used] == ["ml_enhanced:boost:mean_reversion"]
    assert risk.limits is not None
    assert risk.limits.max_drawdown == Decimal("0.12")  # the risk limits change live too
    [(kind, _message, data)] = events  # recorded with what changed
    assert (kind, data["applied"]) == ("config-reload", True)
    assert "risk.max_drawdown_pct: None -> 12" in data["changes"]  # type: ignore[operator]
    config.write_text(enhanced.replace('mode = "boost"', 'mode = "sideways"'))
    daemon.reload()
    assert len(used) == 1
    assert daemon.settings.strategy.kind == "ml_enhanced"


def test_a_reload_before_the_daemon_is_ready_waits_for_it(tmp_path: Path) -> None:
    """While the app is built or recovers, a SIGHUP changes nothing and is remembered, to be
    applied once the daemon is ready (not lost, not applied to a half-built app)."""
    from tbotd.config import load_settings
    from tbotd.daemon.lifecycle import Daemon
    from tbotd.ops.signals import RELOAD_PENDING
    from tests.conftest import CONFIGS

    config = tmp_path / "tbotd.toml"
    text = (CONFIGS / "ml_usdt_directional.toml").read_text()
    config.write_text(text)
    daemon = Daemon(load_settings(config, {}), config)
    daemon.reloads_now = False  # as from run() until ready
    config.write_text(text.replace("threshold = 0.70", "threshold = 0.80"))
    try:
        assert daemon.reload() is None
        assert RELOAD_PENDING.is_set()
        assert daemon.settings.strategy.threshold == 0.70
    finally:
        RELOAD_PENDING.clear()


def test_a_close_no_cycle_decided_is_reported_once_never_silently_skipped(tmp_path: Path) -> None:
    """A cycle that overran the next close: the next one reports the candles nobody decided
    (a missed-cycles event with their count), once; consecutive closes report nothing."""
    from types import SimpleNamespace

    from tbotd.config import load_settings
    from tbotd.daemon.lifecycle import Daemon
    from tests.conftest import CONFIGS

    config = tmp_path / "tbotd.toml"
    config.write_text((CONFIGS / "ml_usdt_directional.toml").read_text())
    daemon = Daemon(load_settings(config, {}), config)
    events: list[dict[str, object]] = []
    t0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    store = SimpleNamespace(
        query=lambda _sql: [{"t": None}],
        record_event=lambda _at, kind, _msg, **data: events.append({"kind": kind, **data}),
    )
    app = SimpleNamespace(store=store, clock=SimpleNamespace(now=lambda: t0))
    step = timedelta(minutes=5)
    # a fresh database: nothing to say
    daemon.missed.report(app.store, t0, t0, while_down=True)  # type: ignore[arg-type]
    daemon.missed.last_decided = t0
    daemon.missed.report(app.store, t0, t0 + step, while_down=False)  # type: ignore[arg-type]
    daemon.missed.last_decided = t0 + step
    assert events == []
    daemon.missed.report(app.store, t0, t0 + 4 * step, while_down=False)  # type: ignore[arg-type]
    daemon.missed.last_decided = t0 + 4 * step
    daemon.missed.report(app.store, t0, t0 + 5 * step, while_down=False)  # type: ignore[arg-type]
    assert events == [{"kind": "missed-cycles", "count": 2, "cause": "overran"}]
