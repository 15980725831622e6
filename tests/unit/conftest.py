"""Fixtures shared by the ML unit tests: one small trained model directory per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from tbotd.ml.data import CandleData
from tbotd.ml.labels import LabelSpec
from tbotd.ml.output import write_model_dir
from tbotd.ml.pipeline import TrainConfig
from tbotd.ml.trainer import FitConfig
from tests.synthetic import random_walk

MODEL_BARS = 4_500


@pytest.fixture(scope="session")
def model_frame() -> pd.DataFrame:
    """The synthetic candles the session's model directory was trained on."""
    return random_walk(MODEL_BARS, seed=21)


@pytest.fixture(scope="session")
def models_dir(model_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete model directory from `write_model_dir` (tiny: 1 fold, 1 epoch). Read-only:
    tests that damage it copy it first."""
    out = tmp_path_factory.mktemp("models")
    cfg = TrainConfig(
        label=LabelSpec(horizon=3, regime_window=6), fit=FitConfig(epochs=1, seed=0), folds=1
    )
    write_model_dir(CandleData(model_frame, "synthetic", "5m", 0), cfg, torch.device("cpu"), out)
    return out
