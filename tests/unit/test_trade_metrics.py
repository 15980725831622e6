"""/metrics says what the bot made: closed trades, realised PnL and fees from the database (a
restart never resets them), and when the last cycle finished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry

from tbotd.daemon.status import record_trade_totals
from tbotd.domain.enums import Side
from tbotd.ops.metrics import DaemonMetrics
from tbotd.store import Store
from tbotd.store.wallet import Trade

T0 = datetime(2024, 3, 16, tzinfo=UTC)


def test_trade_totals_come_from_the_database(tmp_path: Path) -> None:
    """Two trades: count 2, net = Σ(pnl − fees + funding), fees = Σ fees."""
    store = Store.open(tmp_path / "s.sqlite")
    for pnl, fees, funding in (("50", "1", "-0.5"), ("-10", "0.5", "0")):
        store.record_trade(
            Trade(
                "BTC/USDT:USDT",
                Side.LONG,
                Decimal(1),
                T0,
                T0 + timedelta(hours=1),
                Decimal(100),
                Decimal(101),
                "take_profit",
                Decimal(pnl),
                Decimal(fees),
                Decimal(funding),
                "USDT",
            )
        )
    registry = CollectorRegistry()
    record_trade_totals(store, "USDT", DaemonMetrics.create(registry))
    store.close()
    assert registry.get_sample_value("tbotd_trades_closed") == 2
    assert registry.get_sample_value("tbotd_realized_pnl", {"currency": "USDT"}) == 38.0
    assert registry.get_sample_value("tbotd_fees_paid", {"currency": "USDT"}) == 1.5
