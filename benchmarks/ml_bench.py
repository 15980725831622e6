"""Local ML benchmark: training time on a year of 5-minute bars and inference latency per cycle.

    /work/venv/bin/python benchmarks/ml_bench.py [--json] [--data CSV] [--cycles N]

* Training: the full `tbotd train` pipeline (features, 4 walk-forward folds, final fit — all
  three models) on the newest 105,120 bars (one year of 5-minute bars) of the real Binance
  BTC/USDT perp CSV when ``../shared/data`` is present, else a seeded random walk of the same
  length (the output says which). Also the final fit alone.
* Inference, per cycle, for 1 and 50 symbols: ``predict_features`` (the model call on a ready
  feature matrix) and the whole ``await predict(histories)`` (Decimal candles → float arrays,
  incremental features, batched forward, Prediction objects, executor hop), each cycle appending
  one new candle per symbol as in live use. p50/p99 in milliseconds.
* Everything on the CPU, and again on CUDA when ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tbotd.marketdata.candle_csv import read_candle_csv  # noqa: E402
from tbotd.ml.data import CandleData  # noqa: E402
from tbotd.ml.output import write_model_dir  # noqa: E402
from tbotd.ml.pipeline import TrainConfig, train  # noqa: E402
from tbotd.predictor.local import LocalPredictor  # noqa: E402
from tests.synthetic import random_walk, to_candles  # noqa: E402

YEAR = 105_120
CSV_NAME = "binance_BTCUSDT_5m_2023-01-01_2024-05-14.csv.gz"


def find_csv(explicit: str | None) -> Path | None:
    """The real candles: --data, else ../shared/data beside the repository, else /work/shared."""
    if explicit:
        return Path(explicit)
    for base in (REPO.parent, REPO.parent.parent, Path("/work")):
        path = base / "shared" / "data" / CSV_NAME
        if path.is_file():
            return path
    return None


def load_year(explicit: str | None) -> tuple[CandleData, str]:
    path = find_csv(explicit)
    if path is None:
        frame = random_walk(YEAR, seed=0)
        return CandleData(frame, "synthetic", "5m", 0), "seeded random walk (no real CSV found)"
    data = read_candle_csv(path)
    frame = data.frame.tail(YEAR).reset_index(drop=True)
    return CandleData(frame, str(path), data.timeframe, 0), f"{path.name}, newest {len(frame)} bars"


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[max(math.ceil(0.99 * len(ms)) - 1, 0)],  # nearest-rank
        "n": len(ms),
    }


def bench_training(data: CandleData, device: torch.device) -> dict[str, Any]:
    cfg = TrainConfig(timeframe=data.timeframe)
    started = time.perf_counter()
    run = train(data.frame, cfg, device)
    total = time.perf_counter() - started
    return {
        "rows": len(data.frame),
        "total_s": total,
        "features_s": run.seconds["features"],
        "walk_forward_s": run.seconds["walk_forward"],
        "final_fit_s": run.seconds["final_fit"],
        "folds": len(run.folds),
        "epochs_run": run.final.best_epochs,
    }


async def bench_inference(
    predictor: LocalPredictor, data: CandleData, cycles: int
) -> dict[str, Any]:
    need = predictor.required_history
    features = np.random.default_rng(0).normal(size=(50, len(predictor.manifest.features.names)))
    out: dict[str, Any] = {}
    for symbols in (1, 50):
        x = features[:symbols]
        predictor.predict_features(x)
        samples = []
        for _ in range(cycles * 5):
            t0 = time.perf_counter()
            predictor.predict_features(x)
            samples.append(time.perf_counter() - t0)
        out[f"model_call_{symbols}"] = percentiles(samples)
        histories = {}
        for s in range(symbols):
            start = 1_000 + s * 997
            window = data.frame.iloc[start : start + need + cycles].reset_index(drop=True)
            histories[f"SYM{s}"] = to_candles(window)
        await predictor.predict({k: v[:need] for k, v in histories.items()})  # warm the cache
        samples = []
        for i in range(1, cycles):
            cycle = {k: v[: need + i] for k, v in histories.items()}
            t0 = time.perf_counter()
            await predictor.predict(cycle)
            samples.append(time.perf_counter() - t0)
        out[f"predict_{symbols}"] = percentiles(samples)
    started = time.perf_counter()
    predictor.predict_history(data.frame)
    out["predict_history_year_s"] = time.perf_counter() - started
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--data", help="candle CSV (default: ../shared/data when present)")
    parser.add_argument("--cycles", type=int, default=300, help="cycles per latency figure")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    data, described = load_year(args.data)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    result: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "data": described,
    }
    for device in devices:
        torch.set_num_threads(os.cpu_count() or 1)
        training = bench_training(data, device)
        with tempfile.TemporaryDirectory() as tmp:
            small = CandleData(data.frame.tail(30_000).reset_index(drop=True), "bench", "5m", 0)
            write_model_dir(small, TrainConfig(), device, Path(tmp))
            with LocalPredictor.load(tmp, device=device.type) as predictor:
                inference = asyncio.run(bench_inference(predictor, data, args.cycles))
                inference["threads"] = torch.get_num_threads()
        result[device.type] = {"training": training, "inference": inference}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"data: {described}")
        for device in devices:
            r = result[device.type]
            t, inf = r["training"], r["inference"]
            print(
                f"[{device.type}] train all 3 models on {t['rows']} bars: {t['total_s']:.1f} s "
                f"(features {t['features_s']:.2f} s, walk-forward {t['walk_forward_s']:.1f} s, "
                f"final fit {t['final_fit_s']:.1f} s)"
            )
            for key in ("model_call_1", "model_call_50", "predict_1", "predict_50"):
                p = inf[key]
                print(
                    f"[{device.type}] {key:14} p50 {p['p50_ms']:.3f} ms  p99 {p['p99_ms']:.3f} ms"
                )
            print(
                f"[{device.type}] predict_history on a year: {inf['predict_history_year_s']:.2f} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
