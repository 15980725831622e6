"""SIGHUP: re-read the config file and apply every change fully, or none of them.

What is live and what waits for a restart is :mod:`tbotd.config.scope`'s one definition. A
reload is prepared first — the file validated, the new strategy and (when ``ml`` changed) the
new predictor chain built, so a models directory that does not load refuses the reload like an
invalid file — and only then applied, in one synchronous step: the cycle never sees half of
it. When a cycle (or a reconciliation) holds the cycle lock, the step waits for the lock, so a
cycle runs wholly on the old config or wholly on the new one; the old chain is closed once no
cycle can be using it. The live broker takes the new leverage and sets it on the venue at the
next close's check, which every entry waits for. Each reload is logged and recorded as a
``config-reload`` event (what changed, whether it was applied, why not).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tbotd.config import ConfigInvalidError, Settings, load_settings
from tbotd.config.scope import ReloadPlan, plan_reload
from tbotd.daemon.monitor import rule_book
from tbotd.domain.errors import ConfigError, StorageUnavailableError
from tbotd.execution.broker import Broker
from tbotd.execution.live import LiveBroker
from tbotd.execution.paper import PaperBroker
from tbotd.execution.paper_model import FillParams
from tbotd.ops.logs import configure_for, get_logger
from tbotd.ops.signals import RELOAD_PENDING
from tbotd.strategy.build import build_strategy, exit_params
from tbotd.strategy.strategy import Strategy

if TYPE_CHECKING:
    from tbotd.daemon.app import App
    from tbotd.daemon.lifecycle import Daemon
    from tbotd.predictor.fallback import FallbackPredictor

log = get_logger(__name__)


@dataclass(frozen=True)
class Reloaded:
    """What a reload did: each changed key as ``key: old -> new`` (secrets masked), the keys
    that need a restart, and why nothing was applied (empty when it was)."""

    applied: bool
    changes: tuple[str, ...]
    restart: tuple[str, ...] = ()
    refused: str = ""


@dataclass(frozen=True)
class _Prepared:
    """Everything built before anything is applied (building may fail; applying may not)."""

    trading: Settings  # the new settings with the symbols the app trades (start-up narrowed)
    strategy: Strategy | None  # None: the strategy is unchanged (a models-only reload)
    chain: FallbackPredictor | None  # None: ``ml`` unchanged
    retune: bool


def reload(daemon: Daemon) -> Reloaded | None:
    """Re-read ``daemon``'s config file; apply it all or refuse it all (see module docstring).

    None without a config file, when the file is invalid (its problems are logged), or before
    the daemon is ready (remembered, and applied once it is: the app being built or recovering
    still uses the old config)."""
    if daemon.config_path is None:
        return None
    if not daemon.reloads_now:  # the app is being built or recovering from the old config
        RELOAD_PENDING.set()
        log.info("config reload deferred until the daemon is ready")
        return None
    try:
        new = load_settings(daemon.config_path)
    except ConfigInvalidError as e:
        problems = [str(p) for p in e.problems]
        log.error("config reload refused", problems=problems)  # noqa: TRY400
        _record(daemon.app, "config reload refused: the file is invalid", problems=problems)
        return None
    plan = plan_reload(daemon.settings, new, ml_live=daemon.builds_predictor)
    if plan.restart:
        return _refuse(daemon, plan, f"needs a restart: {', '.join(plan.restart)}")
    app = daemon.app
    prepared = None
    if app is not None:
        try:
            prepared = _prepare(app, daemon.settings, new, plan)
        except ConfigError as e:
            return _refuse(daemon, plan, str(e))
    daemon.settings = new
    configure_for(new)
    if app is not None and prepared is not None:
        _apply_between_cycles(daemon, app, prepared)
    log.info("config reloaded", changes=list(plan.changes) or "none")
    _record(app, f"config reloaded: {len(plan.changes)} change(s)", plan, applied=True)
    return Reloaded(applied=True, changes=plan.changes)


def reload_models(daemon: Daemon, why: str) -> Reloaded:
    """Rebuild the predictor chain from the same config because ``ml.models_dir`` changed on
    disk (a promotion, a rollback, a hand copy): the models are checked as at start-up
    (manifest, hashes), a directory that does not load is refused with a
    ``models-dir-refused`` event and the running chain stays."""
    app = daemon.app
    if app is None or not daemon.builds_predictor:
        return Reloaded(applied=False, changes=(), refused="no predictor chain of its own")
    try:
        chain = _new_chain(app, app.settings, app.settings)
    except ConfigError as e:
        log.warning("models directory refused; the running models stay", reason=str(e))
        with contextlib.suppress(StorageUnavailableError):
            app.store.record_event(
                app.clock.now(), "models-dir-refused", f"{why}: refused, {e}", reason=str(e)
            )
        return Reloaded(applied=False, changes=(), refused=str(e))
    _apply_between_cycles(daemon, app, _Prepared(app.settings, None, chain, retune=False))
    versions = [getattr(m, "model_version", "") for m in getattr(chain, "local", ())]
    log.info("models reloaded", why=why, model_versions=versions)
    with contextlib.suppress(StorageUnavailableError):
        app.store.record_event(
            app.clock.now(), "models-reloaded", f"{why}: reloaded", model_versions=versions
        )
    return Reloaded(applied=True, changes=("ml.models_dir",))


def _refuse(daemon: Daemon, plan: ReloadPlan, why: str) -> Reloaded:
    log.warning("config reload refused; nothing applied", reason=why, changes=list(plan.changes))
    _record(daemon.app, f"config reload refused: {why}", plan, applied=False, reason=why)
    return Reloaded(applied=False, changes=plan.changes, restart=plan.restart, refused=why)


def _prepare(app: App, old: Settings, new: Settings, plan: ReloadPlan) -> _Prepared:
    """Build what the new config needs; ConfigError (saying why) when it cannot be built."""
    trading = new.model_copy(update={"exchange": app.settings.exchange})  # as trading
    strategy = build_strategy(trading)  # its streams restart from history
    chain = _new_chain(app, old, trading) if plan.rebuild_ml else None
    return _Prepared(trading, strategy, chain, plan.retune_broker)


def _new_chain(app: App, old: Settings, new: Settings) -> FallbackPredictor:
    """The predictor chain of ``new`` (blocking: loads the local models, as start-up does).

    Models that do not load refuse the reload when the running chain is better off: a new
    directory, or the same one while the running chain has local models."""
    from tbotd.predictor.fallback import FallbackPredictor

    chain = FallbackPredictor.from_settings(new, events=app.store, clock=app.clock)
    failure = chain.local_unavailable
    running_has_local = bool(getattr(app.predictor, "local", ()))
    if (
        failure is not None
        and new.ml.models_dir is not None
        and (new.ml.models_dir != old.ml.models_dir or running_has_local)
    ):
        # dropped as is: no local model loaded, and the remote session opens at the first call
        detail = f" ({failure.detail})" if failure.detail else ""
        raise ConfigError(f"ml.models_dir {new.ml.models_dir}: {failure}{detail}")
    return chain


def _apply_between_cycles(daemon: Daemon, app: App, prepared: _Prepared) -> None:
    """Apply now when no cycle runs (nothing can start before this returns), else as soon as
    the running one ends (the lock is fair: the next cycle queues behind)."""
    if not daemon.cycle_lock.locked():
        old = _apply(app, prepared)
        if old is not None:
            _close_soon(daemon, old)
        return

    async def when_free() -> None:
        async with daemon.cycle_lock:
            old = _apply(app, prepared)
            if old is not None:
                await _close(old)

    daemon.supervisor.spawn(when_free(), "apply config reload")


def _apply(app: App, prepared: _Prepared) -> Any:
    """Swap everything in one synchronous step; returns the replaced predictor, if any."""
    settings = prepared.trading
    app.settings = settings
    app.cycle.settings = settings
    if prepared.strategy is not None:
        app.cycle.use_strategy(prepared.strategy)
    app.cycle.risk.limits = settings.risk.limits()  # its state (trips, peak) stays
    if prepared.retune:
        retune(app.broker, settings)
    if app.cycle.monitor is not None:  # a new model; the old one's pending predictions keep theirs
        fee = float(settings.execution.taker_fee_bps)
        monitor = app.cycle.monitor
        monitor.rules = monitor.rules.merged(rule_book(settings.ml.models_dir, fee))
        monitor.health.trade_when_degraded = settings.ml.trade_when_degraded
    if prepared.chain is None:
        return None
    old = app.predictor
    app.predictor = app.cycle.predictor = prepared.chain
    return old


def retune(broker: Broker, settings: Settings) -> None:
    """Hand ``broker`` the leverage, fill costs and fallback exits of ``settings`` (new
    positions only: an open one keeps the leverage it was opened with)."""
    exits = exit_params(settings)
    if isinstance(broker, LiveBroker):
        broker.retune(settings.execution.leverage, exits)
    elif isinstance(broker, PaperBroker):
        broker.retune(fill_params(settings), exits)


def fill_params(settings: Settings) -> FillParams:
    """The paper broker's costs and leverage from the execution section."""
    execution = settings.execution
    return FillParams(
        slippage_bps=execution.slippage_bps,
        taker_fee_bps=execution.taker_fee_bps,
        leverage=Decimal(execution.leverage),
    )


def _close_soon(daemon: Daemon, predictor: Any) -> None:
    """Close ``predictor`` in the background (the reload runs in a signal handler)."""
    daemon.supervisor.spawn(_close(predictor), "close the replaced predictor")


async def _close(predictor: Any) -> None:
    close: Callable[[], Any] | None = getattr(predictor, "close", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # a session that will not close must not fail the daemon
        log.exception("closing the replaced predictor failed")


def _record(
    app: App | None,
    message: str,
    plan: ReloadPlan | None = None,
    *,
    applied: bool = False,
    **data: Any,
) -> None:
    """The ``config-reload`` event (the log line says it anyway when the store cannot)."""
    if app is None:
        return
    if plan is not None:
        data |= {"changes": list(plan.changes), "restart": list(plan.restart)}
    with contextlib.suppress(StorageUnavailableError):
        app.store.record_event(app.clock.now(), "config-reload", message, applied=applied, **data)
