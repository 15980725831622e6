"""Shared by the retrain tests: model versions made from the session's tiny model, candles with
and without a signal, and a config naming a models directory and a database."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tbotd.ml.manifest import MANIFEST_NAME, write_json_atomic
from tbotd.ml.versions import KILL_ENV, Layout
from tests.conftest import tbotd_env
from tests.synthetic import START_MS, STEP_MS, random_walk

SYMBOL = "BTC/USDT:USDT"
REPO = Path(__file__).resolve().parents[1]
# adopt the live directory as version "old", then switch to version "new" (the chaos tests
# run it with CHAOS_TBOTD_KILL_AT naming the step to die at)
SWITCH = """
import sys
from pathlib import Path
from tbotd.ml import versions
live = Path(sys.argv[1])
versions.adopt(live, "old")
versions.switch(live, "new")
"""


def copy_model(
    source: Path, to: Path, version: str | None = None, *, any_market: bool = False
) -> Path:
    """A copy of the model directory ``source``; with ``version``, its manifest says so (the
    weights stay the same, so it loads and its predictions carry the new version);
    ``any_market``: without the drift reference (as an older model), so it answers candles of
    another volatility instead of abstaining as out of distribution."""
    shutil.copytree(source, to)
    manifest = json.loads((to / MANIFEST_NAME).read_text())
    if version is not None:
        manifest["model_version"] = version
    if any_market:
        manifest.pop("drift_reference", None)
    write_json_atomic(to / MANIFEST_NAME, manifest)
    return to


def add_version(live: Path, source: Path, name: str, *, any_market: bool = False) -> str:
    """Put a copy of ``source`` beside the live version as ``name`` (its model_version too)."""
    copy_model(source, Layout(live).version(name), version=name, any_market=any_market)
    return name


def momentum_walk(n: int, seed: int, start_ms: int = START_MS, phi: float = 0.6) -> pd.DataFrame:
    """Candles whose 5-minute returns follow an AR(1) with coefficient ``phi``: a move tends to
    continue, so the next bars' direction can be learned (a random walk's cannot)."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.002, n)
    returns = np.empty(n)
    previous = 0.0
    for i, shock in enumerate(shocks):
        previous = phi * previous + shock
        returns[i] = previous
    frame = random_walk(n, seed, start_ms=start_ms)
    close = 20_000.0 * np.cumprod(1.0 + returns)
    open_ = np.concatenate([[20_000.0], close[:-1]])
    frame["open"], frame["close"] = open_.round(2), close.round(2)
    wick = np.abs(rng.normal(0.0, 0.0005, (2, n)))
    frame["high"] = (np.maximum(open_, close) * (1 + wick[0])).round(2)
    frame["low"] = (np.minimum(open_, close) * (1 - wick[1])).round(2)
    frame["high"] = np.maximum(frame["high"], frame[["open", "close"]].max(axis=1))
    frame["low"] = np.minimum(frame["low"], frame[["open", "close"]].min(axis=1))
    return frame


def then(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """``second`` continuing ``first`` in time (its prices scaled to start at first's last)."""
    second = second.copy()
    scale = float(first["close"].iloc[-1]) / float(second["open"].iloc[0])
    for name in ("open", "high", "low", "close"):
        second[name] = (second[name] * scale).round(2)
    second["open_time"] = int(first["open_time"].iloc[-1]) + STEP_MS * (
        1 + np.arange(len(second), dtype=np.int64)
    )
    return pd.concat([first, second], ignore_index=True)


def retrain_config(tmp_path: Path, live: Path, **retrain: object) -> Path:
    """A paper config whose ``[ml.retrain]`` is tiny (1 fold, 1 epoch) unless overridden."""
    table = {"holdout_bars": 1_500, "min_scored": 300, "epochs": 1, "folds": 1} | retrain
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    path = tmp_path / "tbotd.toml"
    path.write_text(
        f'[exchange]\nmarket_type = "linear"\nsymbols = ["{SYMBOL}"]\n'
        '[strategy]\nmode = "ml_usdt_directional"\nshare_class = "USDT"\n'
        'initial_capital = "10000"\nthreshold = 0.6\n'
        f'[ml]\nmodels_dir = "{live}"\n'
        f"[ml.retrain]\n{lines}"
        f'[store]\npath = "{tmp_path / "tbotd.sqlite"}"\n'
    )
    return path


def killed_switch(live: Path, step: str) -> subprocess.CompletedProcess[bytes]:
    """Run :data:`SWITCH` on ``live`` in a child process told to SIGKILL itself at ``step``."""
    return subprocess.run(
        [sys.executable, "-c", SWITCH, str(live)],
        env=tbotd_env({KILL_ENV: step, "PYTHONPATH": str(REPO)}),
        check=False,
        capture_output=True,
    )
