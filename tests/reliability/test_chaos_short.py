"""The chaos run, short (CI): the live daemon SIGKILLed 5 times against the sim — at random
instants, inside cycles, and between an order's execution and its answer — and every invariant
checked against the exchange's records after each restart and at the end.

The same harness as ``benchmarks/chaos.py`` (whose full run, 50+ kills, is in
docs/RELIABILITY.md); here with few kills so CI stays fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.reliability.chaos import ChaosOptions, run_chaos


@pytest.mark.slow
async def test_five_kills_leave_no_duplicate_no_unprotected_position_no_mismatch(
    tmp_path: Path,
) -> None:
    """5 SIGKILLs: no duplicate entry, every position protected after restart, the database
    equal to the exchange, integrity ok, and a clean SIGTERM exit at the end."""
    report = await run_chaos(ChaosOptions(kills=5, seed=7, max_run_s=2.0, workdir=tmp_path))
    summary = report.summary()
    details = summary["details"]
    assert summary["kills"] == 5
    assert set(summary["kill_modes"]) == {"random", "cycle", "lost-reply"}
    assert summary["decisions"] > 0
    assert summary["duplicate_orders"] == 0, details["duplicates"]
    assert summary["unprotected_positions"] == 0, details["unprotected"]
    assert summary["mismatches"] == 0, (details["mismatches"], details["unknown"])
    assert summary["integrity_ok"], details["integrity"]
    assert summary["final_exit_code"] == 0
