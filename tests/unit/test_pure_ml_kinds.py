"""The pure ML kinds (README: Pure ML strategies): ml_momentum trades only while the regime model
says trending, ml_mean_reversion only while it says sideways, both only with consensus."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tbotd.backtest import run_backtest
from tbotd.backtest.predictions import ml_inputs
from tbotd.backtest.predictions_csv import prediction_table
from tbotd.backtest.run import candle_arrays, prediction_rows
from tbotd.cli import main
from tbotd.config.settings import Settings
from tbotd.domain import Prediction
from tbotd.domain.actions import Reason
from tbotd.domain.markets import BTCUSDT_PERP
from tbotd.strategy.build import build_strategy
from tbotd.strategy.ml_opinion import MLInputs
from tbotd.strategy.pure_ml import trending
from tbotd.strategy.signal import ABSTAIN, LONG, SHORT, SignalSeries, reasons_of
from tests.conftest import CONFIGS
from tests.synthetic import write_csv
from tests.unit.backtest_support import KINDS, random_scenario, settings

BARS = 1200
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def config(kind: str) -> Settings:
    return settings(strategy=KINDS[kind], execution={"slippage_bps": "2"})


def scenario(**columns: Any) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, Any]]:
    """The busy random scenario with some model columns forced to one value on every row."""
    frame, preds, funding = random_scenario(5, BARS, exits="sd", sure=0.5)
    for name, value in columns.items():
        preds[name] = value
    return frame, preds, funding


def signal(kind: str, frame: pd.DataFrame, preds: pd.DataFrame) -> SignalSeries:
    table = prediction_table(preds.astype(str), "predictions", first_line=0)
    bars = candle_arrays(frame, "5m")
    ml = ml_inputs(table, prediction_rows(table, bars, 0))
    return build_strategy(config(kind)).series(bars.high, bars.low, bars.close, ml)


def trades(kind: str, frame: pd.DataFrame, preds: pd.DataFrame, funding: dict[int, Any]) -> int:
    return len(run_backtest(frame, preds, config(kind), funding, BTCUSDT_PERP).trades)


SIDEWAYS = {"regime_down": 0.1, "regime_sideways": 0.8, "regime_up": 0.1}
TRENDING = {"regime_down": 0.05, "regime_sideways": 0.1, "regime_up": 0.85}


def test_forced_sideways_regime_means_no_momentum_trade() -> None:
    """Regime probabilities forced to sideways on every bar: ml_momentum makes no trade (and
    trades on the same bars with the scenario's own regimes)."""
    frame, preds, funding = scenario(**SIDEWAYS)
    assert trades("ml_momentum", frame, preds, funding) == 0
    series = signal("ml_momentum", frame, preds)
    assert (series.result.direction == ABSTAIN).all()
    assert trades("ml_momentum", *random_scenario(5, BARS, exits="sd", sure=0.5)) > 10


def test_forced_trending_regime_means_no_mean_reversion_trade() -> None:
    """Regime probabilities forced to trending on every bar: ml_mean_reversion makes no trade
    (and trades with the scenario's own regimes)."""
    frame, preds, funding = scenario(**TRENDING)
    assert trades("ml_mean_reversion", frame, preds, funding) == 0
    bits = {reasons_of(int(m)) for m in signal("ml_mean_reversion", frame, preds).result.reasons}
    assert all(Reason.REGIME_NOT_SIDEWAYS in b or Reason.ML_NO_PREDICTION in b for b in bits)
    assert trades("ml_mean_reversion", *random_scenario(5, BARS, exits="sd", sure=0.5)) > 10


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        # direction up, price inside the fee band (flat), regime trending down: 1/1/1
        ("ml_momentum", {"expected_return": 0.0, "sd": 0.0005, **TRENDING, "regime_up": 0.05,
                         "regime_down": 0.85}),
        # direction up (extreme), price down, regime sideways (flat): 1/1/1
        ("ml_mean_reversion", {"expected_return": -0.01, "sd": 0.003, **SIDEWAYS}),
    ],
)  # fmt: skip
def test_models_that_disagree_on_every_bar_block_every_entry(
    kind: str, columns: dict[str, float]
) -> None:
    """The direction, price and regime models each name another direction on every bar: the
    regime gate is open, yet consensus blocks every entry, for the reason "no consensus"."""
    up = {"p_down": 0.05, "p_neutral": 0.1, "p_up": 0.85}
    frame, preds, funding = scenario(**up, **columns)
    assert trades(kind, frame, preds, funding) == 0
    series = signal(kind, frame, preds)
    judged = [reasons_of(int(m)) for m in series.result.reasons]
    judged = [r for r in judged if Reason.ML_NO_PREDICTION not in r]
    assert len(judged) > BARS // 2
    assert all(Reason.NO_CONSENSUS in r for r in judged)


