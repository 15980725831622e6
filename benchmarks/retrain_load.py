"""A retrain running beside the daemon: `tbotd models retrain` rounds back to back.

    python benchmarks/retrain_load.py --dir DIR [--seconds 600] [--bars 30000] [--epochs 10]

Prepares once a database of ``--bars`` seeded random-walk candles, a live model and a config in
``DIR``, then runs `tbotd models retrain --config DIR/tbotd.toml` — exactly the worker the daemon
starts every ``ml.retrain.every_h`` (its own process, ``nice`` 10, one torch thread) — round after
round until ``--seconds`` have passed, printing each round's wall time. Run it beside
``latency_bench.py`` to see what a retrain does to decision latency (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SYMBOL = "BTC/USDT:USDT"

from tests.synthetic import to_candles  # noqa: E402 - after the path set-up


def candles(n: int, seed: int = 7) -> pd.DataFrame:
    """Seeded 5-minute random-walk candles (the content does not matter, the work does)."""
    rng = np.random.default_rng(seed)
    close = 20_000.0 * np.cumprod(1.0 + rng.normal(0.0, 0.003, n))
    open_ = np.concatenate([[20_000.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.001, (2, n)))
    return pd.DataFrame(
        {
            "open_time": 1_672_531_200_000 + 300_000 * np.arange(n, dtype=np.int64),
            "open": open_.round(2),
            "high": (np.maximum(open_, close) * (1 + wick[0])).round(2) + 0.01,
            "low": (np.minimum(open_, close) * (1 - wick[1])).round(2) - 0.01,
            "close": close.round(2),
            "volume": rng.lognormal(3.0, 1.0, n).round(4),
        }
    )


def prepare(root: Path, bars: int, epochs: int) -> Path:
    """Database, live model and config in ``root`` (kept: a second run reuses them)."""
    config = root / "tbotd.toml"
    if config.exists():
        return config
    import torch

    from tbotd.ml.data import CandleData
    from tbotd.ml.output import write_model_dir
    from tbotd.ml.pipeline import TrainConfig
    from tbotd.ml.trainer import FitConfig
    from tbotd.store import Store

    root.mkdir(parents=True, exist_ok=True)
    frame = candles(bars)
    store = Store.open(root / "tbotd.sqlite")
    try:
        store.record_candles(to_candles(frame, SYMBOL))
    finally:
        store.close()
    cfg = TrainConfig(fit=FitConfig(epochs=1), folds=1)
    write_model_dir(CandleData(frame, "bench", "5m", 0), cfg, torch.device("cpu"), root / "models")
    config.write_text(
        f'[exchange]\nmarket_type = "linear"\nsymbols = ["{SYMBOL}"]\n'
        '[strategy]\nmode = "ml_usdt_directional"\nshare_class = "USDT"\n'
        'initial_capital = "10000"\nthreshold = 0.6\n'
        f'[ml]\nmodels_dir = "{root / "models"}"\n'
        f"[ml.retrain]\nholdout_bars = 2016\nepochs = {epochs}\nfolds = 2\n"
        f'[store]\npath = "{root / "tbotd.sqlite"}"\n'
    )
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--bars", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    config = prepare(args.dir, args.bars, args.epochs)
    print("prepared", config, flush=True)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "tbotd", "models", "retrain", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=max(1.0, end - began + 600),
            check=False,
        )
        last = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1]
        print(f"round {time.monotonic() - began:.1f} s, exit {done.returncode}: {last}", flush=True)


if __name__ == "__main__":
    main()
