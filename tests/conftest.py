"""Shared fixtures: running the `tbotd` CLI as a user would, and one small trained model
directory per session (used by the ML, predictor and serving tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    import pandas as pd

# `pytest` (the README's command, and CI) is deterministic: the same examples every run and no
# examples database replaying an earlier run's finds, so a commit passes or fails for its own
# reasons. `python benchmarks/fuzz.py --minutes N` (HYPOTHESIS_PROFILE=fuzz) draws new examples
# from random seeds; what it finds is added to the test as an @example (a regression example).
# no deadline: a test asserts behaviour, not speed (benchmarks/ measure speed); an example
# that fsyncs on a loaded machine can take seconds
settings.register_profile(
    "default", derandomize=True, database=None, print_blob=True, deadline=None
)
settings.register_profile("fuzz", derandomize=False, database=None, print_blob=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def tbotd_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a tbotd subprocess: this checkout importable, no TBOTD_* leakage."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TBOTD_", "BASIS_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


RunTbotd = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_tbotd() -> RunTbotd:
    """Run `tbotd ARGS...` in a subprocess and return the completed process."""

    def run(
        *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tbotd", *args],
            capture_output=True,
            text=True,
            env=tbotd_env(env),
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(autouse=True)
def _no_tbotd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from a clean environment: no TBOTD_* or BASIS_* variables from the caller."""
    for name in list(os.environ):
        if name.startswith(("TBOTD_", "BASIS_")) or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


MODEL_BARS = 4_500


@pytest.fixture(scope="session")
def model_frame() -> pd.DataFrame:
    """The synthetic candles the session's model directory was trained on."""
    from tests.synthetic import random_walk

    return random_walk(MODEL_BARS, seed=21)


@pytest.fixture(scope="session")
def models_dir(model_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete model directory from `write_model_dir` (tiny: 1 fold, 1 epoch). Read-only:
    tests that damage it copy it first."""
    import torch

    from tbotd.ml.data import CandleData
    from tbotd.ml.labels import LabelSpec
    from tbotd.ml.output import write_model_dir
    from tbotd.ml.pipeline import TrainConfig
    from tbotd.ml.trainer import FitConfig

    out = tmp_path_factory.mktemp("models")
    cfg = TrainConfig(
        label=LabelSpec(horizon=3, regime_window=6), fit=FitConfig(epochs=1, seed=0), folds=1
    )
    write_model_dir(CandleData(model_frame, "synthetic", "5m", 0), cfg, torch.device("cpu"), out)
    return out
