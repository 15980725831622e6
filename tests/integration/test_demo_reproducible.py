"""`tbotd demo` is a newcomer's first sight of the product: the same command must show the same
trades on any run, and enough of them to see the machinery (entries, stops, targets)."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunTbotd

TRADES = (
    "SELECT symbol, side, qty, entry_time, exit_time, entry_price, exit_price, exit_reason, pnl, "
    "fees FROM trades ORDER BY id"
)


def demo(run_tbotd: RunTbotd, out: Path) -> dict[str, Any]:
    """The README's demo (default cycles, config and speed) with its output under ``out``."""
    result = run_tbotd("demo", "--out", str(out), "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    summary.pop("files")
    return summary


def trades(db: Path) -> list[tuple[Any, ...]]:
    """Every closed trade, in order."""
    with sqlite3.connect(db) as conn:
        return conn.execute(TRADES).fetchall()


@pytest.mark.slow
def test_the_demo_twice_gives_the_same_trades_and_summary(
    run_tbotd: RunTbotd, tmp_path: Path
) -> None:
    """Two `tbotd demo` runs at once: identical summaries and trades, at least 5 closed trades."""
    with ThreadPoolExecutor(2) as pool:  # contending for the CPU, as on a busy machine
        first, second = pool.map(lambda out: demo(run_tbotd, out), (tmp_path / "a", tmp_path / "b"))
    assert first == second
    assert first["trades"] >= 5
    assert trades(tmp_path / "a" / "demo.sqlite") == trades(tmp_path / "b" / "demo.sqlite")
    assert (tmp_path / "a" / "models" / "direction.safetensors").read_bytes() == (
        tmp_path / "b" / "models" / "direction.safetensors"
    ).read_bytes()
