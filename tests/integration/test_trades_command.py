"""Seeing what the bot did without a running daemon: `tbotd trades` and `tbotd status` read the
database (the demo's, or a stopped daemon's)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tbotd.domain.enums import Side
from tbotd.store import Store
from tbotd.store.wallet import Trade
from tests.conftest import CONFIGS, RunTbotd

SYM = "BTC/USDT:USDT"
T0 = datetime(2024, 3, 16, tzinfo=UTC)


def database(path: Path) -> Path:
    """A database with two closed trades, a day apart."""
    store = Store.open(path)
    for day, pnl, reason in ((0, "50", "take_profit"), (1, "-10", "stop_loss")):
        entry = T0 + timedelta(days=day)
        store.record_trade(
            Trade(
                SYM,
                Side.LONG,
                Decimal("0.1"),
                entry,
                entry + timedelta(hours=1),
                Decimal(40000),
                Decimal(40500),
                reason,
                Decimal(pnl),
                Decimal("0.5"),
                Decimal(0),
                "USDT",
                Decimal(39000),
                Decimal(41000),
            )
        )
    store.close()
    return path


def test_trades_lists_a_database_as_csv(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """`tbotd trades --db FILE --csv`: one row per trade with symbol, reason, PnL, stop, target."""
    db = database(tmp_path / "demo.sqlite")
    done = run_tbotd("trades", "--db", str(db), "--csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["exit_reason"] for r in rows] == ["take_profit", "stop_loss"]
    assert rows[0]["symbol"] == SYM
    assert (rows[0]["pnl"], rows[0]["stop_loss"], rows[0]["take_profit"]) == (
        "50",
        "39000",
        "41000",
    )
    assert rows[1]["exit_time"] == "2024-03-17T01:00:00Z"


def test_trades_since_keeps_the_later_ones(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """`--since` drops trades closed before it."""
    db = database(tmp_path / "demo.sqlite")
    done = run_tbotd("trades", "--db", str(db), "--csv", "--since", "2024-03-17")
    assert [r["exit_reason"] for r in csv.DictReader(io.StringIO(done.stdout))] == ["stop_loss"]


def test_trades_from_a_config_without_its_database_exits_2(
    run_tbotd: RunTbotd, tmp_path: Path
) -> None:
    """A config whose database does not exist: one line naming it, exit 2, nothing created."""
    config = tmp_path / "c.toml"
    missing = tmp_path / "nowhere.sqlite"
    text = (CONFIGS / "demo.toml").read_text()
    config.write_text(text.replace('"tbotd-standalone/demo.sqlite"', f'"{missing}"'))
    done = run_tbotd("trades", "--config", str(config))
    assert done.returncode == 2
    assert str(missing) in done.stderr
    assert not missing.exists()


def test_status_of_a_stopped_daemon_reads_its_database(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """`tbotd status --config` with no daemon answering shows the database's state, not ready."""
    db = database(tmp_path / "d.sqlite")
    config = tmp_path / "c.toml"
    text = (CONFIGS / "demo.toml").read_text()
    config.write_text(
        text.replace('"tbotd-standalone/demo.sqlite"', f'"{db}"').replace("8788", "1")
    )
    done = run_tbotd("status", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["ready"] is False
    assert "not running" in body["reason"]
    assert body["instance"] == "demo"
    assert body["positions"] == []
    assert body["equity"] is None
