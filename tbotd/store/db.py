"""Opening the SQLite store: file mode 0600, WAL, full fsync, forward-only migrations.

One database file per instance. Startup is recovery, so opening is idempotent: migrating an
up-to-date database does nothing, and a database written by a newer tbotd is refused rather than
misread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlite_utils

from tbotd.domain.errors import ConfigError, StorageUnavailableError
from tbotd.domain.values import datetime_to_ms, ms_to_datetime

Migration = Callable[[sqlite_utils.Database], None]


def dec(value: Decimal | None) -> str | None:
    """Decimal → exact text for storage (``str`` keeps every digit and the exponent)."""
    return None if value is None else str(value)


def undec(value: str | None) -> Decimal | None:
    """Stored text → Decimal, exactly as written."""
    return None if value is None else Decimal(value)


class StoreError(ConfigError):
    """The database cannot be used (corrupt, from a newer version, cannot be created or opened):
    the operator's to fix, said in one line naming the file (exit 2)."""


_RESTORE = (
    "; move it aside and restore a backup, or start with a new file: the exchange keeps the "
    "protective orders, and a live daemon adopts its positions at start-up"
)

# SQLite's "cannot write now" results: the disk is full, the file or filesystem is read-only,
# the device failed, or the file vanished. Each is the operator's to fix and tbotd's to ride out.
_UNWRITABLE = frozenset(
    {"SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_BUSY"}
)


def _translated(error: sqlite3.Error) -> Exception:
    name = str(getattr(error, "sqlite_errorname", ""))  # e.g. SQLITE_IOERR_WRITE
    primary = "_".join(name.split("_")[:2])
    if isinstance(error, sqlite3.OperationalError) and primary in _UNWRITABLE:
        return StorageUnavailableError(f"the database cannot be written: {error}")
    return error


class _TranslatingConnection(sqlite3.Connection):
    """A connection whose write failures arrive as :class:`StorageUnavailableError` — the store
    boundary's translation, so the daemon can ride out a full disk instead of crashing — and
    are remembered (``unwritable``) until a write succeeds again (:meth:`Database.probe`)."""

    unwritable: str | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as e:
            raise self._noted(e) from e

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as e:
            raise self._noted(e) from e

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as e:
            raise self._noted(e) from e

    def _noted(self, error: sqlite3.Error) -> Exception:
        translated = _translated(error)
        if isinstance(translated, StorageUnavailableError):
            self.unwritable = str(translated)
        return translated


class Database:
    """A migrated SQLite database. ``db`` is the sqlite-utils handle; use :meth:`transaction`."""

    def __init__(self, path: Path, migrations: list[Migration], quick_check: bool = True) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(path)
        except OSError as e:
            raise StoreError(
                f"{path}: cannot create or open the database ({e.strerror}): check that the "
                "directory exists, is writable by this user and its filesystem is not read-only"
            ) from e
        try:
            self.db = sqlite_utils.Database(
                sqlite3.connect(path, factory=_TranslatingConnection, check_same_thread=False)
            )
            conn = self.db.conn
            conn.execute("PRAGMA busy_timeout = 5000")
            with self.db.ensure_autocommit_on():
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot switch to WAL (journal_mode={mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            checked = str(conn.execute("PRAGMA quick_check").fetchone()[0]) if quick_check else "ok"
        except (sqlite3.DatabaseError, StorageUnavailableError) as e:
            raise StoreError(f"{path}: not a usable SQLite database: {e}{_RESTORE}") from e
        if checked != "ok":
            raise StoreError(f"{path}: damaged (SQLite quick_check: {checked}){_RESTORE}")
        self._migrate(migrations)

    @property
    def unwritable(self) -> str | None:
        """Why the last write failed, while the database cannot be written (None: it can)."""
        conn = self.db.conn
        return conn.unwritable if isinstance(conn, _TranslatingConnection) else None

    def probe(self) -> bool:
        """Try one small real write; True (and ``unwritable`` cleared) when it commits."""
        try:
            with self.transaction():
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)",
                    (str(os.getpid()),),
                )
        except StorageUnavailableError:
            return False
        conn = self.db.conn
        if isinstance(conn, _TranslatingConnection):
            conn.unwritable = None
        return True

    def meta(self, key: str) -> str | None:
        """A fact about this database or its runs (``meta`` table), or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Record a fact about this database or its runs."""
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def version(self) -> int:
        """The schema version (``PRAGMA user_version``)."""
        return int(self.db.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: list[Migration]) -> None:
        current = self.version
        if current > len(migrations):
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this tbotd knows "
                f"({len(migrations)}); upgrade tbotd instead of downgrading the database"
            )
        for version, migration in enumerate(migrations[current:], start=current + 1):
            with self.transaction():
                migration(self.db)
                self.db.conn.execute(f"PRAGMA user_version = {version:d}")

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[None]:
        """All writes inside happen together or not at all (nested blocks are savepoints).

        ``immediate`` takes the write lock at the start (``BEGIN IMMEDIATE``, waiting the busy
        timeout for another writer), so what is read inside cannot change before the write: a
        read-then-write in a plain transaction fails at once ("database is locked") when another
        connection commits in between. It must be the outermost transaction (a savepoint inside
        another cannot take the lock then): asked inside one, it refuses.
        """
        conn = self.db.conn
        if not immediate:
            with self.db.atomic():
                yield
            return
        if conn.in_transaction:
            raise RuntimeError("an immediate transaction cannot be nested in another")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()  # a no-op where the error already ended the transaction
            raise

    @property
    def in_transaction(self) -> bool:
        """A transaction is open on this connection (an error inside it may have ended it)."""
        return bool(self.db.conn.in_transaction)

    def query(
        self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()
    ) -> list[dict[str, Any]]:
        """Run a read query and return its rows as dicts."""
        return list(self.db.query(sql, params))

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says ok."""
        return bool(self.db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def close(self) -> None:
        """Checkpoint the WAL and close; safe to call twice."""
        with contextlib.suppress(sqlite3.ProgrammingError, StorageUnavailableError):
            self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # fails on a full disk
        with contextlib.suppress(sqlite3.ProgrammingError):
            self.db.close()


def _create_private(path: Path) -> None:
    """Create the database file with mode 0600 before SQLite opens it (WAL/SHM inherit it)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


__all__ = ["Database", "StoreError", "datetime_to_ms", "dec", "ms_to_datetime", "undec"]
