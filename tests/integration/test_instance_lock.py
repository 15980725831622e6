"""One daemon per database (README: Protection): a second `tbotd run` on it is refused, saying who
holds it, and the lock dies with its holder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tbotd.domain.errors import InstanceConflictError
from tbotd.store.lock import DatabaseLock
from tests.conftest import CONFIGS, RunTbotd


def config_on(tmp_path: Path, db: Path) -> Path:
    """The demo config with its database at ``db`` (its exchange need not be reachable)."""
    text = (CONFIGS / "demo.toml").read_text()
    lines = [
        f'path = "{db}"' if line.strip().startswith("path =") else line
        for line in text.splitlines()
    ]
    path = tmp_path / "demo.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_second_daemon_on_the_same_database_exits_2_naming_the_holder(
    tmp_path: Path, run_tbotd: RunTbotd
) -> None:
    """While one process holds the database, `tbotd run` exits 2 with one line naming its pid
    and config — no traceback, no order sent."""
    db = tmp_path / "shared.sqlite"
    holder = DatabaseLock(db, "tbotd run --config first.toml, instance first")
    holder.acquire()
    try:
        done = run_tbotd("run", "--config", str(config_on(tmp_path, db)), timeout=60)
    finally:
        holder.release()
    assert done.returncode == 2, done.stderr
    assert f"pid {os.getpid()}" in done.stderr
    assert "first.toml" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_lock_is_free_again_once_its_holder_lets_go(tmp_path: Path) -> None:
    """Released (or its process gone, even by SIGKILL: the kernel drops it), the next takes it."""
    db = tmp_path / "x.sqlite"
    first = DatabaseLock(db, "first")
    first.acquire()
    with pytest.raises(InstanceConflictError, match="in use by another tbotd"):
        DatabaseLock(db, "second").acquire()
    first.release()
    second = DatabaseLock(db, "second")
    second.acquire()
    second.release()
