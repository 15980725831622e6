"""Damaged storage and a taken port are the operator's to fix: `tbotd run` says so in one line
naming the file or port and what to do, exit 2 — never a traceback (and never an order)."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tbotd.domain.errors import ConfigError
from tbotd.ops.http import OpsServer
from tbotd.store import Store
from tests.conftest import RunTbotd
from tests.integration.test_instance_lock import config_on


def damage(path: Path) -> None:
    """A real database, then the middle of a table's pages overwritten (the header survives, so
    SQLite opens it and only an integrity check finds the damage)."""
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE filler (x TEXT)")
    conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 400)
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page * 3, min(len(data), page * 12), page):
        data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["garbage", "damaged", "unwritable directory"])
def test_a_database_that_cannot_be_used_exits_2_in_one_line(
    run_tbotd: RunTbotd, tmp_path: Path, kind: str
) -> None:
    """Garbage, pages damaged (PRAGMA quick_check at start), a directory it cannot create the
    file in: exit 2, one line on stderr naming the file, no traceback."""
    if kind == "unwritable directory" and os.geteuid() == 0:
        pytest.skip("running as root: directory permissions do not bind")
    db = tmp_path / "d" / "tbotd.sqlite"
    db.parent.mkdir()
    if kind == "garbage":
        db.write_bytes(b"not a database" * 300)
    elif kind == "damaged":
        damage(db)
    else:
        db.parent.chmod(0o500)
    try:
        done = run_tbotd("run", "--config", str(config_on(tmp_path, db)), timeout=60)
    finally:
        db.parent.chmod(0o700)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert str(db) in lines[0]
    assert "Traceback" not in done.stderr


async def _nothing() -> dict[str, object]:
    return {}


def test_a_taken_ops_port_is_named_with_what_to_do() -> None:
    """The ops endpoint's port held by another process: a ConfigError naming host and port
    (which `tbotd run` prints as one line, exit 2)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        server = OpsServer(
            "127.0.0.1", port, None, CollectorRegistry(), status=_nothing, ready=lambda: (True, "")
        )
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*ops.port"):
            asyncio.run(server.start())
    finally:
        holder.close()
