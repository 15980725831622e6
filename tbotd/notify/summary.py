"""The daily summary: the last 24 hours in one message, at a configured UTC time.

:func:`figures` reads the store (trades closed, funding paid, equity, predictions by source) —
a scan of a day of rows, so the daemon runs it in a thread on a read-only connection of its own
(:func:`figures_from_file`), never on the event loop; :func:`summary_notice` and
:func:`next_summary_at` are pure. A summary that fell due while the daemon was down is not sent
late.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from tbotd.domain.notices import Notice, NoticeKind, Severity
from tbotd.domain.values import datetime_to_ms

DAY = timedelta(days=1)


class Records(Protocol):
    """What the summary reads (:class:`tbotd.store.Store` is one)."""

    def query(
        self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()
    ) -> list[dict[str, Any]]:
        """Rows of a read query."""
        ...


@dataclass(frozen=True, slots=True)
class DailyFigures:
    """The numbers of one summary, in the share-class currency."""

    since: datetime
    until: datetime
    currency: str
    trades: int = 0
    wins: int = 0
    pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)
    equity: Decimal | None = None
    equity_before: Decimal | None = None
    open_positions: int = 0
    sources: Mapping[str, int] = field(default_factory=dict)
    stops: int = 0

    @property
    def net(self) -> Decimal:
        """PnL after fees and funding."""
        return self.pnl - self.fees + self.funding


def next_summary_at(now: datetime, hhmm: str) -> datetime:
    """The next instant after ``now`` whose UTC clock reads ``hhmm``."""
    hours, minutes = (int(x) for x in hhmm.split(":"))
    today = datetime.combine(now.date(), time(hours, minutes), tzinfo=now.tzinfo)
    return today if today > now else today + DAY


def summary_notice(f: DailyFigures) -> Notice:
    """The summary as one notice (its key is the day, so a day is summarised once)."""
    c = f.currency
    text = (
        f"last 24 h: {f.trades} trade(s), net {_n(f.net)} {c} "
        f"(PnL {_n(f.pnl)}, fees {_n(f.fees)}, funding {_n(f.funding)})"
    )
    if f.equity is not None:
        text += f"; equity {_n(f.equity)} {c}"
        if f.equity_before is not None:
            text += f" ({_signed(f.equity - f.equity_before)})"
    total = sum(f.sources.values())
    health = ", ".join(f"{s} {n}" for s, n in sorted(f.sources.items(), key=lambda x: -x[1]))
    fields = (
        ("trades", str(f.trades)),
        ("wins", str(f.wins)),
        ("stop_losses", str(f.stops)),
        ("pnl", _n(f.pnl)),
        ("fees", _n(f.fees)),
        ("funding", _n(f.funding)),
        ("net", _n(f.net)),
        ("equity", "" if f.equity is None else _n(f.equity)),
        ("open_positions", str(f.open_positions)),
        ("predictions", f"{total} ({health})" if total else "none"),
    )
    return Notice(
        NoticeKind.DAILY_SUMMARY,
        Severity.INFO,
        text,
        f.until,
        fields=tuple((k, v) for k, v in fields if v),
        key=f"daily_summary|{f.until.date().isoformat()}",
    )


def figures(records: Records, until: datetime, currency: str) -> DailyFigures:
    """The last 24 hours before ``until`` from the store's own records."""
    since = until - DAY
    window = {"a": datetime_to_ms(since), "b": datetime_to_ms(until)}
    trades = records.query(
        "SELECT pnl, fees, exit_reason FROM trades WHERE exit_time > :a AND exit_time <= :b",
        window,
    )
    funding = records.query("SELECT amount FROM funding WHERE time > :a AND time <= :b", window)
    sources = records.query(
        "SELECT source, COUNT(*) AS n FROM predictions WHERE candle_time > :a "
        "AND candle_time <= :b GROUP BY source",
        window,
    )
    now_row = records.query(
        "SELECT equity FROM equity WHERE time <= :b ORDER BY time DESC LIMIT 1", window
    )
    before = records.query(
        "SELECT equity FROM equity WHERE time <= :a ORDER BY time DESC LIMIT 1", window
    )
    positions = records.query("SELECT COUNT(*) AS n FROM positions")
    return DailyFigures(
        since=since,
        until=until,
        currency=currency,
        trades=len(trades),
        wins=sum(1 for t in trades if Decimal(t["pnl"]) > 0),
        pnl=sum((Decimal(t["pnl"]) for t in trades), Decimal(0)),
        fees=sum((Decimal(t["fees"]) for t in trades), Decimal(0)),
        funding=sum((Decimal(r["amount"]) for r in funding), Decimal(0)),
        equity=Decimal(now_row[0]["equity"]) if now_row else None,
        equity_before=Decimal(before[0]["equity"]) if before else None,
        open_positions=int(positions[0]["n"]) if positions else 0,
        sources={str(r["source"]): int(r["n"]) for r in sources},
        stops=sum(1 for t in trades if t["exit_reason"] == "stop_loss"),
    )


class _ReadOnly:
    """A read-only connection to the database file (for a thread of its own)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self._conn.row_factory = sqlite3.Row

    def query(
        self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()
    ) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute(sql, params)]

    def close(self) -> None:
        self._conn.close()


def figures_from_file(path: Path, until: datetime, currency: str) -> DailyFigures:
    """:func:`figures` on a read-only connection of its own (blocking: call it in a thread)."""
    records = _ReadOnly(path)
    try:
        return figures(records, until, currency)
    finally:
        records.close()


def _n(value: Decimal) -> str:
    """A money figure to 8 decimals at most, without trailing zeros."""
    text = f"{value.quantize(Decimal('1e-8')).normalize():f}"
    return "0" if text in ("-0", "") else text


def _signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + _n(value)
