"""What the web dashboard asks a running daemon, answered from its records and memory.

Database questions go through the dashboard's :class:`~tbotd.ops.dashboard.reader.Reader`
(its own read-only connection, one worker thread); memory (readiness, the last cycle, the
predictor chain, the broker's protection verdicts) is read on the loop, as ``/status`` does.
The ML card's direction and confidence come from the same ``predictions`` rows ``/status``
reports, so the two always agree.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd import __version__
from tbotd.config import ConfigInvalidError, Settings, load_settings
from tbotd.config.edit import EDITABLE_SECTIONS, EditError, set_key
from tbotd.config.scope import LIVE_SECTIONS, RESTART_KEYS, changed_keys, effective
from tbotd.daemon.risk import META_COMMAND, META_STATE, command_from, risk_status
from tbotd.daemon.status import cycle_summary, readiness
from tbotd.domain.notices import EventRecord
from tbotd.domain.values import ms_to_datetime
from tbotd.ops.dashboard import reader as q
from tbotd.ops.dashboard import shape
from tbotd.ops.dashboard.reader import Reader
from tbotd.risk.codec import state_from
from tbotd.risk.guard import RiskState
from tbotd.strategy.build import build_strategy

if TYPE_CHECKING:
    from tbotd.daemon.lifecycle import Daemon

SPAN_DAYS = {"1d": 1, "1w": 7, "1m": 30, "1y": 365}
EDITABLE = tuple(f"{section}." for section in EDITABLE_SECTIONS)
REFRESH_S = 30  # the data version also moves this often (a fill between cycles shows anyway)


class DaemonDashboard:
    """The :class:`~tbotd.ops.dashboard.routes.DashboardSource` of one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._events = 0
        self.stopped: str | None = None  # why the daemon no longer runs (the demo's --keep-open)
        self._reader = Reader(Path(daemon.settings.store.path))

    def heard(self, _event: EventRecord) -> None:
        """A store event listener: something happened, the page's data changed."""
        self._events += 1

    def close(self) -> None:
        """Stop the reader's worker thread."""
        self._reader.close()

    def version(self) -> str:
        """Cycles, events heard, readiness and a 30-second tick: memory only, no query."""
        if self.stopped is not None:
            return f"stopped.{self.daemon.cycles}.{self._events}"
        ready, _ = readiness(self.daemon)
        tick = int(time.monotonic() // REFRESH_S)
        return f"{self.daemon.cycles}.{self._events}.{int(ready)}.{tick}"

    async def _risk_guard(self) -> dict[str, Any]:
        """The risk guard from the database, or why it cannot be read (a first start's page
        may ask before the database exists)."""
        try:
            return await self._reader.run(_risk_guard)
        except sqlite3.Error as e:
            return {"unavailable": f"the database cannot be read: {e}"}

    async def overview(self) -> dict[str, Any]:
        """Health, the ML cards, positions with protection, live orders, equity now."""
        daemon, app = self.daemon, self.daemon.app
        settings = daemon.settings
        ready, why = (False, self.stopped) if self.stopped else readiness(daemon)
        body: dict[str, Any] = {
            "instance": settings.instance,
            "version": __version__,
            "mode": str(settings.execution.mode),
            "strategy": build_strategy(settings).name,
            "symbols": list(settings.exchange.symbols),
            "timeframe": settings.exchange.timeframe,
            "health": {"ready": ready, "reason": why, "cycles": daemon.cycles},
            "risk_guard": await self._risk_guard(),
        }
        if daemon.notifications.enabled:  # names and schemes only: the URLs are secrets
            body["notifications"] = daemon.notifications.status()
        if app is None:
            return body
        symbols = settings.exchange.symbols
        found = await self._reader.run(lambda conn: _overview_rows(conn, symbols))
        now = app.clock.now()
        model, wall = _model_info(app.predictor), datetime.now(UTC)  # a model ages in wall time
        body["cards"] = {
            s: shape.ml_card(found["predictions"].get(s), found["decisions"].get(s), model, wall)
            for s in settings.exchange.symbols
        }
        verdicts: dict[str, Any] = (
            {} if self.stopped else getattr(app.broker, "protection_status", dict)()
        )
        body["positions"] = [_position(p, verdicts.get(p["symbol"])) for p in found["positions"]]
        body["orders"] = found["orders"]
        body["equity"] = found["equity"]
        body["last_reconciliation_event"] = found["last_reconciliation_event"]
        last = cycle_summary(app.cycle.last)
        body["health"] |= {
            "now": now.isoformat(),
            "last_cycle": last,
            "decision_ms": None if last is None else last["timings_ms"].get("total"),
            "database_unwritable": None if self.stopped else app.store.unwritable,
            "last_reconciled": _iso(getattr(daemon, "last_reconciled", None)),
        }
        predictor_status = getattr(app.predictor, "status", None)
        body["predictor"] = predictor_status() if predictor_status is not None else None
        return body

    async def chart(self, symbol: str, span: str) -> dict[str, Any]:
        """Candles, trades, protective levels and the ``sd`` band of one symbol."""
        settings = self.daemon.settings
        if symbol not in settings.exchange.symbols or span not in SPAN_DAYS:
            return {"error": f"unknown symbol {symbol!r} or span {span!r}"}
        timeframe = settings.exchange.timeframe
        days = SPAN_DAYS[span]

        def ask(conn: sqlite3.Connection) -> dict[str, Any]:
            last = q.last_candle_ms(conn, symbol, timeframe)
            if last is None:
                return {
                    "symbol": symbol,
                    "span": span,
                    "candles": [],
                    "sd_band": [],
                    "entries": [],
                    "exits": [],
                    "position": None,
                    "protective_orders": [],
                    "bars_total": 0,
                    "bucket": 1,
                }
            since = last - days * 86_400_000 + q.timeframe_ms(timeframe)
            return q.chart(conn, symbol, timeframe, since, last) | {"span": span}

        return await self._reader.run(ask)

    async def equity(self) -> dict[str, Any]:
        """The equity curve and its drawdown."""
        return await self._reader.run(q.equity)

    async def trades(self) -> dict[str, Any]:
        """Closed trades, newest first."""
        return {"trades": await self._reader.run(q.trades)}

    async def events(self) -> dict[str, Any]:
        """Events with the notifier's severity, alerts first."""
        found = await self._reader.run(q.events)
        for event in found:
            data = shape.parse_json(event.get("data"))
            at = ms_to_datetime(event["time"])
            severity = shape.severity_of(event["kind"], event["message"], event["symbol"], data, at)
            event["severity"] = None if severity is None else severity.value
        return {"events": shape.alerts_first(found)}

    def config(self) -> dict[str, Any]:
        """The effective config, secrets masked, each key live or restart."""
        return {
            "keys": effective(self.daemon.settings),
            "live_sections": list(LIVE_SECTIONS),
            "restart_keys": list(RESTART_KEYS),
        }

    async def write_config(
        self, changes: dict[str, Any], apply: bool
    ) -> tuple[int, dict[str, Any]]:
        """Check ``changes`` with the loader ``check-config`` uses and show the diff; with
        ``apply``, write the file and reload it (the SIGHUP path), journaled as an event."""
        daemon = self.daemon
        path = daemon.config_path
        if path is None:
            return 409, {"error": "this daemon runs without a config file: nothing to edit"}
        editable = {r["key"] for r in effective(daemon.settings) if not r["secret"]}
        refused = [k for k in changes if k not in editable or not k.startswith(EDITABLE)]
        if refused:
            return 400, {"error": f"not editable here: {', '.join(sorted(refused))}"}
        try:
            text = path.read_text(encoding="utf-8")
            for key, value in changes.items():
                text = set_key(text, key, value)
        except (OSError, EditError) as e:
            return 400, {"error": str(e)}
        try:
            new = await asyncio.to_thread(_validated, path, text)
        except ConfigInvalidError as e:
            problems = [  # the loader's words, about the operator's file (not the trial copy)
                f"{path}: {p.key or '(config)'}{f' = {p.value}' if p.value else ''}: {p.expected}"
                for p in e.problems
            ]
            return 422, {"error": "invalid", "problems": problems}
        diff = changed_keys(daemon.settings, new)
        if not apply:
            return 200, {"applied": False, "diff": diff}
        _write(path, text)
        done = daemon.reload()
        applied = done is not None and done.applied
        if daemon.app is not None:
            daemon.app.store.record_event(
                daemon.app.clock.now(),
                "config-change",
                "config changed from the dashboard" + ("" if applied else "; needs a restart"),
                changes=diff,
            )
        return 200, {
            "applied": applied,
            "diff": diff,
            "restart_needed": [] if done is None else list(done.restart),
            "refused": None if done is None or applied else done.refused,
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _overview_rows(conn: sqlite3.Connection, symbols: Sequence[str]) -> dict[str, Any]:
    return q.holdings(conn) | {
        "predictions": q.latest_per_symbol(conn, "predictions", symbols),
        "decisions": q.latest_per_symbol(conn, "decisions", symbols),
    }


def _position(row: dict[str, Any], judged: dict[str, Any] | None) -> dict[str, Any]:
    state = shape.protection_state(judged)
    return row | {
        "protection": state.value,
        "problems": [] if judged is None else judged.get("problems", []),
        "entries_refused": None if judged is None else judged.get("entries_refused"),
    }


def _model_info(predictor: object) -> shape.ModelInfo | None:
    """The first local model's version and training time (None: no local model)."""
    for model in getattr(predictor, "local", ()):
        manifest = getattr(model, "manifest", None)
        if manifest is None:
            continue
        try:
            created: datetime | None = datetime.fromisoformat(manifest.created_at)
        except (TypeError, ValueError):
            created = None
        return shape.ModelInfo(manifest.model_version, created)
    return None


def _validated(path: Path, text: str) -> Settings:
    """``text`` loaded as ``path`` would be (same loader, same environment)."""
    trial = path.with_name(f".{path.name}.dashboard-check")
    try:
        trial.write_text(text, encoding="utf-8")
        return load_settings(trial)
    finally:
        trial.unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    """Replace the config file atomically, keeping its mode."""
    staged = path.with_name(f".{path.name}.dashboard-new")
    staged.write_text(text, encoding="utf-8")
    staged.chmod(path.stat().st_mode & 0o777)
    staged.replace(path)


def _risk_guard(conn: sqlite3.Connection) -> dict[str, Any]:
    """The risk guard as `/status` reports it (what stops entries, a command not yet applied),
    or why it cannot be read (``unavailable``) — never "armed" for want of an answer."""
    try:
        return _risk_rows(conn)
    except (sqlite3.Error, ValueError, KeyError) as e:
        return {"unavailable": f"the risk guard's state cannot be read: {e}"}


def _risk_rows(conn: sqlite3.Connection) -> dict[str, Any]:
    rows = dict(
        conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (META_STATE, META_COMMAND))
    )
    raw = rows.get(META_STATE)
    return risk_status(
        RiskState() if not raw else state_from(json.loads(raw)),
        command_from(rows.get(META_COMMAND)),
    )
