"""`tbotd backtest --models DIR`: the local models' predictions, exactly as the daemon gets them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tbotd.backtest import PredictionTable
from tbotd.cli import main
from tbotd.features import WARMUP
from tbotd.predictor.local import LocalPredictor
from tests.conftest import CONFIGS
from tests.synthetic import random_walk, to_candles, write_csv

BARS = WARMUP + 700


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Candles the models never saw."""
    return random_walk(BARS, seed=77, start_ms=1_709_510_400_000)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The USDT config with a threshold the tiny test model reaches."""
    path = tmp_path / "low.toml"
    text = (CONFIGS / "ml_usdt_directional.toml").read_text()
    path.write_text(text.replace("threshold = 0.70", "threshold = 0.36"))
    return path


async def test_model_rows_are_what_the_daemon_predicts_candle_by_candle(
    models_dir: Path, frame: pd.DataFrame
) -> None:
    """For sampled bars, the Prediction the backtest hands the manager equals the one the live
    path (`await predict(history)`) makes after that candle closed."""
    with LocalPredictor.load(models_dir, device="cpu") as predictor:
        table = PredictionTable.from_history(
            predictor.predict_history(frame),
            frame["open_time"].to_numpy(),
            predictor.source,
            predictor.model_version,
        )
        candles = to_candles(frame)
        assert len(table) == BARS - predictor.required_history + 1
        for k in (0, 1, 350, len(table) - 1):
            i = int(np.searchsorted(frame["open_time"].to_numpy(), table.time_ms[k]))
            live = await predictor.predict({"BTC/USDT:USDT": candles[: i + 1]})
            assert table.prediction(k, "BTC/USDT:USDT") == live["BTC/USDT:USDT"]


def test_models_and_their_predictions_csv_give_the_same_backtest(
    tmp_path: Path,
    models_dir: Path,
    frame: pd.DataFrame,
    config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--models writes every output; the same predictions written to CSV trade identically."""
    data = write_csv(frame, tmp_path / "candles.csv")
    common = ["backtest", "--config", str(config), "--data", str(data), "--json"]
    assert main([*common, "--models", str(models_dir), "--out", str(tmp_path / "m")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["inputs"]["models"] == str(models_dir)
    assert report["predictions"]["bars_without_prediction"] == WARMUP - 1
    assert report["trades"] > 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "decisions.csv",
        "equity.csv",
        "equity.png",
        "report.json",
        "trades.csv",
    ]
    with LocalPredictor.load(models_dir, device="cpu") as predictor:
        history = predictor.predict_history(frame)
    ready = history["ready"].to_numpy(dtype=bool)
    pd.DataFrame(
        {
            "timestamp": frame["open_time"][ready],
            "signal": history["signal"][ready],
            "confidence": [repr(float(x)) for x in history["confidence"][ready]],
            "sd": [repr(float(x)) for x in history["sd"][ready]],
        }
    ).to_csv(tmp_path / "pred.csv", index=False)
    assert (
        main([*common, "--predictions", str(tmp_path / "pred.csv"), "--out", str(tmp_path / "p")])
        == 0
    )
    assert (tmp_path / "p" / "trades.csv").read_text() == (
        tmp_path / "m" / "trades.csv"
    ).read_text()
    assert (tmp_path / "p" / "equity.csv").read_text() == (
        tmp_path / "m" / "equity.csv"
    ).read_text()
