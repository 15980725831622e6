"""Both brokers log one line per entry and per closed trade (stop, target or decision), so a
live run's log shows what the bot did without opening the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from structlog.testing import capture_logs

from tbotd.domain.enums import Side
from tbotd.domain.positions import Position
from tbotd.execution.broker import record_entry, record_trade
from tbotd.store.wallet import Trade

T0 = datetime(2024, 3, 16, tzinfo=UTC)


class Events:
    """Collects the audit events a broker records."""

    def __init__(self) -> None:
        self.recorded: list[tuple[datetime, str, str, str | None, dict[str, Any]]] = []

    def record_event(
        self, at: datetime, kind: str, message: str, symbol: str | None = None, **data: Any
    ) -> None:
        """Keep it."""
        self.recorded.append((at, kind, message, symbol, data))


def test_a_stop_loss_close_logs_its_reason_pnl_and_fees() -> None:
    """A trade closed by its stop: one "position closed" line with reason, PnL, fees, net."""
    trade = Trade(
        "BTC/USDT:USDT", Side.LONG, Decimal("0.1"), T0, T0 + timedelta(hours=1),
        Decimal(40000), Decimal(39600), "stop_loss", Decimal(-40), Decimal("0.8"), Decimal(0),
        "USDT", Decimal(39600), Decimal(41000),
    )  # fmt: skip
    events = Events()
    with capture_logs() as logs:
        record_trade(events, T0, trade)
    lines = [e for e in logs if e["event"] == "position closed"]
    assert len(lines) == 1
    assert (lines[0]["reason"], lines[0]["pnl"], lines[0]["fees"], lines[0]["net"]) == (
        "stop_loss", "-40", "0.8", "-40.8",
    )  # fmt: skip
    assert [e[1] for e in events.recorded] == ["trade"]


def test_an_entry_logs_side_qty_price_stop_and_target() -> None:
    """An entry: one "entry filled" line with its protection."""
    position = Position(
        "BTC/USDT:USDT", Side.SHORT, Decimal("0.1"), Decimal(40000), T0,
        stop_loss=Decimal(40400), take_profit=Decimal(39000),
    )  # fmt: skip
    with capture_logs() as logs:
        record_entry(Events(), T0, position, T0)
    (line,) = [e for e in logs if e["event"] == "entry filled"]
    assert (line["side"], line["qty"], line["price"], line["stop"], line["target"]) == (
        "short", "0.1", "40000", "40400", "39000",
    )  # fmt: skip
