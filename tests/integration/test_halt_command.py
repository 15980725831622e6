"""`tbotd halt` and `resume` reach the daemon's own database or say why they cannot: a command
written into a new, empty file would reach no daemon while reporting success."""

from __future__ import annotations

from pathlib import Path

from tbotd.daemon.risk import read_command
from tbotd.store import Store
from tests.conftest import CONFIGS, RunTbotd


def test_halt_refuses_a_database_that_does_not_exist(tmp_path: Path, run_tbotd: RunTbotd) -> None:
    """The config's database is not there (another directory, another unit's path): exit 2,
    the path named, no file created."""
    missing = tmp_path / "elsewhere.sqlite"
    done = run_tbotd(
        "halt",
        "--config",
        str(CONFIGS / "ml_usdt_directional.toml"),
        env={"TBOTD_STORE__PATH": str(missing)},
    )
    assert done.returncode == 2
    assert f"no database at {missing}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not missing.exists()


def test_halt_and_resume_by_database_path(tmp_path: Path, run_tbotd: RunTbotd) -> None:
    """`--db FILE` names the daemon's database itself; the commands are numbered in order."""
    db = tmp_path / "daemon.sqlite"
    Store.open(db).close()
    halted = run_tbotd("halt", "--flatten", "--db", str(db))
    assert halted.returncode == 0, halted.stderr
    assert f"until `tbotd resume --db {db}`" in halted.stdout
    shown = run_tbotd("status", "--db", str(db))
    assert "halt with flatten #1 written, not applied yet" in shown.stdout, shown.stderr
    again = run_tbotd("halt", "--db", str(db))  # before the daemon applied the first
    assert "halt with flatten #2 recorded" in again.stdout, again.stderr
    assert run_tbotd("resume", "--db", str(db)).returncode == 0
    store = Store.open(db)
    try:
        command = read_command(store)
    finally:
        store.close()
    assert command is not None
    assert (command.seq, command.halt) == (3, None)
