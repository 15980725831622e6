"""``kind = "ml_directional"`` trades exactly as before the strategy seam existed.

The hashes are of ``trades.csv`` written by the code at the branch point of the strategies work
(commit f25a774, before ``strategy.kind``) on these seeded scenarios; the same check on a year
of real candles is recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tbotd.backtest import run_backtest
from tbotd.backtest.report import write_trades
from tbotd.domain.markets import BTCUSD_PERP, BTCUSDT_PERP
from tests.unit.backtest_support import random_scenario, settings

# (seed, inverse, exits, confident share, price grid, execution, strategy, trades, sha256)
GOLDEN: list[tuple[int, bool, str, float, float, dict[str, Any], dict[str, Any], int, str]] = [
    (1, False, "sd", 0.5, 0.1, {"slippage_bps": "2"}, {}, 301,
     "14f1a3edec00b050b099a626e244114e781f0ec13cc95809307f25b0ea4f04bc"),
    (2, False, "absolute", 0.5, 0.1, {"slippage_bps": "3", "leverage": 3}, {}, 293,
     "815b7d2d82270dc62092781ff12980708438e19937e275d838ad931bcab24be1"),
    (3, False, "sd", 0.5, 10.0, {"leverage": 20, "slippage_bps": "1"}, {"on_neutral": "hold"},
     140, "d7d50b9a6d605f1e8a1ffdfa172bd2af0ed3e44ca2f9979ca0535332add89c11"),
    (4, False, "sd", 0.5, 0.1, {"position_fraction": "0.5"}, {"refresh_exits_on_hold": True},
     299, "ddca73d1bb4466a69f44e6805a3fe2af375482989dc1920a1eb8933779175c15"),
    (5, True, "sd", 0.5, 0.1, {"slippage_bps": "2", "leverage": 10}, {"threshold": 0.65}, 327,
     "fc7defd305c8cce1ba82e9838b326870ea7434736ddfb136b1a9c4b67a53fb16"),
    (6, True, "absolute", 0.5, 50.0, {"slippage_bps": "2"}, {"refresh_exits_on_hold": True},
     302, "c8d1dbd08e7b57c7a9097c99d73cea23539ad0c883e9b7c84e12f12cc2c34cea"),
    (7, False, "wide", 0.1, 0.1, {"leverage": 50, "slippage_bps": "2"}, {}, 58,
     "0073293f1a97b543c59e8492cbc9a88248dd50a947843ec13bd4a246dbaa7e67"),
    (8, True, "wide", 0.1, 0.1, {"leverage": 50}, {}, 41,
     "5ca92b57c9327267e680b37309d932ab2b2e5ea19ea0942ce63786663559144c"),
    (9, False, "sd", 0.6, 0.1, {"size_buffer_bps": "0", "slippage_bps": "8"}, {}, 310,
     "eafa3f5754f244f60784ae37500005fe03393f95d571bb6baa68690bb6f6a5cf"),
    (10, False, "fixed", 0.9, 10.0, {"slippage_bps": "2"}, {"max_entries_per_hour": 2}, 236,
     "d39163c891c43c5f8b3dac9af20346c0b7c5b32a979c19902a1435d68e7f03d1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("seed", "inverse", "exits", "sure", "grid", "execution", "strategy", "count", "digest"),
    GOLDEN,
)
def test_ml_directional_trades_csv_is_byte_identical_to_the_branch_point(
    tmp_path: Path,
    seed: int,
    inverse: bool,
    exits: str,
    sure: float,
    grid: float,
    execution: dict[str, Any],
    strategy: dict[str, Any],
    count: int,
    digest: str,
) -> None:
    """Same candles, predictions, funding and config: the same trades.csv, byte for byte."""
    frame, preds, funding = random_scenario(seed, 1500, inverse, exits, sure, grid)
    config = settings(inverse, execution=execution, strategy=strategy)
    assert config.strategy.kind == "ml_directional"  # the default kind
    result = run_backtest(frame, preds, config, funding, BTCUSD_PERP if inverse else BTCUSDT_PERP)
    write_trades(result.trades, tmp_path / "trades.csv")
    assert len(result.trades) == count
    assert hashlib.sha256((tmp_path / "trades.csv").read_bytes()).hexdigest() == digest
