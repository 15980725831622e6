"""A position recorded on a symbol the config does not trade is said loudly at start, and never
stops the daemon from managing the others."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tbotd.config.loader import load_settings
from tbotd.daemon.app import report_unmanaged_positions
from tbotd.domain.enums import Side
from tbotd.domain.positions import Position
from tbotd.store import Store
from tests.conftest import CONFIGS

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def alerts_for(tmp_path: Path, symbol: str) -> list[dict[str, object]]:
    """The alerts a start records with one open long on ``symbol`` in the database."""
    settings = load_settings(CONFIGS / "ml_usdt_directional.toml")
    store = Store.open(tmp_path / "daemon.sqlite")
    try:
        store.save_position(Position(symbol, Side.LONG, Decimal("0.1"), Decimal(2000), T0), T0)
        report_unmanaged_positions(settings, store, T0)
        return store.query("SELECT symbol, message FROM events WHERE kind = 'alert'")
    finally:
        store.close()


def test_a_position_on_a_symbol_the_config_does_not_trade_is_an_alert(tmp_path: Path) -> None:
    """ETH removed from exchange.symbols with a long open on it: an alert names it and says what
    to do (the start goes on: the other symbols are still managed)."""
    [alert] = alerts_for(tmp_path, "ETH/USDT:USDT")
    assert alert["symbol"] == "ETH/USDT:USDT"
    assert "not managed" in str(alert["message"])
    assert "add the symbol back" in str(alert["message"])


def test_a_position_on_a_traded_symbol_is_no_alert(tmp_path: Path) -> None:
    """A position on a symbol the config trades is the daemon's to manage: nothing to say."""
    settings = load_settings(CONFIGS / "ml_usdt_directional.toml")
    assert alerts_for(tmp_path, settings.exchange.symbols[0]) == []
