"""The meta-label model end to end: `tbotd train --meta-label`, its checked files, the gate in
the daemon's session and the backtest (the same numbers), vetoes removing trades, and the
meta-label arm of `tbotd backtest --compare`."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tbotd.backtest import run_backtest
from tbotd.backtest.compare import ARMS, run_compare
from tbotd.backtest.predictions import ml_inputs, with_meta
from tbotd.backtest.run import Inputs, candle_arrays, prediction_rows
from tbotd.cli import main
from tbotd.config.settings import Settings
from tbotd.domain.actions import Reason
from tbotd.domain.markets import BTCUSDT_PERP
from tbotd.domain.notices import EventRecord, Severity
from tbotd.features import WARMUP
from tbotd.ml.errors import ModelLoadError
from tbotd.ml.meta.model import META_WEIGHTS, load_meta
from tbotd.ml.meta.scorer import MetaModelScorer
from tbotd.notify.classify import notice_for
from tbotd.store import Store
from tbotd.strategy.build import build_strategy
from tbotd.strategy.meta_label import meta_gate
from tbotd.strategy.rules import DecisionInput
from tbotd.strategy.signal import ABSTAIN, BIT, FLAT, LONG, SHORT, Opinions
from tests.conftest import CONFIGS
from tests.synthetic import random_walk, to_candles, write_csv
from tests.unit.backtest_support import MEAN_REVERSION, random_scenario, settings
from tests.unit.cycle_support import daemon_cycles


@pytest.fixture(scope="module")
def meta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A meta-label model of the shipped mean reversion, trained on a generated random walk."""
    tmp = tmp_path_factory.mktemp("meta")
    data = write_csv(random_walk(12_000, seed=3), tmp / "candles.csv")
    out = tmp / "meta"
    args = ["train", "--meta-label", "--config", str(CONFIGS / "classic_mean_reversion.toml")]
    assert main([*args, "--data", str(data), "--out", str(out), "--folds", "2", "--json"]) == 0
    return out


def gated(meta_dir: Path, threshold: float | None, secondary: str = "meta_label") -> Settings:
    """The tests' busy mean reversion with the meta-label gate over it."""
    table: dict[str, Any] = {"models_dir": str(meta_dir)}
    if threshold is not None:
        table["threshold"] = threshold
    return settings(
        strategy={
            "kind": "ml_enhanced",
            "classic": MEAN_REVERSION,
            "enhance": {"mode": "boost", "secondary_model": secondary},
            "meta_label": table,
            "threshold": 0.5,
        }
    )


def test_train_writes_a_checked_model_and_an_honest_report(meta_dir: Path) -> None:
    """The directory holds weights, manifest and report; the report sets the model's precision
    and coverage at its threshold (the barriers' break-even) beside the base rate, Brier beside
    climatology, and the after-fee result of confirmed against all signals."""
    assert sorted(p.name for p in meta_dir.iterdir()) == [
        "meta_label.json",
        "meta_label.safetensors",
        "meta_label_report.json",
    ]
    report = json.loads((meta_dir / "meta_label_report.json").read_text())
    assert report["strategy"] == "mean_reversion"
    assert report["threshold"] == pytest.approx(report["barriers"]["break_even_long"])
    assert 0 < report["base_rate"] < 1
    assert report["oos_signals"] > 50
    at = report["at_threshold"]
    assert 0 <= at["coverage"] <= 1
    assert at["confirmed"] >= 0
    assert report["brier"] > 0
    assert report["brier_climatology"] > 0
    assert report["all_signals"]["mean_return"] is not None
    loaded = load_meta(meta_dir, torch.device("cpu"))
    assert loaded.threshold == report["threshold"]


