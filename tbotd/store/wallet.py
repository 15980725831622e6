"""Recording the paper wallet's balance and closed trades (round trips) for both brokers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlite_utils

from tbotd.domain.enums import Side
from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.store.db import dec, undec


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed round trip: what the user calls a trade. PnL is before fees and funding."""

    symbol: str
    side: Side
    qty: Decimal
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal
    exit_price: Decimal
    exit_reason: str
    pnl: Decimal
    fees: Decimal
    funding: Decimal
    currency: str
    stop_loss: Decimal | None = None  # the protective levels resting when it closed
    take_profit: Decimal | None = None

    @property
    def net(self) -> Decimal:
        """PnL after fees and funding."""
        return self.pnl - self.fees + self.funding


class WalletRecords:
    """Mixin of :class:`tbotd.store.Store` for the paper wallet and closed trades."""

    db: sqlite_utils.Database

    def wallet_balance(self, currency: str) -> Decimal | None:
        """The paper wallet's balance, or None if it was never funded."""
        row = self.db.execute(
            "SELECT balance FROM wallet WHERE currency = ?", (currency,)
        ).fetchone()
        return None if row is None else Decimal(row[0])

    def save_wallet_balance(self, currency: str, balance: Decimal, at: datetime) -> None:
        """Persist the paper wallet's balance."""
        self.db.execute(
            "INSERT OR REPLACE INTO wallet VALUES (?,?,?)",
            (currency, dec(balance), datetime_to_ms(at)),
        )

    def record_trade(self, trade: Trade) -> None:
        """Record a closed round trip."""
        self.db.execute(
            """INSERT INTO trades (symbol, side, qty, entry_time, exit_time, entry_price,
                   exit_price, exit_reason, pnl, fees, funding, currency, stop_loss,
                   take_profit)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (
                trade.symbol,
                trade.side.value,
                dec(trade.qty),
                datetime_to_ms(trade.entry_time),
                datetime_to_ms(trade.exit_time),
                dec(trade.entry_price),
                dec(trade.exit_price),
                trade.exit_reason,
                dec(trade.pnl),
                dec(trade.fees),
                dec(trade.funding),
                trade.currency,
                dec(trade.stop_loss),
                dec(trade.take_profit),
            ),
        )

    def trades(self, symbol: str | None = None) -> list[Trade]:
        """Closed trades, oldest first."""
        params: tuple[str, ...] = () if symbol is None else (symbol,)
        where = "" if symbol is None else " WHERE symbol = ?"
        sql = "SELECT * FROM trades" + where + " ORDER BY exit_time, id"  # noqa: S608 - constant
        return [
            Trade(
                r["symbol"],
                Side(r["side"]),
                Decimal(r["qty"]),
                ms_to_datetime(r["entry_time"]),
                ms_to_datetime(r["exit_time"]),
                Decimal(r["entry_price"]),
                Decimal(r["exit_price"]),
                r["exit_reason"],
                Decimal(r["pnl"]),
                Decimal(r["fees"]),
                Decimal(r["funding"]),
                r["currency"],
                undec(r["stop_loss"]),
                undec(r["take_profit"]),
            )
            for r in self.db.query(sql, params)
        ]

    def newest_trade_id(self) -> int:
        """The id of the trade recorded last (0 before the first)."""
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM trades").fetchone()[0])

    def exits_heard(
        self, since_ms: int, until_ms: int, after_id: int
    ) -> tuple[list[tuple[str, int, str]], int]:
        """(symbol, exit time in ms, exit reason) of the trades closed in [since, until), and of
        those recorded since trade ``after_id`` that closed before ``since_ms`` (a paper stop
        found in a candle that came after its cycle), in order: what the risk guard counts its
        stop-loss streaks from — every exit once, whenever it was booked. Also the newest trade
        id, for the next call."""
        newest = self.newest_trade_id()
        rows = self.db.execute(
            "SELECT symbol, exit_time, exit_reason FROM trades WHERE id <= ? AND "
            "((exit_time >= ? AND exit_time < ?) OR (id > ? AND exit_time < ?)) "
            "ORDER BY exit_time, id",
            (newest, since_ms, until_ms, after_id, since_ms),
        ).fetchall()
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows], newest

    def funding_total(self, symbol: str, after: datetime) -> Decimal:
        """Funding received (+) or paid (−) on ``symbol`` strictly after ``after``.

        Exclusive on purpose: a position opened at a funding time was opened by a decision taken
        after that funding was settled, so a payment stamped with its opening instant belongs to
        the position before it (a flip right at 08:00 must not count the 08:00 payment twice).
        """
        rows = self.db.execute(
            "SELECT amount FROM funding WHERE symbol = ? AND time > ?",
            (symbol, datetime_to_ms(after)),
        ).fetchall()
        return sum((Decimal(r[0]) for r in rows), Decimal(0))

    def funding_recorded(self, symbol: str, at: datetime) -> bool:
        """A funding payment of ``symbol`` at funding time ``at`` is already booked (the paper
        broker charges the wallet only when none is: a re-settled candle must not pay twice)."""
        row = self.db.execute(
            "SELECT 1 FROM funding WHERE symbol = ? AND time = ?", (symbol, datetime_to_ms(at))
        ).fetchone()
        return row is not None
