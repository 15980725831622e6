"""The fault matrix, short (CI): the live daemon against the sim and a flaky ML service, two
candles per fault. The same harness as ``benchmarks/fault_matrix.py`` (full figures in
docs/RELIABILITY.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.reliability.matrix import MatrixOptions, run_matrix

ML_FAULTS = ("ml-down", "ml-slow", "ml-garbage", "ml-401")


@pytest.mark.slow
async def test_every_fault_is_survived_without_duplicates_mismatches_or_bare_positions(
    tmp_path: Path,
) -> None:
    """Every fault: no duplicate or unknown order, the database equal to the exchange, every
    position protected after it; ML failures fall back (neutral here: no local models) without
    missing a candle; a clock beyond the venue's tolerance sends nothing at all."""
    figures = await run_matrix(MatrixOptions(cycles=2, speed=300, workdir=tmp_path))
    rows = {r["fault"]: r for r in figures["faults"]}
    assert figures["duplicate_orders"] == 0, figures["details"]
    assert figures["unknown_orders"] == 0, figures["details"]
    assert figures["mismatches"] == 0, figures["details"]
    assert figures["exit_code"] == 0
    assert [r["fault"] for r in figures["faults"] if r["unprotected_after"]] == []
    assert rows["baseline"]["missed"] == 0
    assert set(rows["baseline"]["sources"]) == {"remote"}
    for name in ML_FAULTS:
        assert rows[name]["missed"] == 0, rows[name]
        assert set(rows[name]["sources"]) == {"neutral"}, rows[name]
    skew = rows["clock-skew-2.5s"]
    assert skew["orders"] == 0
    assert skew["failed_cycles"] > 0
