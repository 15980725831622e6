"""The local predictor loads only directories it can trust and predicts exactly what the
backtest path predicts, off the event loop, for all symbols in one batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tbotd.domain.enums import PredictionSource, Regime
from tbotd.domain.errors import ConfigError, FatalError
from tbotd.domain.market import Candle
from tbotd.features import WARMUP, bars_from_frame, latest_features
from tbotd.ml.device import resolve_device, source_for
from tbotd.ml.signals import SIGNALS
from tbotd.predictor.local import InsufficientHistoryError, LocalPredictor
from tests.synthetic import random_walk, to_candles


@pytest.fixture(scope="module")
def frame(model_frame: pd.DataFrame) -> pd.DataFrame:
    return model_frame


@pytest.fixture(scope="module")
def predictor(models_dir: Path) -> Iterator[LocalPredictor]:
    loaded = LocalPredictor.load(models_dir, device="cpu")
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def candles(frame: pd.DataFrame) -> list[Candle]:
    return to_candles(frame.iloc[-(WARMUP + 320) :].reset_index(drop=True))


async def test_prediction_is_for_the_candle_that_just_closed(
    predictor: LocalPredictor, candles: list[Candle]
) -> None:
    """timestamp = last candle's open time; source local-cpu; sd, regime and version set."""
    result = await predictor.predict({"BTC/USDT:USDT": candles})
    p = result["BTC/USDT:USDT"]
    assert p.timestamp == candles[-1].open_time
    assert p.source is PredictionSource.LOCAL_CPU
    assert p.model_version == predictor.model_version == predictor.manifest.model_version
    assert p.sd is not None
    assert 0 < p.sd < 1
    assert p.take_profit is None
    assert p.stop_loss is None
    assert p.regime is not None
    assert set(p.regime) == set(Regime)
    assert sum(p.regime.values()) == pytest.approx(1, abs=1e-5)
    p.check_for("BTC/USDT:USDT", candles[-1].open_time)


async def test_signal_and_confidence_follow_the_documented_rule(
    predictor: LocalPredictor, candles: list[Candle]
) -> None:
    """signal is the argmax class of the direction model and confidence its probability."""
    p = (await predictor.predict({"X": candles}))["X"]
    features = latest_features(bars_from_frame(pd.DataFrame(_rows(candles))))
    probs = predictor.predict_features(features).direction[0]
    assert p.signal is SIGNALS[int(np.argmax(probs))]
    assert p.confidence == float(probs.max())


def _rows(candles: list[Candle]) -> dict[str, list[float]]:
    return {
        "open_time": [c.open_time_ms for c in candles],
        **{
            k: [float(getattr(c, k)) for c in candles]
            for k in ("open", "high", "low", "close", "volume")
        },
    }


async def test_predict_equals_predict_history_bar_by_bar(
    predictor: LocalPredictor, candles: list[Candle]
) -> None:
    """The backtest path gives exactly what the live path says candle by candle (300 bars)."""
    history = predictor.predict_history(pd.DataFrame(_rows(candles)))
    assert not history["ready"].iloc[: predictor.required_history - 1].any()
    assert history["signal"].iloc[: predictor.required_history - 1].isna().all()
    for t in range(predictor.required_history - 1, len(candles)):
        p = (await predictor.predict({"S": candles[: t + 1]}))["S"]
        row = history.iloc[t]
        assert row["ready"]
        assert p.signal.value == row["signal"], t
        assert p.confidence == row["confidence"], t
        assert p.sd == row["sd"], t
        assert p.regime is not None
        assert p.regime[Regime.TREND_UP] == row["p_trend_up"], t
        assert p.regime[Regime.SIDEWAYS] == row["p_sideways"], t


def test_appending_candles_never_changes_past_predictions(
    predictor: LocalPredictor, frame: pd.DataFrame
) -> None:
    """Predictions for bars up to t are identical whether or not later bars exist."""
    cut = WARMUP + 200
    short = predictor.predict_history(frame.iloc[:cut])
    full = predictor.predict_history(frame).iloc[:cut]
    pd.testing.assert_frame_equal(short, full)