def test_a_changed_weights_file_or_missing_manifest_is_refused(
    meta_dir: Path, tmp_path: Path
) -> None:
    """A weights file that differs from its sha256 never loads; the scorer then answers NaN,
    which the gate reads as not confirmed."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in meta_dir.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    blob = bytearray((copy / META_WEIGHTS).read_bytes())
    blob[-1] ^= 1
    (copy / META_WEIGHTS).write_bytes(bytes(blob))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_meta(copy, torch.device("cpu"))
    scorer = MetaModelScorer(copy)
    assert np.isnan(scorer.latest(to_candles(random_walk(WARMUP + 5, seed=1)))).all()
    assert scorer.error is not None
    with pytest.raises(ModelLoadError, match="missing"):
        load_meta(tmp_path, torch.device("cpu"))


def test_the_gate_confirms_vetoes_and_refuses_without_an_answer() -> None:
    """Long setups read column 0, shorts column 1; below the threshold or NaN: abstain with the
    reason; flat and abstaining bars pass untouched."""
    base = Opinions(
        np.array([LONG, SHORT, LONG, SHORT, FLAT, ABSTAIN], np.int8),
        np.array([0.6, 0.7, 0.8, 0.9, 1.0, 0.0]),
        np.zeros(6, np.int64),
    )
    meta = np.array([[0.5, 0.1], [0.1, 0.5], [0.2, 0.9], [np.nan, np.nan], [0, 0], [0, 0]])
    out = meta_gate(base, meta, 0.4)
    assert out.direction.tolist() == [LONG, SHORT, ABSTAIN, ABSTAIN, FLAT, ABSTAIN]
    assert out.confidence.tolist() == [0.6, 0.7, 0.0, 0.0, 1.0, 0.0]
    assert out.reasons.tolist() == [
        BIT[Reason.META_CONFIRMED],
        BIT[Reason.META_CONFIRMED],
        BIT[Reason.META_VETOED],
        BIT[Reason.META_MISSING],
        0,
        0,
    ]


def test_the_daemon_asks_the_model_the_backtest_asks(meta_dir: Path) -> None:
    """Per closed candle (the session, streamed indicators and `latest`) and per bar at once (the
    backtest, `batch`) give bit-identical meta answers and the same gated signal."""
    frame = random_walk(WARMUP + 900, seed=11)
    bars = candle_arrays(frame, "5m")
    strategy = build_strategy(gated(meta_dir, 0.2))
    ml = with_meta([strategy], ml_inputs(None, np.full(len(bars), -1)), bars)
    assert ml.meta is not None
    assert np.isfinite(ml.meta[WARMUP:]).all()
    series = strategy.series(bars.high, bars.low, bars.close, ml)
    candles = to_candles(frame)
    session = strategy.session()
    scorer = strategy.meta.scorer  # type: ignore[union-attr]
    setups = 0
    for i in range(WARMUP, len(frame), 3):
        assert np.array_equal(scorer.latest(candles[: i + 1])[0], ml.meta[i])
        inp = DecisionInput("BTC/USDT:USDT", None, None, Decimal(10_000), Decimal(1), BTCUSDT_PERP)
        live = session.signal(inp, candles[: i + 1])
        assert live.result.at(0) == series.result.at(i)
        setups += series.base is not None and series.base.direction[i] in (LONG, SHORT)
    assert setups > 5


def test_a_veto_removes_trades_in_the_backtest(meta_dir: Path) -> None:
    """A gate nothing passes makes no trade where the classic strategy trades; a gate
    everything passes trades exactly as the classic signal does."""
    frame = random_walk(WARMUP + 2500, seed=21, vol=0.004)
    plain = settings(
        strategy={
            "kind": "ml_enhanced",
            "classic": MEAN_REVERSION,
            "enhance": {"mode": "boost"},
            "threshold": 0.5,
        }
    )
    base = run_backtest(frame, None, plain, warmup_bars=WARMUP)
    assert len(base.trades) > 3
    assert len(run_backtest(frame, None, gated(meta_dir, 0.999), warmup_bars=WARMUP).trades) == 0
    everything = run_backtest(frame, None, gated(meta_dir, 1e-9), warmup_bars=WARMUP)
    assert [t.entry_price for t in everything.trades] == [t.entry_price for t in base.trades]
    some = run_backtest(frame, None, gated(meta_dir, None), warmup_bars=WARMUP)
    assert len(some.trades) <= len(base.trades)


def test_compare_runs_the_meta_label_arm_against_classic(meta_dir: Path) -> None:
    """With [strategy.meta_label] models_dir, --compare adds `meta_label` (the classic strategy
    under the gate alone) with its bootstrap difference to `classic`; without it, no such arm."""
    frame = random_walk(WARMUP + 1500, seed=4, vol=0.004)
    bars = candle_arrays(frame, "5m")
    inputs = Inputs(bars, None, prediction_rows(None, bars, 0), BTCUSDT_PERP, {})
    result = run_compare(inputs, gated(meta_dir, None, "none"), resamples=50, warmup_bars=WARMUP)
    assert list(result.arms) == [*ARMS[:-1], "meta_label", "buy_and_hold"]
    assert result.differences["meta_label"].versus == "classic"
    assert result.arms["meta_label"].trades is not None
    assert len(result.arms["meta_label"].trades) <= len(result.arms["classic"].trades)
    plain = {"kind": "ml_enhanced", "classic": MEAN_REVERSION, "enhance": {"mode": "boost"}}
    assert "meta_label" not in run_compare(inputs, settings(strategy=plain), resamples=20).arms


def test_a_meta_label_secondary_model_needs_its_directory() -> None:
    """check-config refuses secondary_model = "meta_label" without [strategy.meta_label]
    models_dir (naming the table)."""
    with pytest.raises(ValueError, match=r"strategy.meta_label\] models_dir"):
        settings(
            strategy={
                "kind": "ml_enhanced",
                "classic": MEAN_REVERSION,
                "enhance": {"mode": "filter", "secondary_model": "meta_label"},
            }
        )


def test_check_config_refuses_a_meta_label_model_that_would_not_load(
    meta_dir: Path, tmp_path: Path
) -> None:
    """A damaged meta model would veto every setup silently: check-config names it instead."""
    from tbotd.commands.check_config import runtime_problems

    assert runtime_problems(gated(meta_dir, None)) == []
    broken = tmp_path / "broken"
    shutil.copytree(meta_dir, broken)
    (broken / "meta_label.safetensors").write_bytes(b"not the weights")
    ((key, why),) = runtime_problems(gated(broken, None))
    assert key == "strategy.meta_label.models_dir"
    assert "meta_label" in why


async def test_an_unusable_meta_label_model_is_said_once_not_silently(tmp_path: Path) -> None:
    """A meta-label directory that does not load vetoes every setup; the daemon records one
    ``meta-label-unusable`` event naming why (the notifier warns), however many cycles run."""
    broken = tmp_path / "meta"
    broken.mkdir()
    frame, _preds, funding = random_scenario(3, 300)
    db = tmp_path / "d.db"
    symbol = BTCUSDT_PERP.symbol
    config = gated(broken, 0.5)
    trades, _, _ = await daemon_cycles(
        {symbol: frame}, {}, config, {symbol: BTCUSDT_PERP}, {symbol: funding}, db
    )
    assert trades == []  # every setup vetoed
    store = Store.open(db)
    events = store.query("SELECT * FROM events WHERE kind = 'meta-label-unusable'")
    vetoed = store.query("SELECT COUNT(*) AS n FROM decisions WHERE base LIKE '%meta_missing%'")
    store.close()
    assert len(events) == 1
    assert str(broken) in events[0]["message"]
    assert vetoed[0]["n"] > 0
    record = EventRecord(datetime.now(UTC), "meta-label-unusable", events[0]["message"])
    notice = notice_for(record)
    assert notice is not None
    assert notice.severity is Severity.WARNING
