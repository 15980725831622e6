"""Schema migrations, forward only. Append a function to add a version; never edit a shipped one.

Conventions: times are INTEGER epoch milliseconds (UTC); money and quantities are TEXT holding the
exact Decimal (never REAL); JSON documents are TEXT.
"""

from __future__ import annotations

import json
import secrets

import sqlite_utils

from tbotd.store.db import Migration

_V1 = [
    """CREATE TABLE candles (
        symbol TEXT NOT NULL, timeframe TEXT NOT NULL, open_time INTEGER NOT NULL,
        open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
        volume TEXT NOT NULL,
        PRIMARY KEY (symbol, timeframe, open_time)) WITHOUT ROWID""",
    """CREATE TABLE predictions (
        id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, candle_time INTEGER NOT NULL,
        signal TEXT NOT NULL, confidence REAL NOT NULL, take_profit TEXT, stop_loss TEXT,
        sd REAL, regime TEXT, model_version TEXT NOT NULL, source TEXT NOT NULL,
        latency_ms REAL, created_at INTEGER NOT NULL,
        UNIQUE (symbol, candle_time))""",
    """CREATE TABLE decisions (
        id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, candle_time INTEGER NOT NULL,
        actions TEXT NOT NULL, created_at INTEGER NOT NULL,
        UNIQUE (symbol, candle_time))""",
    """CREATE TABLE orders (
        client_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, side TEXT NOT NULL,
        type TEXT NOT NULL, role TEXT NOT NULL, qty TEXT NOT NULL, state TEXT NOT NULL,
        price TEXT, trigger_price TEXT, reduce_only INTEGER NOT NULL,
        close_position INTEGER NOT NULL, exchange_id TEXT, filled_qty TEXT NOT NULL,
        avg_fill_price TEXT, created_at INTEGER NOT NULL, updated_at INTEGER, reason TEXT NOT NULL,
        decision_id INTEGER REFERENCES decisions(id))""",
    (
        "CREATE INDEX orders_live ON orders (state) WHERE state NOT IN "
        "('filled', 'canceled', 'rejected', 'expired')"
    ),
    """CREATE TABLE order_events (
        id INTEGER PRIMARY KEY, client_id TEXT NOT NULL REFERENCES orders(client_id),
        state TEXT NOT NULL, at INTEGER NOT NULL, detail TEXT NOT NULL)""",
    "CREATE INDEX order_events_client ON order_events (client_id)",
    """CREATE TABLE fills (
        symbol TEXT NOT NULL, trade_id TEXT NOT NULL, client_order_id TEXT NOT NULL,
        side TEXT NOT NULL, qty TEXT NOT NULL, price TEXT NOT NULL, fee TEXT NOT NULL,
        fee_currency TEXT NOT NULL, realized_pnl TEXT NOT NULL, time INTEGER NOT NULL,
        PRIMARY KEY (symbol, trade_id))""",
    "CREATE INDEX fills_order ON fills (client_order_id)",
    """CREATE TABLE positions (
        symbol TEXT PRIMARY KEY, side TEXT NOT NULL, qty TEXT NOT NULL,
        entry_price TEXT NOT NULL, opened_at INTEGER NOT NULL, stop_loss TEXT,
        take_profit TEXT, leverage TEXT NOT NULL, liquidation_price TEXT,
        updated_at INTEGER NOT NULL)""",
    """CREATE TABLE funding (
        symbol TEXT NOT NULL, time INTEGER NOT NULL, rate TEXT NOT NULL,
        position_qty TEXT NOT NULL, mark_price TEXT NOT NULL, amount TEXT NOT NULL,
        currency TEXT NOT NULL, PRIMARY KEY (symbol, time))""",
    """CREATE TABLE equity (
        time INTEGER PRIMARY KEY, currency TEXT NOT NULL, balance TEXT NOT NULL,
        unrealized_pnl TEXT NOT NULL, equity TEXT NOT NULL)""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY, time INTEGER NOT NULL, kind TEXT NOT NULL, symbol TEXT,
        message TEXT NOT NULL, data TEXT)""",
    "CREATE INDEX events_kind ON events (kind, time)",
]


def _v1(db: sqlite_utils.Database) -> None:
    """Version 1: the tables ARCHITECTURE lists under Persistence."""
    for statement in _V1:
        db.execute(statement)


_V2 = [
    """CREATE TABLE wallet (
        currency TEXT PRIMARY KEY, balance TEXT NOT NULL, updated_at INTEGER NOT NULL)""",
    """CREATE TABLE trades (
        id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, side TEXT NOT NULL, qty TEXT NOT NULL,
        entry_time INTEGER NOT NULL, exit_time INTEGER NOT NULL, entry_price TEXT NOT NULL,
        exit_price TEXT NOT NULL, exit_reason TEXT NOT NULL, pnl TEXT NOT NULL,
        fees TEXT NOT NULL, funding TEXT NOT NULL, currency TEXT NOT NULL)""",
    "CREATE INDEX trades_symbol ON trades (symbol, exit_time)",
]


def _v2(db: sqlite_utils.Database) -> None:
    """Version 2: the paper wallet, and closed trades (one row per round trip)."""
    for statement in _V2:
        db.execute(statement)


