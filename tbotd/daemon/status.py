"""What `/status`, `/readyz` and the metrics say about a running daemon — read from its records.

Everything here reads the store and in-memory state only (no exchange call), so the ops endpoint
answers instantly even while the venue is slow. Secrets never appear: the config is not part of
the status.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tbotd.daemon.cycle import CycleReport
from tbotd.daemon.monitor import ModelMonitor
from tbotd.daemon.risk import load_state, read_command, risk_status
from tbotd.domain.enums import Side
from tbotd.domain.values import ms_to_datetime, timeframe_delta
from tbotd.monitoring.report import models_json
from tbotd.ops.metrics import DAEMON_METRICS, DaemonMetrics

if TYPE_CHECKING:
    from tbotd.daemon.app import App
    from tbotd.daemon.lifecycle import Daemon
    from tbotd.store import Store


def readiness(daemon: Daemon) -> tuple[bool, str]:
    """Ready once recovery is done, the database can be written and every symbol's market data
    is live and fresh."""
    app = daemon.app
    if app is not None and app.store.unwritable is not None:
        return False, (
            f"database cannot be written ({app.store.unwritable}): no new entries; open "
            "positions are kept protected from the exchange's own state"
        )
    if app is None and daemon.waiting_for is not None:
        return False, daemon.waiting_for
    if app is None or not daemon.ready.is_set():
        return False, "recovering"
    if not app.feed.live.is_set():
        return False, "waiting for market data streams"
    stale = _stale_market_data(daemon, app)
    return (False, stale) if stale else (True, "ok")


def _stale_market_data(daemon: Daemon, app: App) -> str | None:
    """Why some symbol's data cannot be trusted: its last closed candle is more than two
    candles old, or its stream is connected but silent."""
    tf = daemon.settings.exchange.timeframe
    stale_after = 2 * timeframe_delta(tf) + timedelta(
        seconds=daemon.settings.daemon.confirm_after_s
    )
    now = app.clock.now()
    for symbol in app.settings.exchange.symbols:  # the ones the venue trades
        last = app.feed.last_closed(symbol)
        if last is None or now - (last + timeframe_delta(tf)) > stale_after:
            return f"market data for {symbol} is stale"
        if symbol in app.feed.silent:
            silent = app.feed.silent_for(symbol)
            return f"the {symbol} stream has sent nothing for {silent:.0f} s (redialling)"
    return None


async def status(daemon: Daemon) -> dict[str, Any]:
    """The `/status` document: positions, open orders, last predictions, equity, last cycle,
    and each model's rolling metrics (``models``)."""
    app = daemon.app
    ready, why = readiness(daemon)
    body: dict[str, Any] = {
        "instance": daemon.settings.instance,
        "mode": str(daemon.settings.execution.mode),
        "ready": ready,
        "reason": why,
        "cycles": daemon.cycles,
    }
    if daemon.notifications.enabled:  # names and schemes only: the URLs are secrets
        body["notifications"] = daemon.notifications.status()
    if app is None:
        return body
    body |= recorded(app.store, daemon.settings.exchange.symbols)
    protection = getattr(app.broker, "protection_status", None)
    if protection is not None:
        body["protection"] = protection()
    body["last_cycle"] = cycle_summary(app.cycle.last)
    body["risk"] = app.cycle.risk.status()  # the running daemon's own, newest
    predictor_status = getattr(app.predictor, "status", None)
    if predictor_status is not None:
        body["predictor"] = predictor_status()
    if app.cycle.monitor is not None:  # as of the last close: no database read here
        body["models"] = _models(app.cycle.monitor, body.get("predictor", {}))
    return body


