"""Recording prediction outcomes and reading them back for the metrics (ARCHITECTURE: monitoring).

One ``outcomes`` row per prediction (its primary key is the prediction's id), written with
``INSERT OR IGNORE``: grading a prediction twice — a retried pass, a restart halfway through a
batch — changes nothing. A cursor in ``meta`` remembers below which prediction id everything is
graded, so a pass never rescans history. ``model_tallies`` keeps each model's "since live"
tally, added to in the transaction that records its batch: a restart reads it and the newest
rows the windows need (:meth:`OutcomeRecords.recent_graded`), never the whole history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlite_utils

from tbotd.domain.enums import Regime, Signal
from tbotd.domain.market import Candle
from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.monitoring.live import Key, Live, decode, encode
from tbotd.monitoring.metrics import Graded
from tbotd.monitoring.outcomes import (
    LabelOrigin,
    LabelRule,
    Outcome,
    OutcomeKind,
    StoredPrediction,
)

CURSOR_KEY = "outcomes_cursor"

_GRADED = """SELECT p.id, p.symbol, p.candle_time, p.signal, p.confidence, p.sd, p.regime,
    p.model_version, p.source, o.kind, o.horizon, o.band, o.label_origin, o.fwd_return,
    o.realised, o.correct, o.hit, o.past_return, o.inside_sd, o.stayed_in_sd
    FROM outcomes o JOIN predictions p ON p.id = o.prediction_id"""


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _unflag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _top_regime(raw: str | None) -> Regime | None:
    """The most probable regime of a stored ``{regime: probability}`` document."""
    if not raw:
        return None
    probs: dict[str, float] = json.loads(raw)
    return Regime(max(probs, key=lambda k: probs[k])) if probs else None


def _prediction(r: dict[str, Any]) -> StoredPrediction:
    return StoredPrediction(
        id=int(r["id"]),
        symbol=str(r["symbol"]),
        candle_time=ms_to_datetime(int(r["candle_time"])),
        signal=Signal(r["signal"]),
        confidence=float(r["confidence"]),
        sd=None if r["sd"] is None else float(r["sd"]),
        regime=_top_regime(r["regime"]),
        model=str(r["model_version"]),
        source=str(r["source"]),
    )


def _outcome(r: dict[str, Any]) -> Outcome:
    rule = LabelRule(int(r["horizon"]), float(r["band"]), LabelOrigin(r["label_origin"]))
    return Outcome(
        prediction_id=int(r["id"]),
        kind=OutcomeKind(r["kind"]),
        rule=rule,
        fwd_return=r["fwd_return"],
        realised=None if r["realised"] is None else Signal(r["realised"]),
        correct=_unflag(r["correct"]),
        hit=_unflag(r["hit"]),
        past_return=r["past_return"],
        inside_sd=_unflag(r["inside_sd"]),
        stayed_in_sd=_unflag(r["stayed_in_sd"]),
    )


class OutcomeRecords:
    """Mixin of :class:`tbotd.store.Store` for prediction outcomes."""

    db: sqlite_utils.Database

    def unscored_predictions(self, after_id: int, limit: int) -> list[StoredPrediction]:
        """Ungraded predictions with id > ``after_id``, by id (the order they were made in)."""
        rows = self.db.query(
            """SELECT p.* FROM predictions p LEFT JOIN outcomes o ON o.prediction_id = p.id
               WHERE p.id > ? AND o.prediction_id IS NULL ORDER BY p.id LIMIT ?""",
            (after_id, limit),
        )
        return [_prediction(r) for r in rows]

    def record_outcomes(self, outcomes: Sequence[Outcome], at: datetime) -> int:
        """Store outcomes not stored yet (never overwrites one); returns how many were new."""
        cursor = self.db.conn.executemany(
            """INSERT OR IGNORE INTO outcomes (prediction_id, kind, horizon, band, label_origin,
                   fwd_return, realised, correct, hit, past_return, inside_sd, stayed_in_sd,
                   scored_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            [
                (
                    o.prediction_id,
                    o.kind.value,
                    o.rule.horizon,
                    o.rule.band,
                    o.rule.origin.value,
                    o.fwd_return,
                    None if o.realised is None else o.realised.value,
                    _flag(o.correct),
                    _flag(o.hit),
                    o.past_return,
                    _flag(o.inside_sd),
                    _flag(o.stayed_in_sd),
                    datetime_to_ms(at),
                )
                for o in outcomes
            ],
        )
        return max(cursor.rowcount, 0)

    def candles_between(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]:
        """Stored candles opened in [``start``, ``end``], oldest first."""
        rows = self.db.query(
            """SELECT * FROM candles WHERE symbol = ? AND timeframe = ?
               AND open_time BETWEEN ? AND ? ORDER BY open_time""",
            (symbol, timeframe, datetime_to_ms(start), datetime_to_ms(end)),
        )
        return [
            Candle(
                r["symbol"],
                r["timeframe"],
                ms_to_datetime(r["open_time"]),
                *(Decimal(r[k]) for k in ("open", "high", "low", "close", "volume")),
            )
            for r in rows
        ]

    def graded(self) -> list[Graded]:
        """Every graded prediction with its outcome, oldest candle first."""
        rows = self.db.query(f"{_GRADED} ORDER BY p.candle_time, p.id")
        return [Graded(_prediction(r), _outcome(r)) for r in rows]

    def recent_graded(self, model: str, source: str, limit: int) -> list[Graded]:
        """The newest ``limit`` scored predictions of a model and source, oldest first (the
        rolling windows' rows): read backwards along ``predictions_model``, so at most ``limit``
        rows however long the history."""
        rows = self.db.query(
            f"""{_GRADED} WHERE p.model_version = ? AND p.source = ? AND o.kind = ?
                ORDER BY p.candle_time DESC, p.id DESC LIMIT ?""",
            (model, source, OutcomeKind.SCORED.value, limit),
        )
        return [Graded(_prediction(r), _outcome(r)) for r in reversed(list(rows))]

    def live_tallies(self) -> dict[Key, Live]:
        """Every model's stored "since live" tally, by (model, source)."""
        rows = self.db.query("SELECT * FROM model_tallies ORDER BY model, source")
        return {
            (r["model"], r["source"]): Live(decode(r["tally"]), ms_to_datetime(r["since"]))
            for r in rows
        }

    def add_live(self, batch: Mapping[Key, Live]) -> None:
        """Add a graded batch's tallies to the stored ones; call it in the transaction that
        records the batch's outcomes, so the two never disagree after a crash."""
        for (model, source), live in batch.items():
            row = self.db.execute(
                "SELECT since, tally FROM model_tallies WHERE model = ? AND source = ?",
                (model, source),
            ).fetchone()
            total = live if row is None else Live(decode(row[1]), ms_to_datetime(row[0])) + live
            self.db.execute(
                "INSERT OR REPLACE INTO model_tallies (model, source, since, tally) "
                "VALUES (?, ?, ?, ?)",
                (model, source, datetime_to_ms(total.since), encode(total.tally)),
            )

    def new_outcomes(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Those of ``outcomes`` whose prediction has no outcome yet (what recording them adds)."""
        ids = json.dumps([o.prediction_id for o in outcomes])
        stored = {
            r[0]
            for r in self.db.execute(
                "SELECT prediction_id FROM outcomes "
                "WHERE prediction_id IN (SELECT value FROM json_each(?))",
                (ids,),
            ).fetchall()
        }
        return [o for o in outcomes if o.prediction_id not in stored]

    def outcome_count(self) -> int:
        """How many predictions have an outcome row."""
        return int(self.db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0])
