"""The backtest and the paper broker driven through the daemon's strategy seam trade identically,
for every strategy kind."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tbotd.backtest import run_backtest
from tbotd.domain import Prediction
from tbotd.domain.markets import BTCUSD_PERP, BTCUSDT_PERP
from tbotd.store import Store
from tests.unit.backtest_support import KINDS, paper_cycle, random_scenario, settings


def model_answers(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-model answers (prediction schema 2) a row's model columns stand for."""
    out: list[dict[str, Any]] = []
    if "p_down" in row:
        p = [float(row[c]) for c in ("p_down", "p_neutral", "p_up")]
        out.append({"name": "direction", "version": "parity", "probabilities": p})
    if row.get("expected_return", "") != "" and "expected_return" in row:
        out.append(
            {
                "name": "volatility",
                "version": "parity",
                "expected_return": float(row["expected_return"]),
                "sd": float(row["sd"]),
            }
        )
    if "regime_down" in row:
        r = [float(row[c]) for c in ("regime_down", "regime_sideways", "regime_up")]
        out.append({"name": "regime", "version": "parity", "probabilities": r})
    return out


def daemon_predictions(preds: pd.DataFrame, symbol: str) -> dict[int, Prediction | None]:
    """What the daemon would have received per candle, built straight from the rows."""
    out: dict[int, Prediction | None] = {}
    for row in preds.to_dict("records"):
        if row["signal"] == "hold":
            out[int(row["timestamp"])] = None
            continue
        extra: dict[str, Any] = {}
        if row.get("sd", "") != "" and "sd" in row:
            extra["sd"] = float(row["sd"])
        if "stop_loss" in row:
            extra["stop_loss"] = Decimal(repr(float(row["stop_loss"])))
            extra["take_profit"] = Decimal(repr(float(row["take_profit"])))
        extra["models"] = model_answers(row)
        out[int(row["timestamp"])] = Prediction.model_validate(
            {
                "symbol": symbol,
                "timestamp": int(row["timestamp"]),
                "signal": row["signal"],
                "confidence": float(row["confidence"]),
                "model_version": "parity",
                "source": "remote",
                **extra,
            }
        )
    return out


CASES = [
    # (seed, inverse, exits, share of confident rows, execution and strategy overrides)
    (1, False, "sd", 0.5, {"slippage_bps": "2"}, {}),
    (2, False, "absolute", 0.5, {"slippage_bps": "3", "leverage": 3}, {}),
    (3, False, "sd", 0.5, {"leverage": 20, "slippage_bps": "1"}, {"on_neutral": "hold"}),
    (4, False, "sd", 0.5, {"position_fraction": "0.5"}, {"refresh_exits_on_hold": True}),
    (5, True, "sd", 0.5, {"slippage_bps": "2", "leverage": 10}, {"threshold": 0.65}),
    (6, True, "absolute", 0.5, {"slippage_bps": "2"}, {"refresh_exits_on_hold": True}),
    (7, False, "wide", 0.1, {"leverage": 50, "slippage_bps": "2"}, {}),  # liquidations
    (8, True, "wide", 0.1, {"leverage": 50}, {}),
    (9, False, "sd", 0.6, {"size_buffer_bps": "0", "slippage_bps": "8"}, {}),  # margin refusals
]


@pytest.mark.parametrize(("seed", "inverse", "exits", "sure", "execution", "strategy"), CASES)
async def test_backtest_equals_the_paper_broker_cycle(
    tmp_path: Path,
    seed: int,
    inverse: bool,
    exits: str,
    sure: float,
    execution: dict[str, Any],
    strategy: dict[str, Any],
) -> None:
    """Same candles, predictions and funding: the same trades (every field) and final balance."""
    config = settings(inverse, execution=execution, strategy=strategy)
    market = BTCUSD_PERP if inverse else BTCUSDT_PERP
    frame, preds, funding = random_scenario(seed, 400, inverse=inverse, exits=exits, sure=sure)
    result = run_backtest(frame, preds, config, funding, market)
    trades, balance = await paper_cycle(
        frame, daemon_predictions(preds, market.symbol), config, market, funding, tmp_path / "p.db"
    )
    assert len(result.trades) >= 10
    expected = list(result.trades)
    if expected[-1].exit_reason == "end_of_data":  # the broker's own close says "decision"
        expected[-1] = replace(expected[-1], exit_reason="decision")
    assert trades == expected
    assert balance == result.final_equity


def test_the_parity_scenarios_reach_every_path() -> None:
    """The cases above exercise every exit, refusal, fallback and funding path (else they prove
    less than they seem to)."""
    reasons: set[str] = set()
    skipped: set[str] = set()
    fallback = paid = missing = 0
    for seed, inverse, exits, sure, execution, strategy in CASES:
        config = settings(inverse, execution=execution, strategy=strategy)
        frame, preds, funding = random_scenario(seed, 400, inverse=inverse, exits=exits, sure=sure)
        result = run_backtest(
            frame, preds, config, funding, BTCUSD_PERP if inverse else BTCUSDT_PERP
        )
        reasons |= {t.exit_reason for t in result.trades}
        skipped |= set(result.skipped)
        fallback += result.exits_fallback
        paid += result.funding_payments
        missing += result.funding_missing
    # no "liquidation": every stop sits at most half the way to it (README: Protection), so a stop
    # fires first; the paper model's liquidation is proved in test_paper_model.py
    assert reasons == {"stop_loss", "take_profit", "decision", "end_of_data"}
    assert skipped == {"insufficient_margin", "manager_refused"}
    assert fallback > 0
    assert paid > 0
    assert missing > 0


@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"ml_directional"}))
@pytest.mark.parametrize("inverse", [False, True])
async def test_every_kind_trades_alike_in_the_paper_cycle_and_the_backtest(
    tmp_path: Path, kind: str, inverse: bool
) -> None:
    """A classic or ML-enhanced strategy: the daemon's way (indicators streamed candle by
    candle, the enhancement layer on one prediction at a time, PaperBroker) and the backtest's
    (indicators in batch, the layer over arrays, the fast path) make the same trades, end with
    the same balance, and record the same provenance for every entry."""
    config = settings(inverse, strategy=KINDS[kind], execution={"slippage_bps": "2"})
    market = BTCUSD_PERP if inverse else BTCUSDT_PERP
    frame, preds, funding = random_scenario(3, 500, inverse=inverse, exits="sd", sure=0.5)
    result = run_backtest(frame, preds, config, funding, market)
    db = tmp_path / "p.db"
    trades, balance = await paper_cycle(
        frame, daemon_predictions(preds, market.symbol), config, market, funding, db
    )
    assert len(result.trades) >= 8, kind
    expected = list(result.trades)
    if expected[-1].exit_reason == "end_of_data":
        expected[-1] = replace(expected[-1], exit_reason="decision")
    assert trades == expected
    assert balance == result.final_equity
    store = Store.open(db)
    rows = store.query(
        "SELECT candle_time, strategy, provenance FROM decisions WHERE entries > 0 "
        "ORDER BY candle_time"
    )
    store.close()
    entries = [
        (
            d.open_ms,
            d.trace.strategy,
            None if d.trace.provenance is None else str(d.trace.provenance),
        )
        for d in result.decisions
        if any(type(a).__name__ == "OpenPosition" for a in d.actions)
    ]
    assert [(r["candle_time"], r["strategy"], r["provenance"]) for r in rows] == entries
