"""The hostile run, short (CI): hostile predictions, hands on the account, a second daemon and
(where this machine lets the test mount a tmpfs) a disk that fills up — and the strict
protection definition holds beyond its bounded window, the books equal the exchange's fills.

The same harness as ``benchmarks/hostile.py`` (whose full run is in docs/RELIABILITY.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.reliability.hostile import HostileOptions, run_hostile


@pytest.mark.slow
async def test_hostile_predictions_hands_a_second_daemon_and_a_full_disk(tmp_path: Path) -> None:
    """Nothing hostile leaves a position unprotected beyond the window, doubles an order, puts a
    stop out of bounds, trades on absurd prices or breaks the books."""
    summary = (await run_hostile(HostileOptions(candles=8, workdir=tmp_path))).summary()
    details = summary["details"]
    assert summary["duplicate_orders"] == 0, details["duplicates"]
    assert summary["unprotected_positions"] == 0, details["beyond_window"]
    assert summary["mismatches"] == 0, details["mismatches"]
    assert summary["unknown_orders"] == 0, details["unknown"]
    assert summary["bookkeeping_equal"]
    assert summary["max_entries_per_hour"] <= 4
    assert summary["stops_out_of_bounds"] == []
    assert summary["entries_on_absurd_prices"] == 0
    phases = summary["phases"]
    assert phases["second daemon"]["same database"]["exit_code"] == 2
    assert phases["second daemon"]["other database"]["orders_sent"] == 0
    assert phases["second daemon"]["other database"]["suspension_alerts"] > 0
    disk = phases["disk"]
    if "skipped" not in disk:
        assert disk["entries_while_full"] == 0