_V3 = [
    """CREATE TABLE funding_v3 (
        symbol TEXT NOT NULL, time INTEGER NOT NULL, rate TEXT, position_qty TEXT,
        mark_price TEXT, amount TEXT NOT NULL, currency TEXT NOT NULL,
        PRIMARY KEY (symbol, time))""",
    "INSERT INTO funding_v3 SELECT * FROM funding",
    "DROP TABLE funding",
    "ALTER TABLE funding_v3 RENAME TO funding",
]


def _v3(db: sqlite_utils.Database) -> None:
    """Version 3: funding rate, quantity and mark price may be unknown (live venues report
    only the amount)."""
    for statement in _V3:
        db.execute(statement)


def _v4(db: sqlite_utils.Database) -> None:
    """Version 4: orders by symbol and role (numbering protective orders, the last entry) without
    scanning every order ever sent."""
    db.execute("CREATE INDEX orders_symbol_role ON orders (symbol, role, created_at)")


def _v5(db: sqlite_utils.Database) -> None:
    """Version 5: how many entries each decision made (the hourly entry cap counts them), the
    protective levels a trade had when it closed, and facts about the database itself (the owner
    tag its client order ids carry)."""
    db.execute("ALTER TABLE decisions ADD COLUMN entries INTEGER NOT NULL DEFAULT 0")
    for decision_id, actions in db.execute("SELECT id, actions FROM decisions").fetchall():
        entries = sum(1 for a in json.loads(actions) if a.get("type") == "OpenPosition")
        if entries:
            db.execute("UPDATE decisions SET entries = ? WHERE id = ?", (entries, decision_id))
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    # a random identity per database: two databases (two daemons, or a lost and a new one) never
    # derive the same client order ids, and each can tell its own orders from the other's
    db.execute("INSERT INTO meta (key, value) VALUES ('owner', ?)", (secrets.token_hex(8),))
    db.execute("ALTER TABLE trades ADD COLUMN stop_loss TEXT")
    db.execute("ALTER TABLE trades ADD COLUMN take_profit TEXT")


def _decision_provenance(db: sqlite_utils.Database) -> None:
    """Decision provenance (README: Strategies): which strategy decided, what the ML enhancement
    layer did (``provenance``), and the classic signal, the ML opinion and the signal acted on, as
    JSON opinions ``{direction, confidence, reasons}``; NULL for decisions made before."""
    for column in ("strategy", "provenance", "base", "ml", "result"):
        db.execute(f"ALTER TABLE decisions ADD COLUMN {column} TEXT")


def _outcomes(db: sqlite_utils.Database) -> None:
    """Prediction outcomes (ARCHITECTURE: monitoring): how each stored prediction turned out once
    its horizon passed, one row per prediction (so grading is idempotent across restarts), with
    the horizon and neutral band it was graded with and where they came from (``label_origin``:
    the model's manifest, or defaults for a source without one). ``model_tallies`` holds each
    (model, source)'s "since live" tally (``monitoring.live``), written with every graded batch,
    so a restart reads one row per model instead of its whole history."""
    db.execute(
        """CREATE TABLE outcomes (
            prediction_id INTEGER PRIMARY KEY REFERENCES predictions(id),
            kind TEXT NOT NULL, horizon INTEGER NOT NULL, band REAL NOT NULL,
            label_origin TEXT NOT NULL, fwd_return REAL, realised TEXT, correct INTEGER,
            hit INTEGER, past_return REAL, inside_sd INTEGER, stayed_in_sd INTEGER,
            scored_at INTEGER NOT NULL)"""
    )
    db.execute("CREATE INDEX predictions_model ON predictions (model_version, source, candle_time)")
    db.execute(
        """CREATE TABLE model_tallies (
            model TEXT NOT NULL, source TEXT NOT NULL, since INTEGER NOT NULL,
            tally TEXT NOT NULL, PRIMARY KEY (model, source)) WITHOUT ROWID"""
    )


def _model_answers(db: sqlite_utils.Database) -> None:
    """Each model's own answer for a candle (prediction schema 2), per model and source, beside
    the combined prediction: ``probabilities`` (direction or regime) as a JSON list,
    ``expected_return``/``sd`` (the volatility model); a refused answer is a row with its
    ``refused`` reason and no outputs. Schema-1 predictions have no rows (absent, not invented)."""
    db.execute(
        """CREATE TABLE model_answers (
            symbol TEXT NOT NULL, candle_time INTEGER NOT NULL, source TEXT NOT NULL,
            model TEXT NOT NULL, version TEXT, probabilities TEXT, expected_return REAL, sd REAL,
            trained_until INTEGER, refused TEXT, detail TEXT,
            PRIMARY KEY (symbol, candle_time, source, model)) WITHOUT ROWID"""
    )


def _model_health(db: sqlite_utils.Database) -> None:
    """Each model's latest health snapshot (state, reasons, drift, error-change test as JSON)
    and the hourly drift history behind `tbotd models report` (``store/health.py``)."""
    db.execute(
        """CREATE TABLE model_health (
            model TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, reasons TEXT NOT NULL,
            drift TEXT NOT NULL, error_change TEXT NOT NULL, updated_at INTEGER NOT NULL,
            PRIMARY KEY (model, source)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE drift_history (
            id INTEGER PRIMARY KEY, at INTEGER NOT NULL, model TEXT NOT NULL,
            source TEXT NOT NULL, state TEXT NOT NULL, psi TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX drift_history_model ON drift_history (model, source, at)")


MIGRATIONS: list[Migration] = [
    _v1,
    _v2,
    _v3,
    _v4,
    _v5,
    _decision_provenance,
    _outcomes,
    _model_answers,
    _model_health,
]
