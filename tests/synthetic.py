"""Seeded synthetic candles for tests: random walks with realistic-looking OHLCV bars."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from tbotd.domain.market import Candle
from tbotd.domain.values import ms_to_datetime

START_MS = 1_672_531_200_000  # 2023-01-01 00:00 UTC
STEP_MS = 300_000  # 5 minutes


def random_walk(n: int, seed: int, vol: float = 0.003, start_ms: int = START_MS) -> pd.DataFrame:
    """A driftless geometric random walk of ``n`` 5-minute candles (no signal by construction)."""
    rng = np.random.default_rng(seed)
    close = 20_000.0 * np.cumprod(1.0 + rng.normal(0.0, vol, n))
    open_ = np.concatenate([[20_000.0], close[:-1]])
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, vol / 2, n)))
    volume = rng.lognormal(3.0, 1.0, n)
    times = start_ms + np.arange(n, dtype=np.int64) * STEP_MS
    frame = pd.DataFrame(
        {
            "open_time": times,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    # Round like an exchange would (2 decimals of price), keeping high/low bounds intact.
    for name in ("open", "close"):
        frame[name] = frame[name].round(2)
    frame["high"] = np.maximum(frame["high"].round(2), frame[["open", "close"]].max(axis=1))
    frame["low"] = np.minimum(frame["low"].round(2), frame[["open", "close"]].min(axis=1))
    frame["volume"] = frame["volume"].round(4)
    return frame


def to_candles(frame: pd.DataFrame, symbol: str = "BTC/USDT:USDT") -> list[Candle]:
    """Candle objects with Decimal values parsed from the frame's shortest float reprs."""
    return [
        Candle(
            symbol,
            "5m",
            ms_to_datetime(int(r.open_time)),
            Decimal(repr(float(r.open))),
            Decimal(repr(float(r.high))),
            Decimal(repr(float(r.low))),
            Decimal(repr(float(r.close))),
            Decimal(repr(float(r.volume))),
        )
        for r in frame.itertuples()
    ]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write the shared-data CSV format (``timestamp,open,high,low,close,volume``), gzipped if
    the name ends in .gz."""
    text = frame.rename(columns={"open_time": "timestamp"}).to_csv(index=False)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
