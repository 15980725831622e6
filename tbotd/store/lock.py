"""One daemon per database (README: Protection): an exclusive lock beside the SQLite file.

Two daemons on one database would both trade from it (SQLite itself only says "database is
locked" to whichever loses a write race). ``<database>.lock`` is held with ``flock`` for the
daemon's whole life; the kernel releases it when the process ends in any way, a SIGKILL
included, so a crash never leaves a stale lock (crash-only). The file names the holder — pid and
config — so the second daemon's refusal says who to stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from tbotd.domain.errors import InstanceConflictError


class DatabaseLock:
    """The exclusive lock of one database file; :meth:`acquire` once, :meth:`release` at exit."""

    def __init__(self, database: Path, holder: str) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._holder = holder
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise InstanceConflictError naming the daemon that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise InstanceConflictError(
                f"{self.path.with_suffix('')} is in use by another tbotd ({holder}): stop it, "
                "or give this instance its own store.path"
            ) from None
        self._fd = fd
        note = json.dumps({"pid": os.getpid(), "holder": self._holder}).encode()
        with contextlib.suppress(OSError):  # a full disk must not stop a daemon that protects
            os.ftruncate(fd, 0)
            os.pwrite(fd, note, 0)

    def release(self) -> None:
        """Let go (the process ending does the same)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read(fd: int) -> str:
    """Who holds the lock, from what it wrote there."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return "holder unknown"
    return f"pid {data.get('pid', '?')}, {data.get('holder', '?')}"