@pytest.mark.parametrize(
    ("forced", "blocked", "free"),
    [
        (SIDEWAYS, "ml_momentum", "ml_mean_reversion"),
        (TRENDING, "ml_mean_reversion", "ml_momentum"),
    ],
)
def test_the_regime_gates_show_in_compare(
    tmp_path: Path, forced: dict[str, float], blocked: str, free: str
) -> None:
    """`tbotd backtest --compare` over a predictions CSV with the regime forced: the gated pure
    ML arm makes no trade, the other one does."""
    frame, preds, _ = scenario(**forced)
    candles = write_csv(frame, tmp_path / "candles.csv")
    preds.to_csv(tmp_path / "pred.csv", index=False)
    out = tmp_path / "out"
    code = main(
        [
            "backtest", "--compare", "--config", str(CONFIGS / "ml_enhanced_mean_reversion.toml"),
            "--data", str(candles), "--predictions", str(tmp_path / "pred.csv"),
            "--out", str(out), "--json", "--resamples", "50",
        ]
    )  # fmt: skip
    assert code == 0
    arms = json.loads((out / "compare.json").read_text())["arms"]
    assert arms[blocked]["trades"] == 0
    assert arms[free]["trades"] > 0


def test_a_regime_flicker_does_not_flip_the_momentum_gate() -> None:
    """Opened at 0.6, the gate stays open down to 0.5 and closes below it (or without an
    answer); in between it keeps what it was."""
    mass = np.array([0.55, 0.61, 0.52, 0.58, 0.49, 0.58, np.nan, 0.7, 0.55])
    assert trending(mass, 0.6, 0.5).tolist() == [0, 1, 1, 1, 0, 0, 0, 1, 1]
    assert trending(mass[:1], 0.6, 0.5, start=True).tolist() == [1]


def prediction(models: list[dict[str, Any]], **extra: Any) -> Prediction:
    return Prediction.model_validate(
        {
            "symbol": "BTC/USDT:USDT",
            "timestamp": T0,
            "signal": "long",
            "confidence": 0.8,
            "model_version": "t",
            "source": "remote",
            "models": models,
            **extra,
        }
    )


def answer(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "version": "v", **fields}


def one(kind: str, p: Prediction) -> tuple[int, float, tuple[Reason, ...]]:
    series = build_strategy(config(kind)).combine(None, MLInputs.of(p))
    r = series.result
    return int(r.direction[0]), float(r.confidence[0]), reasons_of(int(r.reasons[0]))


def test_the_daemon_carries_the_gate_from_candle_to_candle() -> None:
    """Session.signal one candle at a time: the gate opened on one candle still lets the next
    one (P(trend) 0.55, between the levels) trade, as the backtest's series does."""
    session = build_strategy(config("ml_momentum")).session()
    d = answer("direction", probabilities=[0.1, 0.2, 0.7])

    def step(mass: float) -> int:
        regime = answer("regime", probabilities=[0.0, round(1 - mass, 2), mass])
        inp = type("Inp", (), {"symbol": "BTC/USDT:USDT", "prediction": prediction([d, regime])})
        return int(session.signal(inp, []).result.direction[0])  # type: ignore[arg-type]

    assert [step(m) for m in (0.55, 0.65, 0.55, 0.45, 0.55)] == [
        ABSTAIN,
        LONG,
        LONG,
        ABSTAIN,
        ABSTAIN,
    ]


def test_mean_reversion_fades_an_extreme_call_with_the_price_models_sd() -> None:
    """P(up) 0.8 while sideways, the models agreeing on up: a short at 0.8, exits from the
    price model's sd (not the prediction's own)."""
    p = prediction(
        [
            answer("direction", probabilities=[0.05, 0.15, 0.8]),
            answer("volatility", expected_return=0.004, sd=0.003),
            answer("regime", probabilities=[0.2, 0.6, 0.2]),
        ],
        sd=0.01,
    )
    assert one("ml_mean_reversion", p) == (
        SHORT,
        0.8,
        (Reason.REGIME_SIDEWAYS, Reason.FADED_EXTREME, Reason.CONSENSUS),
    )
    series = build_strategy(config("ml_mean_reversion")).combine(None, MLInputs.of(p))
    assert series.vote(0).exits.sd == 0.003


def test_the_legacy_regime_alone_never_drives_a_pure_kind() -> None:
    """A schema-1 style prediction (a combined regime, no model answers): the pure kinds
    abstain because the direction model did not answer — nothing is filled in."""
    p = prediction([], regime={"trend_down": 0.05, "sideways": 0.1, "trend_up": 0.85})
    assert one("ml_momentum", p) == (ABSTAIN, 0.0, (Reason.DIRECTION_MISSING,))


def test_a_refused_answer_abstains_alone() -> None:
    """A regime answer whose probabilities do not sum to 1 is refused: the regime model is
    missing (momentum cannot trade), the other answers still stand."""
    p = prediction(
        [
            answer("direction", probabilities=[0.1, 0.2, 0.7]),
            answer("regime", probabilities=[0.5, 0.5, 0.5]),
        ]
    )
    assert [a.name for a in p.models] == ["direction"]
    assert one("ml_momentum", p) == (ABSTAIN, 0.0, (Reason.REGIME_MISSING,))
    assert one("ml_directional", p)[0] == LONG
