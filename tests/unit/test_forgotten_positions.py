"""A position recorded on a symbol the config no longer names is not silently left to no one."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tbotd.config.loader import load_settings
from tbotd.daemon.app import refuse_forgotten_positions
from tbotd.domain.enums import Side
from tbotd.domain.errors import ConfigError
from tbotd.domain.positions import Position
from tbotd.store import Store
from tests.conftest import CONFIGS

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def stored(tmp_path: Path, symbol: str) -> Store:
    """A database holding one open long on ``symbol``."""
    store = Store.open(tmp_path / "daemon.sqlite")
    store.save_position(Position(symbol, Side.LONG, Decimal("0.1"), Decimal(2000), T0), T0)
    return store


def test_a_position_on_a_symbol_removed_from_the_config_refuses_the_start(
    tmp_path: Path,
) -> None:
    """ETH removed from exchange.symbols with a long open on it: the start names it."""
    settings = load_settings(CONFIGS / "ml_usdt_directional.toml")
    store = stored(tmp_path, "ETH/USDT:USDT")
    try:
        with pytest.raises(ConfigError, match=r"ETH/USDT:USDT.*add the symbol back"):
            refuse_forgotten_positions(settings, store)
    finally:
        store.close()


def test_a_position_on_a_configured_symbol_starts(tmp_path: Path) -> None:
    """A position on a symbol the config names is the daemon's to manage: no refusal."""
    settings = load_settings(CONFIGS / "ml_usdt_directional.toml")
    store = stored(tmp_path, settings.exchange.symbols[0])
    try:
        refuse_forgotten_positions(settings, store)
    finally:
        store.close()
