"""`tbotd backtest --compare`: nine arms on the same inputs whose numbers add up, that differ
only where they can, and the paired bootstrap's answer to "did ML improve my strategy?"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tbotd.backtest.compare import ARMS, Comparison, run_compare
from tbotd.backtest.predictions_csv import prediction_table
from tbotd.backtest.run import Inputs, candle_arrays, prediction_rows
from tbotd.cli import main
from tbotd.config.settings import Settings
from tbotd.domain.actions import Direction, OpenPosition
from tbotd.domain.markets import BTCUSDT_PERP
from tests.conftest import CONFIGS
from tests.synthetic import write_csv
from tests.unit.backtest_support import MEAN_REVERSION, random_scenario, settings

BARS = 1500


def enhanced(**enhance: Any) -> Settings:
    """An ml_enhanced config over the tests' busy mean reversion."""
    return settings(
        strategy={
            "kind": "ml_enhanced",
            "classic": MEAN_REVERSION,
            "enhance": {"mode": "boost", "confidence_threshold": 0.6, **enhance},
            "threshold": 0.55,
        },
        execution={"slippage_bps": "2"},
    )


def compare(preds: pd.DataFrame | None, config: Settings, seed: int = 4) -> Comparison:
    frame, default, funding = random_scenario(seed, BARS, exits="sd", sure=0.5)
    table = prediction_table(
        (default if preds is None else preds).astype(str), "predictions", first_line=0
    )
    bars = candle_arrays(frame, "5m")
    inputs = Inputs(bars, table, prediction_rows(table, bars, 0), BTCUSDT_PERP, funding)
    return run_compare(inputs, config, resamples=400)


def predictions(seed: int = 4) -> pd.DataFrame:
    return random_scenario(seed, BARS, exits="sd", sure=0.5)[1]


def test_every_arm_runs_and_its_numbers_add_up() -> None:
    """Nine arms, each booked exactly: final − initial equity = net PnL (pnl − fees +
    funding); buy-and-hold holds one position to the end with no TP/SL."""
    result = compare(None, enhanced())
    assert list(result.arms) == list(ARMS)
    for name, arm in result.arms.items():
        net = sum((t.net for t in arm.trades), start=arm.initial_equity * 0)
        assert arm.final_equity - arm.initial_equity == net, name
    hold = result.arms["buy_and_hold"]
    assert len(hold.trades) == 1
    assert hold.trades[0].exit_reason == "end_of_data"
    assert hold.trades[0].stop_loss is None
    assert {n: a.strategy for n, a in result.arms.items()} == {
        "classic": "classic:mean_reversion",
        "boost": "ml_enhanced:boost:mean_reversion",
        "filter": "ml_enhanced:filter:mean_reversion",
        "replace": "ml_enhanced:replace:mean_reversion",
        "hybrid": "ml_enhanced:hybrid:mean_reversion",
        "ml_directional": "ml_directional",
        "ml_momentum": "ml_momentum",
        "ml_mean_reversion": "ml_mean_reversion",
        "buy_and_hold": "buy_and_hold",
    }
    assert all(len(a.trades) > 5 for n, a in result.arms.items() if n != "buy_and_hold")


def abstaining(preds: pd.DataFrame) -> pd.DataFrame:
    """The same rows, every confidence below the layer's confidence_threshold (0.6)."""
    out = preds.copy()
    out["confidence"] = 0.59
    return out


def test_ml_abstaining_everywhere_leaves_boost_equal_to_classic_and_replace_idle() -> None:
    """Predictions all below confidence_threshold are ML abstaining: boost makes exactly the
    classic arm's trades, replace makes none, and the bootstrap says "no difference"."""
    result = compare(abstaining(predictions()), enhanced())
    assert result.arms["boost"].trades == result.arms["classic"].trades
    assert result.arms["boost"].final_equity == result.arms["classic"].final_equity
    assert result.arms["replace"].trades == ()
    assert result.arms["filter"].trades == ()  # blocked while ML abstains (no fail_open)
    boost = result.differences["boost"]
    assert (boost.mean_bar_return.low, boost.mean_bar_return.high) == (0.0, 0.0)
    assert (boost.sharpe.estimate, boost.sharpe.low, boost.sharpe.high) == (0.0, 0.0, 0.0)


def test_every_filter_entry_is_a_classic_signal_of_the_same_side() -> None:
    """Checked from the records: each entry of the filter arm was decided on a bar where the
    classic strategy signalled that side and ML agreed (provenance ml_confirmed)."""
    result = compare(None, enhanced())
    entries = [
        (d, a)
        for d in result.arms["filter"].decisions
        for a in d.actions
        if isinstance(a, OpenPosition)
    ]
    assert len(entries) > 3
    for record, action in entries:
        assert record.trace.base is not None
        assert record.trace.ml is not None
        assert record.trace.base.direction == Direction(str(action.side))
        assert record.trace.ml.direction == Direction(str(action.side))
        assert str(record.trace.provenance) == "ml_confirmed"
    classic_bars = {d.open_ms for d in result.arms["classic"].decisions}
    boost_bases = {d.open_ms: d.trace.base for d in result.arms["boost"].decisions if d.trace.base}
    for record, _ in entries:  # where another arm also decided, it saw the same classic signal
        if record.open_ms in boost_bases:
            assert boost_bases[record.open_ms] == record.trace.base
    assert classic_bars