def recorded(store: Store, symbols: Sequence[str] | None = None) -> dict[str, Any]:
    """What the database says: positions, open orders, each symbol's last prediction, equity.

    The running daemon's `/status` and `tbotd status` on a stopped daemon's database share it.
    ``symbols`` (the config's) spares a scan for which symbols were predicted.
    """
    if symbols is None:
        symbols = [r["symbol"] for r in store.query("SELECT DISTINCT symbol FROM predictions")]
    return {
        "positions": [
            {
                "symbol": p.symbol,
                "side": str(p.side),
                "qty": str(p.qty),
                "entry_price": str(p.entry_price),
                "stop_loss": _s(p.stop_loss),
                "take_profit": _s(p.take_profit),
                "opened_at": p.opened_at.isoformat(),
            }
            for p in store.positions().values()
        ],
        "open_orders": [
            {
                "client_id": o.client_id,
                "symbol": o.symbol,
                "role": str(o.role),
                "type": str(o.type),
                "side": str(o.side),
                "qty": str(o.qty),
                "trigger_price": _s(o.trigger_price),
                "state": str(o.state),
            }
            for o in store.live_orders()
        ],
        "predictions": {
            r["symbol"]: _prediction(store, r)
            for symbol in symbols
            # one index seek per symbol: a correlated MAX over a year of rows took ~1 s on the loop
            for r in store.query(
                "SELECT * FROM predictions WHERE symbol = ? ORDER BY candle_time DESC LIMIT 1",
                (symbol,),
            )
        },
        "equity": next(iter(store.query("SELECT * FROM equity ORDER BY time DESC LIMIT 1")), None),
        "risk": risk_status(load_state(store), read_command(store)),  # even while down
    }


def _models(monitor: ModelMonitor, chain: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model's rolling metrics with its health state, input drift and error-change test
    (the monitor's :meth:`~tbotd.daemon.monitor.ModelMonitor.snapshot`, which the daemon also
    saves for `tbotd models status`)."""
    graded = models_json(monitor.metrics())
    keys = [(m["name"], m["source"]) for m in graded]
    assessed = {(a["model"], a["source"]): a for a in monitor.snapshot(chain, keys)}
    out = []
    for m, key in zip(graded, keys, strict=True):
        a = assessed[key]
        health = {"state": a["state"], "reasons": a["reasons"]}
        out.append(m | {"health": health, "error_change": a["error_change"], "drift": a["drift"]})
    return out


def _prediction(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    """A symbol's last prediction with each model's own answer (``answers``: [] for schema 1)."""
    when = ms_to_datetime(row["candle_time"])
    return {
        "candle_time": when.isoformat(),
        "signal": row["signal"],
        "confidence": row["confidence"],
        "source": row["source"],
        "model_version": row["model_version"],
        "answers": store.model_answers(row["symbol"], when),
    }


def record_metrics(daemon: Daemon, report: CycleReport, m: DaemonMetrics = DAEMON_METRICS) -> None:
    """Update the daemon's Prometheus metrics after a cycle."""
    m.cycles.inc()
    m.decision_seconds.observe(report.timings_ms.get("total", 0.0) / 1000)
    m.candles_missing.inc(len(report.missing))
    for outcome in report.symbols:
        for result in outcome.results:
            kind = type(result.action).__name__
            m.orders.labels(kind, "ok" if result.done else "failed").inc()
    if report.equity is not None:
        m.equity.labels(daemon.settings.strategy.share_class).set(float(report.equity))
    m.last_cycle.set_to_current_time()
    if daemon.app is not None:
        record_trade_totals(daemon.app.store, daemon.settings.strategy.share_class, m)
        positions = daemon.app.store.positions()
        for symbol in daemon.settings.exchange.symbols:
            p = positions.get(symbol)
            signed = Decimal(0) if p is None else p.qty * (1 if p.side is Side.LONG else -1)
            m.position.labels(symbol).set(float(signed))


def record_trade_totals(store: Store, currency: str, m: DaemonMetrics = DAEMON_METRICS) -> None:
    """Closed trades, realised PnL and fees from the database (one aggregate query)."""
    (row,) = store.query(
        "SELECT COUNT(*) AS n, "
        "COALESCE(SUM(CAST(pnl AS REAL) - CAST(fees AS REAL) + CAST(funding AS REAL)), 0) AS net, "
        "COALESCE(SUM(CAST(fees AS REAL)), 0) AS fees FROM trades"
    )
    m.trades.set(row["n"])
    m.realized.labels(currency).set(row["net"])
    m.fees.labels(currency).set(row["fees"])


def cycle_summary(report: CycleReport | None) -> dict[str, Any] | None:
    """The last cycle as ``/status`` and the dashboard show it."""
    if report is None:
        return None
    return {
        "candle_time": report.candle_time.isoformat(),
        "decisions": report.decisions,
        "missing": report.missing,
        "timings_ms": report.timings_ms,
        "equity": _s(report.equity),
        "actions": {
            s.symbol: [
                {"action": type(r.action).__name__, "done": r.done, "detail": r.detail}
                for r in s.results
            ]
            for s in report.symbols
        },
    }


def _s(value: object) -> str | None:
    return None if value is None else str(value)
