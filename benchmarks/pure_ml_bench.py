"""Pure ML kinds benchmark (issue 17): what consensus and the pure ML kinds add per cycle.

    .venv/bin/python benchmarks/pure_ml_bench.py [--json] [--cycles N]

No data needed: a seeded random walk and seeded per-model answers (every prediction carries the
direction, price and regime models' answers, as the local models' do). It measures, in the
daemon's path, ``Session.decide`` per symbol and cycle (one prediction, arrays of length 1: the
answers read from the Prediction, consensus, the regime gate, the position rules) for
``ml_directional`` (the baseline: the same prediction, no consensus) and for the two pure ML
kinds; the difference is what they add (the issue's budget: ≤ 0.5 ms). It also times consensus
alone on one bar, and the backtest's path: a year of bars (105,120) through
``Strategy.series`` for each kind.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tbotd.domain import Prediction  # noqa: E402
from tbotd.domain.markets import BTCUSDT_PERP  # noqa: E402
from tbotd.strategy.build import build_strategy  # noqa: E402
from tbotd.strategy.consensus import ConsensusParams, consensus  # noqa: E402
from tbotd.strategy.ml_opinion import MLInputs  # noqa: E402
from tbotd.strategy.model_inputs import ModelArrays  # noqa: E402
from tbotd.strategy.rules import DecisionInput  # noqa: E402
from tbotd.strategy.signal import ExitHints  # noqa: E402
from tests.unit.backtest_support import settings  # noqa: E402

YEAR = 105_120
KINDS = {
    "ml_directional": {"threshold": 0.5},
    "ml_momentum": {"kind": "ml_momentum", "threshold": 0.5},
    "ml_mean_reversion": {"kind": "ml_mean_reversion", "threshold": 0.7},
}
T0 = datetime(2024, 3, 4, tzinfo=UTC)


def answers(rng: np.random.Generator, n: int) -> tuple[Any, Any, Any, Any]:
    """Seeded model outputs: direction and regime probabilities, expected return, sd."""
    direction = rng.dirichlet([1.0, 1.0, 1.0], n)
    regime = rng.dirichlet([1.0, 1.0, 1.0], n)
    return direction, rng.normal(0, 0.003, n), rng.uniform(0.001, 0.01, n), regime


def predictions(n: int) -> list[Prediction]:
    """``n`` schema-2 predictions with all three models' answers."""
    direction, ret, sd, regime = answers(np.random.default_rng(0), n)
    out = []
    for i in range(n):
        d = [float(x) for x in direction[i]]
        cls = int(np.argmax(direction[i]))
        out.append(
            Prediction.model_validate(
                {
                    "symbol": "BTC/USDT:USDT",
                    "timestamp": T0 + timedelta(minutes=5 * i),
                    "signal": ("short", "neutral", "long")[cls],
                    "confidence": d[cls],
                    "sd": float(sd[i]),
                    "model_version": "bench",
                    "source": "local-cpu",
                    "models": [
                        {"name": "direction", "version": "b", "probabilities": d},
                        {
                            "name": "volatility",
                            "version": "b",
                            "expected_return": float(ret[i]),
                            "sd": float(sd[i]),
                        },
                        {
                            "name": "regime",
                            "version": "b",
                            "probabilities": [float(x) for x in regime[i]],
                        },
                    ],
                }
            )
        )
    return out


def per_cycle(kind: str, preds: list[Prediction]) -> dict[str, float]:
    """``Session.decide`` per symbol and cycle, in microseconds (no position: every confident
    signal runs the position rules' entry sizing and TP/SL)."""
    session = build_strategy(settings(strategy=KINDS[kind])).session()
    times = []
    for p in preds:
        inp = DecisionInput(
            "BTC/USDT:USDT", p, None, Decimal(10_000), Decimal(60_000), BTCUSDT_PERP
        )
        started = time.perf_counter()
        session.decide(inp, [])
        times.append((time.perf_counter() - started) * 1e6)
    steady = sorted(times[10:])
    return {
        "p50_us": statistics.median(steady),
        "p99_us": steady[int(0.99 * len(steady))],
        "mean_us": statistics.fmean(steady),
    }


def consensus_one_bar(preds: list[Prediction]) -> dict[str, float]:
    """Consensus alone on one bar (the answers already as arrays), in microseconds."""
    arrays = [ModelArrays.of(p) for p in preds]
    params = ConsensusParams(fee_band=0.0014)
    times = []
    for a in arrays:
        started = time.perf_counter()
        consensus(a, params)
        times.append((time.perf_counter() - started) * 1e6)
    steady = sorted(times[10:])
    return {"p50_us": statistics.median(steady), "p99_us": steady[int(0.99 * len(steady))]}


def year_series(kind: str) -> float:
    """``Strategy.series`` over a year of bars (the backtest's vectorised path), in ms."""
    direction, ret, sd, regime = answers(np.random.default_rng(1), YEAR)
    code = np.argmax(direction, axis=1).astype(np.int8)
    ml = MLInputs(
        code,
        direction.max(axis=1),
        np.zeros(YEAR, dtype=bool),
        regime,
        ExitHints(sd),
        ModelArrays(direction, ret, sd, regime),
    )
    strategy = build_strategy(settings(strategy=KINDS[kind]))
    close = np.full(YEAR, 60_000.0)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        strategy.series(close, close, close, ml)
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cycles", type=int, default=3000)
    args = parser.parse_args()
    preds = predictions(args.cycles)
    cycle = {kind: per_cycle(kind, preds) for kind in KINDS}
    base = cycle["ml_directional"]
    result: dict[str, Any] = {
        "cycles": args.cycles,
        "per_cycle": cycle,
        "added_p50_us": {k: v["p50_us"] - base["p50_us"] for k, v in cycle.items()},
        "added_p99_us": {k: v["p99_us"] - base["p99_us"] for k, v in cycle.items()},
        "consensus_one_bar": consensus_one_bar(preds),
        "year_series_ms": {kind: year_series(kind) for kind in KINDS},
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"Session.decide per symbol and cycle ({args.cycles} cycles):")
    for kind, v in cycle.items():
        added = result["added_p50_us"][kind]
        print(
            f"  {kind:18} p50 {v['p50_us']:7.1f} µs  p99 {v['p99_us']:7.1f} µs  "
            f"(+{added:.1f} µs p50 over ml_directional)"
        )
    c = result["consensus_one_bar"]
    print(f"consensus alone, one bar: p50 {c['p50_us']:.1f} µs, p99 {c['p99_us']:.1f} µs")
    for kind, ms in result["year_series_ms"].items():
        print(f"Strategy.series over {YEAR:,} bars, {kind}: {ms:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
