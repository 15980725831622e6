"""The SQLite store (ARCHITECTURE: Persistence): one file per instance, exact money, crash-safe
transactions.

Usage::

    store = Store.open(path)
    with store.transaction():          # related writes: all or nothing
        store.record_order_intent(order)
        store.record_event(now, "order", "entry sent", symbol=order.symbol)
"""

from __future__ import annotations

from pathlib import Path

from tbotd.store.db import Database, StoreError
from tbotd.store.health import HealthRecords
from tbotd.store.market import MarketRecords, to_json
from tbotd.store.outcomes import OutcomeRecords
from tbotd.store.schema import MIGRATIONS
from tbotd.store.trading import TradingRecords
from tbotd.store.wallet import Trade, WalletRecords

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "Trade", "to_json"]

SCHEMA_VERSION = len(MIGRATIONS)


class Store(MarketRecords, OutcomeRecords, HealthRecords, TradingRecords, WalletRecords, Database):
    """The migrated database with a record/query method for each kind of row."""

    @classmethod
    def open(cls, path: str | Path, quick_check: bool = True) -> Store:
        """Open (creating with mode 0600 and migrating as needed) the database at ``path``.

        ``quick_check`` False skips SQLite's whole-file check — for the offline readers
        (`tbotd models`), whose answer must not wait on reading a year of pages; the daemon
        always checks.
        """
        return cls(Path(path), MIGRATIONS, quick_check)

    def owner(self) -> str:
        """This database's random identity (part of every client order id it derives)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'owner'").fetchone()
        return str(row[0])
