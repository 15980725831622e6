"""The daemon's periodic work beside the cycles, kept off the closes (:mod:`.between`):

* reconciliation every ``daemon.reconcile_interval_s``, holding the cycle lock only between
  closes;
* the venue's clock re-read every ``daemon.clock_resync_s``, between closes (a cycle reads it
  itself only when the venue's streams show the two clocks a candle or more apart);
* while the database cannot be written, a small write now and then, and reconciliation once
  it works again.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from tbotd.daemon.between import margin_for
from tbotd.domain.errors import StorageUnavailableError
from tbotd.notify.classify import storage_notice
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import DAEMON_METRICS
from tbotd.ops.retry import Backoff

if TYPE_CHECKING:
    from tbotd.daemon.app import App
    from tbotd.daemon.lifecycle import Daemon

log = get_logger(__name__)
STORAGE_RETRY = Backoff(attempts=1_000_000, base_s=2.0, cap_s=60.0)


async def reconcile_forever(daemon: Daemon, app: App) -> None:
    """Reconcile every interval, between closes; a failed round (the venue down a moment) is
    logged and the next interval runs again."""
    took = timedelta(0)
    while True:
        await app.clock.sleep(daemon.settings.daemon.reconcile_interval_s)
        try:
            took = await reconcile_between_closes(daemon, app, took)
        except Exception:
            log.exception("periodic reconciliation failed; trying again next interval")
            DAEMON_METRICS.errors.labels("reconcile").inc()
            continue
        daemon.last_reconciled = app.clock.now()


async def reconcile_between_closes(daemon: Daemon, app: App, took: timedelta) -> timedelta:
    """One reconciliation, started only where it cannot hold the cycle lock at a close (room
    for twice the last one's duration); returns how long it took (exchange time)."""
    margin = margin_for(daemon.settings.exchange.timeframe, took)
    while True:
        await daemon.between.quiet(app.clock, margin)
        async with daemon.cycle_lock:
            if daemon.between.wait_s(app.clock.now(), margin) is not None:
                continue  # a close came near while this waited for the lock: after its cycle
            began = app.clock.now()
            fixes = await app.broker.reconcile()
            took = app.clock.now() - began
        if fixes:
            log.warning("periodic reconciliation fixed differences", fixes=fixes)
        return took


async def resync_forever(daemon: Daemon, app: App) -> None:
    """Re-anchor the daemon's clock on the venue's every ``clock_resync_s``, between closes
    (a request at a close would be a round trip before the first order)."""
    margin = margin_for(daemon.settings.exchange.timeframe, timedelta(0))
    while True:
        await app.clock.sleep(daemon.settings.daemon.clock_resync_s)
        await daemon.between.quiet(app.clock, margin)
        try:  # a transient failure keeps the anchor (resync_clock); anything else is logged
            await app.resync_clock()
        except Exception:
            log.exception("clock resync failed; keeping the anchor until the next one")


async def watch_storage(daemon: Daemon, app: App) -> None:
    """While the database cannot be written, try a small write now and then; once it works,
    reconcile (the records of what happened meanwhile come from the venue)."""
    failures = 0
    while True:
        await app.clock.sleep(STORAGE_RETRY.delay(failures) if failures else 5.0)
        if app.store.unwritable is None:
            failures = 0
            continue
        if not app.store.probe():
            failures += 1
            daemon._storage_down(app, app.store.unwritable or "")
            continue
        failures = 0
        log.warning("database writable again; reconciling")
        with contextlib.suppress(StorageUnavailableError):
            app.store.record_event(app.clock.now(), "storage", "database writable again")
        try:  # this task must outlive a failed reconciliation: it is the one that probes
            async with daemon.cycle_lock:
                await app.broker.reconcile()
        except Exception as e:  # noqa: BLE001 - the periodic reconciliation catches up
            log.warning("reconciliation after the storage outage failed", error=repr(e))
        daemon.notifier.status("database writable again; cycling")
        daemon.notifications.notify(storage_notice(app.clock.now(), writable=True))