def test_the_classic_arm_does_not_change_when_only_the_predictions_do() -> None:
    """Other predictions change the ML arms, never the classic one (nor buy-and-hold)."""
    first = compare(None, enhanced())
    other = predictions(seed=99)
    other["timestamp"] = predictions()["timestamp"].to_numpy()[: len(other)]
    second = compare(other, enhanced())
    for name in ("classic", "buy_and_hold"):
        assert second.arms[name].trades == first.arms[name].trades
        assert np.array_equal(second.arms[name].equity.equity, first.arms[name].equity.equity)
    assert second.arms["ml_directional"].trades != first.arms["ml_directional"].trades


def test_the_bootstrap_interval_brackets_its_estimate_and_is_reproducible() -> None:
    """For every enhanced arm the 95 % intervals contain the point estimate; the same seed
    gives the same intervals."""
    a = compare(None, enhanced(ml_weight=0.5))
    b = compare(None, enhanced(ml_weight=0.5))
    for name, diff in a.differences.items():
        for part in (diff.mean_bar_return, diff.sharpe):
            assert part.low is not None
            assert part.high is not None
            assert part.estimate is not None
            assert part.low <= part.estimate <= part.high, name
        assert diff == b.differences[name]


def test_the_command_writes_every_output(tmp_path: Path) -> None:
    """`tbotd backtest --compare --config <ml_enhanced>`: compare.json (arms with the usual
    report keys, differences), trades/ and decisions/ per arm, compare.png; exit 0."""
    frame, preds, _ = random_scenario(4, 800, exits="sd", sure=0.5)
    candles = write_csv(frame, tmp_path / "candles.csv")
    preds.to_csv(tmp_path / "pred.csv", index=False)
    out = tmp_path / "out"
    code = main(
        [
            "backtest", "--compare", "--config", str(CONFIGS / "ml_enhanced_mean_reversion.toml"),
            "--data", str(candles), "--predictions", str(tmp_path / "pred.csv"),
            "--out", str(out), "--json", "--resamples", "200",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["complete"] is True
    assert list(report["arms"]) == list(ARMS)
    assert set(report["differences"]) == {
        "boost", "filter", "replace", "hybrid", "ml_momentum", "ml_mean_reversion",
    }  # fmt: skip
    assert report["differences"]["ml_momentum"]["versus"] == "ml_directional"
    for arm in report["arms"].values():
        assert {"total_return", "sharpe", "max_drawdown", "trades", "fees", "funding"} <= set(arm)
        assert arm["accounts"]["adds_up"] is True
    assert sorted(p.name for p in (out / "trades").iterdir()) == sorted(f"{a}.csv" for a in ARMS)
    assert sorted(p.name for p in (out / "decisions").iterdir()) == sorted(f"{a}.csv" for a in ARMS)
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("mean_bar_return", "sharpe"):
        assert set(report["differences"]["boost"][name]) == {"estimate", "ci95_low", "ci95_high"}


@pytest.mark.parametrize("config", ["ml_usdt_directional.toml", "classic_momentum.toml"])
def test_compare_needs_an_enhanced_config(
    tmp_path: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Comparing needs a classic strategy and an enhancement layer to compare: exit 2."""
    frame, preds, _ = random_scenario(4, 300, exits="sd")
    candles = write_csv(frame, tmp_path / "candles.csv")
    preds.to_csv(tmp_path / "pred.csv", index=False)
    code = main(
        [
            "backtest", "--compare", "--config", str(CONFIGS / config), "--data", str(candles),
            "--predictions", str(tmp_path / "pred.csv"),
        ]
    )  # fmt: skip
    assert code == 2
    assert 'strategy.kind = "ml_enhanced"' in capsys.readouterr().err


def test_with_a_risk_section_an_arm_runs_without_the_guard() -> None:
    """[risk] set: every strategy arm is guarded (the boost arm trips and trades less), one more
    arm runs the config's mode unguarded, and its difference is against the guarded arm."""
    data = enhanced().model_dump()
    data["risk"] = {"max_drawdown_pct": "1"}
    result = compare(None, Settings.model_validate(data))
    assert list(result.arms) == [*ARMS, "boost_no_guard"]
    guarded, free = result.arms["boost"], result.arms["boost_no_guard"]
    assert [c.kind for c in guarded.risk] == ["risk-trip"]
    assert free.risk == ()
    assert len(free.trades) > len(guarded.trades)
    assert free.strategy == "boost_no_guard"
    assert result.differences["boost_no_guard"].versus == "boost"
    assert result.arms["buy_and_hold"].risk == ()
