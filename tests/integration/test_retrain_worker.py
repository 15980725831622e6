"""`tbotd models retrain` end to end: a challenger trained from the database's candles is
promoted only when it beats the live model on the held-out bars, atomically, and can be rolled
back; a worker killed mid-round leaves a live model that loads."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from tbotd.ml.data import CandleData
from tbotd.ml.labels import LabelSpec
from tbotd.ml.manifest import sha256_file
from tbotd.ml.output import write_model_dir
from tbotd.ml.pipeline import TrainConfig
from tbotd.ml.trainer import FitConfig
from tbotd.ml.versions import KILL_ENV, Layout
from tbotd.predictor.local import LocalPredictor
from tbotd.store import Store
from tests.conftest import RunTbotd
from tests.retrain_support import (
    SYMBOL,
    copy_model,
    momentum_walk,
    retrain_config,
    then,
)
from tests.synthetic import random_walk, to_candles

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def momentum_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on momentum candles: it knows that a move tends to continue."""
    out = tmp_path_factory.mktemp("momentum") / "model"
    cfg = TrainConfig(
        label=LabelSpec(horizon=3, regime_window=6), fit=FitConfig(epochs=1, seed=0), folds=1
    )
    write_model_dir(
        CandleData(momentum_walk(5_000, seed=1), "momentum", "5m", 0),
        cfg,
        torch.device("cpu"),
        out,
    )
    return out


def _store(tmp_path: Path, frame: Any) -> None:
    store = Store.open(tmp_path / "tbotd.sqlite")
    try:
        store.record_candles(to_candles(frame, symbol=SYMBOL))
    finally:
        store.close()


def _events(tmp_path: Path) -> list[dict[str, Any]]:
    store = Store.open(tmp_path / "tbotd.sqlite")
    try:
        rows = store.query("SELECT kind, data FROM events WHERE kind LIKE 'retrain-%' ORDER BY id")
    finally:
        store.close()
    return [{"kind": r["kind"], **json.loads(r["data"] or "{}")} for r in rows]


def _version(path: Path) -> str:
    with LocalPredictor.load(path, "cpu") as model:
        return model.model_version


def _hashes(path: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(path.iterdir()) if p.is_file()}


def test_a_worse_challenger_is_not_promoted_and_the_live_model_is_untouched(
    tmp_path: Path, momentum_model: Path, run_tbotd: RunTbotd
) -> None:
    """Live: the momentum model. The stored candles are a random walk, then momentum in the
    held-out window: the challenger (trained on the random walk) loses and is deleted."""
    live = copy_model(momentum_model, tmp_path / "models")
    before, version = _hashes(live), _version(live)
    _store(tmp_path, then(random_walk(4_500, seed=5), momentum_walk(1_500, seed=2)))
    done = run_tbotd("models", "retrain", "--config", str(retrain_config(tmp_path, live)))
    assert done.returncode == 0, done.stderr
    events = _events(tmp_path)
    kinds = [e["kind"] for e in events]
    assert kinds == ["retrain-started", "retrain-trained", "retrain-evaluated", "retrain-kept"]
    scores = events[2]
    assert scores["champion"]["log_loss"] < scores["challenger"]["log_loss"]
    assert scores["champion"]["n"] == scores["challenger"]["n"] >= 300
    assert _version(live) == version
    assert _hashes(live) == before
    assert [p.name for p in Layout(live).versions.iterdir() if p.is_dir()] == [
        Layout(live).live_name()
    ]  # the challenger is gone; only the adopted live version is there


def test_a_better_challenger_is_promoted_atomically_and_rollback_restores_the_old_one(
    tmp_path: Path, models_dir: Path, run_tbotd: RunTbotd
) -> None:
    """Live: a model of a random walk. Momentum candles train a better challenger: it becomes
    the live link's target, the old one is kept as previous, and `rollback` brings it back."""
    live = copy_model(models_dir, tmp_path / "models")
    old = _version(live)
    _store(tmp_path, momentum_walk(6_000, seed=3))
    config = retrain_config(tmp_path, live)
    done = run_tbotd("models", "retrain", "--config", str(config))
    assert done.returncode == 0, done.stderr
    events = _events(tmp_path)
    assert [e["kind"] for e in events][-1] == "retrain-promoted"
    evaluated = events[2]
    assert evaluated["challenger"]["log_loss"] < evaluated["champion"]["log_loss"] - 0.002
    new = _version(live)
    assert new == events[-1]["to"] != old
    assert live.is_symlink()
    assert _version(Layout(live).previous) == old
    assert run_tbotd("models", "rollback", "--config", str(config)).returncode == 0
    assert _version(live) == old


@pytest.mark.parametrize("step", ["trained", "swap-previous", "swap-live"])
def test_a_worker_killed_mid_round_leaves_a_live_model_that_loads(
    tmp_path: Path, models_dir: Path, run_tbotd: RunTbotd, step: str
) -> None:
    """SIGKILL after training, between the two links and after the live one: after `recover`
    the live directory loads and is the old or the promoted model."""
    live = copy_model(models_dir, tmp_path / "models")
    old = _version(live)
    _store(tmp_path, momentum_walk(5_000, seed=4))
    config = retrain_config(tmp_path, live, holdout_bars=1_000)
    done = run_tbotd("models", "retrain", "--config", str(config), env={KILL_ENV: step})
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert run_tbotd("models", "recover", "--config", str(config)).returncode == 0
    assert _version(live) in {old, *_challengers(live)}
    assert not Layout(live).journal.exists()


def _challengers(live: Path) -> list[str]:
    """The model versions of the complete challengers (a killed one may be any of them)."""
    return [
        _version(p)
        for p in Layout(live).versions.iterdir()
        if "challenger" in p.name and (p / "manifest.json").is_file()
    ]