async def test_all_symbols_in_one_forward_pass_off_the_loop(
    predictor: LocalPredictor, candles: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three symbols → one batched model call, run on the predictor's executor thread."""
    calls: list[tuple[int, str]] = []
    original = predictor.predict_features

    def spy(features: np.ndarray) -> object:
        calls.append((len(features), threading.current_thread().name))
        return original(features)

    monkeypatch.setattr(predictor, "predict_features", spy)
    other = to_candles(random_walk(WARMUP + 5, seed=99))
    result = await predictor.predict({"A": candles, "B": candles[:-3], "C": other})
    assert set(result) == {"A", "B", "C"}
    assert result["B"].timestamp == candles[-4].open_time
    assert len(calls) == 1
    assert calls[0][0] == 3
    assert calls[0][1].startswith("tbotd-local-ml")
    assert calls[0][1] != threading.current_thread().name


async def test_short_or_gappy_history_is_a_named_error(
    predictor: LocalPredictor, candles: list[Candle]
) -> None:
    """Too few candles, or a gap among the needed ones, raises InsufficientHistoryError."""
    with pytest.raises(InsufficientHistoryError, match="SHORT"):
        await predictor.predict({"OK": candles, "SHORT": candles[-(WARMUP - 1) :]})
    gappy = candles[:-10] + candles[-9:]
    with pytest.raises(InsufficientHistoryError, match="not consecutive"):
        await predictor.predict({"GAP": gappy})


def test_feature_matrix_shape_is_checked(predictor: LocalPredictor) -> None:
    """predict_features refuses a matrix that is not [N, F]."""
    with pytest.raises(ValueError, match="features must be"):
        predictor.predict_features(np.zeros((2, 3)))


def test_device_auto_prefers_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto picks CUDA whenever torch sees one (source local-gpu), else the CPU (local-cpu)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    assert source_for(resolve_device("auto")) is PredictionSource.LOCAL_GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    assert source_for(resolve_device("auto")) is PredictionSource.LOCAL_CPU
    with pytest.raises(ConfigError, match="cuda"):
        resolve_device("cuda")


def test_load_errors_are_fatal_for_local_models_only(tmp_path: Path) -> None:
    """A missing directory is a ModelLoadError (FatalError) with the fix in the message."""
    from tbotd.predictor.local import ModelLoadError, ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="tbotd train") as info:
        LocalPredictor.load(tmp_path / "nothing-here", device="cpu")
    assert isinstance(info.value, ModelLoadError)
    assert isinstance(info.value, FatalError)


@pytest.mark.parametrize(("history_bars", "usable"), [(100, False), (1000, True)])
def test_history_shorter_than_the_models_warm_up_is_refused_at_start(
    models_dir: Path, history_bars: int, usable: bool
) -> None:
    """daemon.history_bars below the models' warm-up would make the local fallback fail every
    cycle: it is refused once at start with what to change (regression: every cycle silently
    fell through to neutral as "insufficient_history")."""
    from tbotd.config import Settings
    from tbotd.predictor.local import load_local_models

    settings = Settings.model_validate(
        {
            "exchange": {"market_type": "linear", "symbols": ["BTC/USDT:USDT"]},
            "strategy": {
                "mode": "ml_usdt_directional",
                "share_class": "USDT",
                "initial_capital": "10000",
                "threshold": 0.7,
            },
            "ml": {"models_dir": str(models_dir), "device": "cpu"},
            "daemon": {"history_bars": history_bars},
        }
    )
    models, failure = load_local_models(models_dir, settings)
    try:
        assert bool(models) is usable
        if not usable:
            assert failure is not None
            assert failure.reason == "history_too_short"
            assert "daemon.history_bars" in failure.detail
    finally:
        for model in models:
            model.close()
