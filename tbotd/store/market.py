"""Recording market-side facts: candles, predictions, decisions, funding, equity and events."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlite_utils

from tbotd.domain.actions import Action, DecisionTrace, OpenPosition
from tbotd.domain.market import Candle
from tbotd.domain.notices import EventRecord
from tbotd.domain.positions import FundingPayment
from tbotd.domain.prediction import Prediction
from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.ops.logs import get_logger
from tbotd.store.answers import answer_json, answer_rows
from tbotd.store.db import dec

log = get_logger(__name__)
EventListener = Callable[[EventRecord], None]


def to_json(value: Any) -> str:
    """JSON for audit columns: Decimals and times as exact strings, dataclasses as objects."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> Any:  # noqa: PLR0911 - one branch per JSON-able kind
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__} | {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class MarketRecords:
    """Mixin of :class:`tbotd.store.Store` for market data, model output and the audit trail."""

    db: sqlite_utils.Database
    _event_listeners: tuple[EventListener, ...] = ()

    def record_candles(self, candles: Iterable[Candle]) -> int:
        """Upsert closed candles; returns how many rows were written."""
        rows = [
            {
                "symbol": c.symbol,
                "timeframe": c.timeframe,
                "open_time": c.open_time_ms,
                "open": dec(c.open),
                "high": dec(c.high),
                "low": dec(c.low),
                "close": dec(c.close),
                "volume": dec(c.volume),
            }
            for c in candles
        ]
        if rows:
            self.db.table("candles").upsert_all(rows, pk=("symbol", "timeframe", "open_time"))
        return len(rows)

    def candles(
        self, symbol: str, timeframe: str, since: datetime | None = None, limit: int | None = None
    ) -> list[Candle]:
        """Stored candles, oldest first, from ``since`` on; only the newest ``limit`` if given."""
        where = "symbol = :s AND timeframe = :t AND open_time >= :since"
        params: dict[str, Any] = {
            "s": symbol,
            "t": timeframe,
            "since": datetime_to_ms(since) if since else -1,
        }
        sql = f"SELECT * FROM candles WHERE {where} ORDER BY open_time"  # noqa: S608 - constant
        if limit is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT :limit) ORDER BY open_time"  # noqa: S608
            params["limit"] = limit
        return [
            Candle(
                r["symbol"],
                r["timeframe"],
                ms_to_datetime(r["open_time"]),
                Decimal(r["open"]),
                Decimal(r["high"]),
                Decimal(r["low"]),
                Decimal(r["close"]),
                Decimal(r["volume"]),
            )
            for r in self.db.query(sql, params)
        ]

    def last_candle_time(self, symbol: str, timeframe: str) -> datetime | None:
        """Open time of the newest stored candle, or None."""
        row = self.db.execute(
            "SELECT MAX(open_time) FROM candles WHERE symbol = ? AND timeframe = ?",
            (symbol, timeframe),
        ).fetchone()
        return None if row[0] is None else ms_to_datetime(row[0])

    def record_prediction(self, prediction: Prediction, latency_ms: float, at: datetime) -> None:
        """Record the prediction used for a candle (one per symbol and candle)."""
        self.db.execute(
            """INSERT INTO predictions (symbol, candle_time, signal, confidence, take_profit,
                   stop_loss, sd, regime, model_version, source, latency_ms, created_at)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT (symbol, candle_time) DO UPDATE SET signal=excluded.signal,
                   confidence=excluded.confidence, take_profit=excluded.take_profit,
                   stop_loss=excluded.stop_loss, sd=excluded.sd, regime=excluded.regime,
                   model_version=excluded.model_version, source=excluded.source,
                   latency_ms=excluded.latency_ms, created_at=excluded.created_at""",
            (
                prediction.symbol,
                datetime_to_ms(prediction.timestamp),
                prediction.signal.value,
                prediction.confidence,
                dec(prediction.take_profit),
                dec(prediction.stop_loss),
                prediction.sd,
                to_json(prediction.regime) if prediction.regime else None,
                prediction.model_version,
                prediction.source.value,
                latency_ms,
                datetime_to_ms(at),
            ),
        )
        if prediction.models or prediction.refused:
            with self.db.atomic():  # executemany opens a transaction: commit it (or nest in one)
                self.db.conn.executemany(
                    """INSERT OR REPLACE INTO model_answers (symbol, candle_time, source, model,
                       version, probabilities, expected_return, sd, trained_until, refused,
                       detail) VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
                    answer_rows(prediction),
                )

    def model_answers(self, symbol: str, candle_time: datetime) -> list[dict[str, Any]]:
        """Each model's answer (or refusal) stored for ``symbol``'s candle, by source and model."""
        return [
            answer_json(r)
            for r in self.db.query(
                "SELECT * FROM model_answers WHERE symbol = ? AND candle_time = ? "
                "ORDER BY source, model",
                (symbol, datetime_to_ms(candle_time)),
            )
        ]

    def record_decision(
        self,
        symbol: str,
        candle_time: datetime,
        actions: Sequence[Action],
        at: datetime,
        trace: DecisionTrace | None = None,
    ) -> int:
        """Record the strategy's actions for a candle, and where its signal came from; returns
        the decision id."""
        entries = sum(1 for a in actions if isinstance(a, OpenPosition))
        why: tuple[str | None, ...] = (None,) * 5
        if trace is not None:
            why = (
                trace.strategy,
                None if trace.provenance is None else trace.provenance.value,
                None if trace.base is None else to_json(trace.base),
                None if trace.ml is None else to_json(trace.ml),
                to_json(trace.result),
            )
        cursor = self.db.execute(
            "INSERT INTO decisions (symbol, candle_time, actions, created_at, entries, "
            "strategy, provenance, base, ml, result) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                symbol,
                datetime_to_ms(candle_time),
                to_json(list(actions)),
                datetime_to_ms(at),
                entries,
                *why,
            ),
        )
        return int(cursor.lastrowid or 0)

    def entries_decided(self, symbol: str, after: datetime, before: datetime) -> int:
        """Entries decided for ``symbol`` on candles opened in (``after``, ``before``)."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(entries), 0) FROM decisions "
            "WHERE symbol = ? AND candle_time > ? AND candle_time < ?",
            (symbol, datetime_to_ms(after), datetime_to_ms(before)),
        ).fetchone()
        return int(row[0])

    def decision_exists(self, symbol: str, candle_time: datetime) -> bool:
        """A decision was already recorded for this candle (never decide the same candle twice)."""
        row = self.db.execute(
            "SELECT 1 FROM decisions WHERE symbol = ? AND candle_time = ?",
            (symbol, datetime_to_ms(candle_time)),
        ).fetchone()
        return row is not None

    def last_decided(self, symbol: str) -> datetime | None:
        """Open time of the newest candle of ``symbol`` with a recorded decision, or None."""
        row = self.db.execute(
            "SELECT MAX(candle_time) FROM decisions WHERE symbol = ?", (symbol,)
        ).fetchone()
        return None if row[0] is None else ms_to_datetime(row[0])

    def record_funding(self, payment: FundingPayment) -> None:
        """Record a funding payment (idempotent per symbol and funding time)."""
        self.db.execute(
            """INSERT OR IGNORE INTO funding
               (symbol, time, rate, position_qty, mark_price, amount, currency)
               VALUES (?,?,?,?,?,?,?)""",
            (
                payment.symbol,
                datetime_to_ms(payment.time),
                dec(payment.rate),
                dec(payment.position_qty),
                dec(payment.mark_price),
                dec(payment.amount),
                payment.currency,
            ),
        )

    def record_equity(
        self, at: datetime, currency: str, balance: Decimal, unrealized_pnl: Decimal
    ) -> None:
        """Record an equity snapshot (balance + unrealised PnL, in the share-class currency)."""
        self.db.execute(
            "INSERT OR REPLACE INTO equity VALUES (?,?,?,?,?)",
            (
                datetime_to_ms(at),
                currency,
                dec(balance),
                dec(unrealized_pnl),
                dec(balance + unrealized_pnl),
            ),
        )

    def record_event(
        self, at: datetime, kind: str, message: str, symbol: str | None = None, **data: Any
    ) -> None:
        """Append to the audit trail of everything unusual (gaps, mismatches, alerts).

        Every listener hears of the event even when the database refuses to record it (that
        is when an operator most needs to hear): see :meth:`add_event_listener`.
        """
        try:
            self.db.execute(
                "INSERT INTO events (time, kind, symbol, message, data) VALUES (?,?,?,?,?)",
                (datetime_to_ms(at), kind, symbol, message, to_json(data) if data else None),
            )
        finally:
            if self._event_listeners:
                self._tell(EventRecord.of(at, kind, message, symbol, data))

    def add_event_listener(self, listener: EventListener) -> None:
        """Hand every future event to ``listener`` (e.g. the notifier), in the recording
        thread. A listener must be quick; its exceptions are logged, never raised here."""
        self._event_listeners = (*self._event_listeners, listener)

    def _tell(self, event: EventRecord) -> None:
        for listener in self._event_listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed", kind=event.kind)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Audit events, oldest first, optionally of one kind."""
        if kind is None:
            return list(self.db.query("SELECT * FROM events ORDER BY id"))
        return list(self.db.query("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,)))
