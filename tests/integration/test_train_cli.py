"""`tbotd train` end to end: a generated CSV or store in, a loadable model directory and an
honest report out; bad input is refused with line numbers and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tbotd.ml.manifest import sha256_file
from tbotd.predictor.local import LocalPredictor
from tbotd.store import Store
from tests.conftest import CONFIGS, RunTbotd
from tests.synthetic import random_walk, to_candles, write_csv

pytestmark = pytest.mark.slow
SMALL = ("--epochs", "1", "--folds", "2", "--horizon", "3", "--regime-window", "6")
REPORT_KEYS = (
    ("direction", "hit_rate"),
    ("direction", "n_calls"),
    ("direction", "brier"),
    ("baselines", "always_long", "hit_rate"),
    ("baselines", "persistence", "hit_rate"),
    ("baselines", "contrarian", "hit_rate"),
    ("direction", "calibration", "calibrated", "max_gap_points"),
    ("direction", "calibration", "uncalibrated", "reliability"),
    ("baselines", "coin_flip", "hit_rate"),
    ("backtest", "total_return"),
    ("backtest", "sharpe"),
    ("backtest", "max_drawdown"),
    ("backtest", "fees"),
    ("train_seconds",),
)


def _get(tree: dict[str, object], path: tuple[str, ...]) -> object:
    node: object = tree
    for key in path:
        assert isinstance(node, dict), path
        assert key in node, path
        node = node[key]
    return node


def test_train_from_gzipped_csv_writes_a_complete_model_dir(
    run_tbotd: RunTbotd, tmp_path: Path
) -> None:
    """manifest, safetensors weights, report.json (required keys) and report.png are written."""
    csv = write_csv(random_walk(5_000, seed=31), tmp_path / "candles.csv.gz")
    out = tmp_path / "models"
    result = run_tbotd("train", "--data", str(csv), "--out", str(out), "--json", *SMALL)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    for name in ("manifest.json", "report.json", "report.png", "direction.safetensors"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    for path in REPORT_KEYS:
        _get(report, path)
    assert report["direction"]["n_calls"] > 0
    assert report["evaluation"]["purge_bars"] >= 6 + 576
    manifest = json.loads((out / "manifest.json").read_text())
    for name, entry in manifest["models"].items():
        assert sha256_file(out / entry["file"]) == entry["sha256"], name
    for key in ("features", "label", "training", "libraries", "metrics", "required_history"):
        assert key in manifest
    reference = manifest["drift_reference"]  # drift's yardstick: every input feature's deciles
    assert [f["name"] for f in reference["features"]] == manifest["features"]["names"]
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with LocalPredictor.load(out, device="cpu") as predictor:
        assert predictor.model_version == summary["model_version"]
        assert predictor.drift_summary()["available"]


def test_train_refuses_to_overwrite_without_force(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """An existing model directory is kept unless --force is given."""
    out = tmp_path / "models"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    csv = write_csv(random_walk(200, seed=1), tmp_path / "c.csv")
    result = run_tbotd("train", "--data", str(csv), "--out", str(out))
    assert result.returncode == 2
    assert "--force" in result.stderr


def test_bad_csv_rows_are_listed_by_line_with_exit_2(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """Broken rows are reported with their line numbers and nothing is trained."""
    frame = random_walk(50, seed=2)
    frame.loc[3, "high"] = frame.loc[3, "low"] - 1  # line 5
    frame.loc[6, "open_time"] = frame.loc[5, "open_time"]  # line 8: duplicate
    frame = frame.astype({"close": object})
    frame.loc[8, "close"] = "oops"  # line 10
    csv = write_csv(frame, tmp_path / "bad.csv")
    out = tmp_path / "models"
    result = run_tbotd("train", "--data", str(csv), "--out", str(out))
    assert result.returncode == 2
    assert "line 5: high is below low" in result.stderr
    assert "line 8: timestamp is not after the previous row's" in result.stderr
    assert "line 10: close is not a finite number" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "manifest.json").exists()


def test_wrong_header_is_bad_input(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """A CSV without the expected columns is refused with exit 2, naming the header."""
    csv = tmp_path / "x.csv"
    csv.write_text("time,price\n1,2\n")
    result = run_tbotd("train", "--data", str(csv), "--out", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "timestamp,open,high,low,close,volume" in result.stderr


def test_train_from_a_store(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """--db reads the candles table of a tbotd store for --symbol/--timeframe."""
    db = tmp_path / "tbotd.sqlite"
    store = Store.open(db)
    store.record_candles(to_candles(random_walk(4_200, seed=33), symbol="ETH/USDT:USDT"))
    store.close()
    out = tmp_path / "models"
    result = run_tbotd(
        "train", "--db", str(db), "--symbol", "ETH/USDT:USDT", "--out", str(out), "--json", *SMALL
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 4_200
    human = run_tbotd(
        "train", "--db", str(db), "--symbol", "ETH/USDT:USDT", "--out", str(out), "--force",
        "--config", str(CONFIGS / "ml_usdt_directional.toml"), *SMALL,
    )  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert "at confidence ≥ 0.7" in human.stdout  # the config's threshold: how often it acts
    assert "out-of-sample bars call" in human.stdout
    empty = run_tbotd("train", "--db", str(db), "--symbol", "NOPE", "--out", str(out), "--force")
    assert empty.returncode == 2
    assert "no 5m candles for NOPE" in empty.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_bad_input(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """--device cuda on a machine without CUDA exits 2 instead of silently using the CPU."""
    csv = write_csv(random_walk(200, seed=3), tmp_path / "c.csv")
    result = run_tbotd(
        "train", "--data", str(csv), "--out", str(tmp_path / "m"), "--device", "cuda"
    )
    assert result.returncode == 2
    assert "cuda" in result.stderr
