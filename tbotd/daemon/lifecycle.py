"""The daemon's life: recover, become ready, cycle every candle, stop cleanly on a signal.

* Startup is recovery (the broker reconciles with the venue, the feed fills history) before
  READY=1 and before the first cycle; cycles missed while down are logged, never replayed.
* SIGTERM/SIGINT: stop taking new decisions, let the in-flight cycle finish, leave protective
  orders where they are, flush the store, exit 0. A second signal exits at once.
* SIGHUP: reload the config file, applying every change fully or none
  (:mod:`tbotd.daemon.reload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from tbotd import __version__
from tbotd.config import Settings
from tbotd.daemon.app import App, build
from tbotd.daemon.background import STORAGE_RETRY, reconcile_forever, resync_forever, watch_storage
from tbotd.daemon.between import BetweenCloses
from tbotd.daemon.cycle_ports import Predictor
from tbotd.daemon.dashboard import DaemonDashboard
from tbotd.daemon.missed import MissedCloses
from tbotd.daemon.reload import Reloaded
from tbotd.daemon.reload import reload as reload_config
from tbotd.daemon.retrain import models_forever, recover_models
from tbotd.daemon.schedule import (
    CandleCloseScheduler,
    candle_of_fire,
    cycle_scheduler,
    venue_drifted,
    watch_wall_clock,
)
from tbotd.daemon.status import readiness, record_metrics, status
from tbotd.daemon.systemd import Notifier
from tbotd.daemon.venue_wait import StartCancelled, StartupWait
from tbotd.domain.errors import StorageUnavailableError
from tbotd.execution.live import LiveBroker
from tbotd.notify import lifecycle as said
from tbotd.notify.classify import storage_notice
from tbotd.notify.service import Notifications
from tbotd.ops.http import OpsServer
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import DAEMON_METRICS, REGISTRY
from tbotd.ops.signals import RELOAD_PENDING
from tbotd.ops.tasks import TaskSupervisor

log = get_logger(__name__)


class Daemon:
    """One tbotd instance from start to exit code."""

    def __init__(
        self,
        settings: Settings,
        config_path: Path | None = None,
        predictor: Predictor | None = None,
        on_cycle: Callable[[Any], None] | None = None,
        *,
        scheduled: bool = True,
    ) -> None:
        self.settings, self.config_path = settings, config_path
        self._predictor, self._on_cycle = predictor, on_cycle
        self._scheduled = scheduled  # False: whoever drives the market calls :meth:`tick`
        self.notifier = Notifier()
        self.notifications = Notifications.from_settings(settings)
        self.supervisor = TaskSupervisor()
        self.stop_requested = asyncio.Event()
        self.ready = asyncio.Event()
        self._cycle_lock = asyncio.Lock()
        self._signals = 0
        self.app: App | None = None
        self._crashing: BaseException | None = None
        self.cycles = 0
        self.ops_url = ""
        self.waiting_for: str | None = None  # why start-up is still waiting (for /readyz)
        self.dashboard: DaemonDashboard | None = None
        self.missed = MissedCloses(settings.exchange.timeframe, settings.daemon.grace_s)
        self.between = BetweenCloses(settings.exchange.timeframe, settings.daemon.grace_s)
        self.last_reconciled: datetime | None = None  # recovery, then each periodic round
        self.reloads_now = True  # False from run() until ready: a SIGHUP waits for the app

    async def run(self) -> int:
        """Run until a stop signal (exit 0) or a critical failure (exit 1).

        The ops endpoint comes up first, so `/readyz` answers (not ready, and why) while the
        daemon waits for the exchange or recovers.
        """
        self.reloads_now = False
        self._install_signals()
        self.notifications.start()
        self.dashboard = dashboard = DaemonDashboard(self)
        ops = self._ops_server(dashboard)
        try:
            self.ops_url = await ops.start()
            app = await self._start()
            if app is None:
                return 0
            return await self._serve(app)
        finally:
            await ops.stop()
            dashboard.close()

    async def _start(self) -> App | None:
        """Wire the app, waiting for the exchange as long as it takes; None when a stop came
        first."""
        holder = f"tbotd run --config {self.config_path}, instance {self.settings.instance}"
        wait = StartupWait(
            self.stop_requested,
            self._waiting_for_exchange,
            self.settings.daemon.startup_retry_cap_s,
        )
        recover_models(self.settings)  # an interrupted model switch: finished or undone first
        try:
            self.app = app = await build(self.settings, self._predictor, holder, wait)
        except StartCancelled:
            log.info("stopped before the exchange answered")
            await self.notifications.close()
            return None
        except BaseException as e:
            self.notifications.notify(said.failed_to_start(_now(), f"{type(e).__name__}: {e}"))
            await self.notifications.close()
            raise
        self.waiting_for = None
        self._announce_start(app)
        return app

    def _waiting_for_exchange(self, cause: str) -> None:
        """Each failed attempt: `/readyz`'s reason, systemd's STATUS, and more start-up time
        (a Type=notify unit would otherwise be killed by TimeoutStartSec while it waits)."""
        self.waiting_for = f"waiting for exchange: {cause}"
        self.notifier.send(STATUS=self.waiting_for[:200], EXTEND_TIMEOUT_USEC=str(120_000_000))

    async def _serve(self, app: App) -> int:
        """Recover, schedule, and cycle until a stop or a failure."""
        scheduler = None
        if self.dashboard is not None:
            app.store.add_event_listener(self.dashboard.heard)
        try:
            await self._recover(app)
            now = app.clock.now()
            self.missed.report(app.store, now, self.missed.first_to_decide(now), while_down=True)
            self._spawn_background(app)
            await app.resync_clock()  # recovery may have been long: schedule from the venue's now
            if self._scheduled:
                scheduler = cycle_scheduler(
                    app.clock,
                    self.settings.exchange.timeframe,
                    self.settings.daemon.grace_s,
                    self._tick,
                )
                scheduler.start()
                self.between.start(app.clock.now())  # background work keeps off its closes
            self._announce_ready(app)
            stop = asyncio.create_task(self.stop_requested.wait())
            failed = asyncio.create_task(self.supervisor.failed.wait())
            await asyncio.wait({stop, failed}, return_when=asyncio.FIRST_COMPLETED)
            for task in (stop, failed):
                task.cancel()
        except Exception as e:
            self._crashing = e
            raise
        finally:
            await self._shutdown(app, scheduler)
        return 1 if self.supervisor.failure is not None and not self.stop_requested.is_set() else 0

    def _announce_ready(self, app: App) -> None:
        self.reloads_now = True
        if RELOAD_PENDING.is_set():  # a SIGHUP before we were ready: applied now, not lost
            RELOAD_PENDING.clear()
            self.reload()
        self.ready.set()
        self.notifier.ready("recovered; cycling")
        trading = app.settings.exchange.symbols  # without any the venue does not trade
        self.notifications.notify(
            said.ready(app.clock.now(), len(trading), len(app.store.positions()))
        )
        log.info(
            "ready",
            instance=self.settings.instance,
            mode=str(self.settings.execution.mode),
            symbols=list(trading),
        )

    async def _recover(self, app: App) -> None:
        """Startup is recovery; a database that cannot be written delays it, never ends it:
        the live broker protects every position from the venue's own state meanwhile."""
        failures = 0
        while True:
            try:
                await app.recover()
            except StorageUnavailableError as e:
                delay = STORAGE_RETRY.delay(failures)
                failures += 1
                self._storage_down(app, str(e))
                await app.clock.sleep(delay)
                app.store.probe()
            else:
                self.last_reconciled = app.clock.now()
                return

    def _storage_down(self, app: App, why: str) -> None:
        """Say it everywhere an operator looks; take no new risk; protect from the venue."""
        log.error("database cannot be written: no new entries, protecting", error=why)
        DAEMON_METRICS.errors.labels("storage").inc()
        self.notifier.status(f"database cannot be written ({why}); protecting positions")
        self.notifications.notify(storage_notice(app.clock.now(), writable=False, why=why))
        repair = getattr(app.broker, "repair_soon", None)
        if repair is not None:
            repair.set()

    async def tick(self) -> None:
        """One cycle now, as the scheduler would run it: the demo drives its paused market in
        lockstep with this (a candle closes, the daemon decides it, the market moves on). The
        market jumped, so the venue's clock is read first."""
        if self.app is not None:
            await self.app.resync_clock()
        await self._tick()

    async def _tick(self) -> None:
        """The scheduled job: decide the candle that just closed (never two cycles at once)."""
        app = self.app
        if app is None or self.stop_requested.is_set():
            return
        self.between.cycle_began(candle_of_fire(app.clock.now(), self.settings.exchange.timeframe))
        async with self._cycle_lock:
            candle_time = await self._candle_to_decide(app)
            self.missed.report(app.store, app.clock.now(), candle_time, while_down=False)
            self.missed.last_decided = candle_time
            if app.store.unwritable is not None:
                self._storage_down(app, app.store.unwritable)
                return  # no decision without a record of it; positions keep their protection
            try:
                report = await app.cycle.run(candle_time)
            except StorageUnavailableError as e:
                self._storage_down(app, str(e))
                return
            except Exception:  # a bad cycle is logged; the next one starts clean (crash-only)
                log.exception("cycle failed", candle=candle_time.isoformat())
                DAEMON_METRICS.errors.labels("cycle").inc()
                with contextlib.suppress(StorageUnavailableError):
                    app.store.record_event(app.clock.now(), "cycle-failed", candle_time.isoformat())
                return
            self.cycles += 1
            record_metrics(self, report)
            self.notifier.status(f"cycle {candle_time.isoformat()}: {report.decisions} decided")
            if self._on_cycle is not None:
                self._on_cycle(report)

    async def _candle_to_decide(self, app: App) -> datetime:
        """The candle this fire decides, by the daemon's clock — anchored on the venue's between
        closes, so no request delays the decision; re-read first only when the venue's streams
        show its current candle a candle or more away from ours (a venue paused or jumped)."""
        timeframe = self.settings.exchange.timeframe
        candle_time = candle_of_fire(app.clock.now(), timeframe)
        if venue_drifted(candle_time, app.feed.forming_open(), timeframe):
            log.info("venue clock moved; re-reading it", candle=candle_time.isoformat())
            await app.resync_clock()
            candle_time = candle_of_fire(app.clock.now(), timeframe)
        return candle_time

    def _ops_server(self, dashboard: DaemonDashboard) -> OpsServer:
        ops = self.settings.ops
        token = ops.token.get_secret_value() if ops.token else None
        return OpsServer(
            ops.host,
            ops.port,
            token,
            REGISTRY,
            status=lambda: status(self),
            ready=lambda: readiness(self),
            dashboard=dashboard,
            allow_write=ops.allow_write,
        )

    def _spawn_background(self, app: App) -> None:
        self.supervisor.spawn(app.feed.run(), "candle feed", critical=True)
        self.supervisor.spawn(self.notifier.watchdog_forever(), "systemd watchdog")
        self.supervisor.spawn(self._reconcile_forever(app), "reconciliation")
        self.supervisor.spawn(resync_forever(self, app), "clock resync")
        self.supervisor.spawn(watch_storage(self, app), "storage watch")
        if self.builds_predictor:
            self.supervisor.spawn(models_forever(self, app), "model retrain and watch")
        self.supervisor.spawn(watch_wall_clock(partial(_clock_stepped, app)), "wall clock watch")
        if isinstance(app.broker, LiveBroker):
            self.supervisor.spawn(app.broker.watch_user_stream(), "user-data stream")
            self.supervisor.spawn(app.broker.protect_forever(), "protection repair")

    async def _reconcile_forever(self, app: App) -> None:
        await reconcile_forever(self, app)

    async def _shutdown(self, app: App, scheduler: CandleCloseScheduler | None) -> None:
        self.notifier.stopping()
        if scheduler is not None:  # nothing new starts (shutdown would cancel the running job)
            scheduler.pause()
        try:  # the in-flight cycle finishes
            await asyncio.wait_for(self._cycle_lock.acquire(), self.settings.daemon.stop_timeout_s)
        except TimeoutError:
            log.error("in-flight cycle did not finish in time; stopping anyway")  # noqa: TRY400
        if scheduler is not None:
            scheduler.shutdown()
        await self.supervisor.close()
        try:
            await self._announce_stop(app)
        except Exception:  # saying it is best effort: the stop itself must go on
            log.exception("could not announce the stop")
        await app.close()
        log.info("stopped", cycles=self.cycles)

    async def _announce_stop(self, app: App) -> None:
        """The stop (after a failure, if any), sent before the process ends; then this run's
        clean-stop mark (without it, the next start says "crash")."""
        failure = self.supervisor.failure or self._crashing
        why = None if failure is None else f"{type(failure).__name__}: {failure}"
        self.notifications.notify(said.stopping(app.clock.now(), self.cycles, why))
        await self.notifications.close()
        with contextlib.suppress(StorageUnavailableError):
            app.store.set_meta(said.RUN_KEY, said.RunMark("stopped", os.getpid(), _now()).text())

    def _announce_start(self, app: App) -> None:
        """Start-up (or a crash-restart: the last run never marked a clean stop), and this
        run's mark."""
        previous = said.RunMark.parse(app.store.meta(said.RUN_KEY))
        settings = self.settings
        self.notifications.attach(app.store, app.clock)
        app.store.add_event_listener(self.notifications.offer)
        self.notifications.notify(
            said.starting(
                app.clock.now(),
                str(settings.execution.mode),
                settings.exchange.symbols,
                __version__,
                previous,
            )
        )
        with contextlib.suppress(StorageUnavailableError):
            app.store.set_meta(said.RUN_KEY, said.RunMark("running", os.getpid(), _now()).text())

    # -- signals -------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        if self.config_path is not None:
            loop.add_signal_handler(signal.SIGHUP, self.reload)

    def request_stop(self, why: str = "request") -> None:
        """First call: graceful stop. Second: exit at once."""
        self._signals += 1
        if self._signals > 1:
            log.warning("second stop signal: exiting now")
            os._exit(1)
        log.info("stopping", why=why)
        self.stop_requested.set()

    def reload(self) -> Reloaded | None:
        """Re-read the config file; apply every change fully, or none (see
        :mod:`tbotd.daemon.reload`). None without a config file or when the file is refused."""
        return reload_config(self)

    @property
    def cycle_lock(self) -> asyncio.Lock:
        """Held by a cycle, a reconciliation or the stop: a reload applies outside it."""
        return self._cycle_lock

    @property
    def builds_predictor(self) -> bool:
        """The predictor chain is the daemon's own (not injected), so a reload can rebuild it."""
        return self._predictor is None


def _now() -> datetime:
    return datetime.now(UTC)


def _clock_stepped(app: App, step_s: float) -> None:
    """The machine's clock jumped: an event (cycles follow the exchange's clock regardless)."""
    log.warning("system clock stepped; cycles keep the exchange's time", step_s=round(step_s, 3))
    with contextlib.suppress(StorageUnavailableError):
        app.store.record_event(
            app.clock.now(),
            "clock-step",
            f"the system clock jumped {step_s:+.1f} s; cycles keep following the exchange's clock",
            step_s=round(step_s, 3),
        )
