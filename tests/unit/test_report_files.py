"""equity.csv's text and the plot's points: fast paths that must show what the slow ones did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tbotd.backtest import EquityCurve
from tbotd.backtest.envelope import envelope
from tbotd.backtest.equity_csv import curve_columns, floats, iso_times, write_columns

YEAR_START_MS = 1_684_165_200_000  # 2023-05-15 15:40 UTC
AWKWARD = [0.0, -0.0, 1.0, -1.5, 1e-12, 123456789.123456, 1e21, 0.1 + 0.2, float("inf"), np.nan]


def pandas_csv(curve: EquityCurve, initial: float, path: Path) -> None:
    """How equity.csv was written before: pandas' to_csv with float_format %.10g."""
    frame = curve.frame()
    peak = np.maximum.accumulate(np.concatenate([[initial], curve.equity]))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["drawdown"] = np.where(peak > 0, 1.0 - curve.equity / peak, 0.0)
    frame.to_csv(path, index=False, float_format="%.10g")


def test_equity_csv_is_byte_identical_to_what_pandas_wrote(tmp_path: Path) -> None:
    """A sparse curve (flat stretches, trades, odd values) gives the very file pandas wrote."""
    rng = np.random.default_rng(3)
    n = 5_000
    holding = np.repeat(rng.random(n // 50) < 0.2, 50)
    equity = 10_000 + np.cumsum(np.where(holding, rng.normal(0, 7, n), 0.0))
    equity[:10] = AWKWARD
    balance = np.round(np.maximum.accumulate(equity), 4)
    position = np.where(holding, 0.123, 0.0)
    open_ms = YEAR_START_MS + 300_000 * np.arange(n, dtype=np.int64)
    curve = EquityCurve(open_ms, equity, balance, position)
    pandas_csv(curve, 10_000.0, tmp_path / "pandas.csv")
    write_columns(tmp_path / "fast.csv", curve_columns(curve, 10_000.0))
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def test_floats_and_times_are_formatted_as_pandas_formats_them() -> None:
    """Each awkward float and each timestamp reads as pandas wrote it (NaN as an empty field)."""
    values = np.array(AWKWARD)
    expected = pd.DataFrame({"v": values}).to_csv(index=False, float_format="%.10g").split()[1:]
    assert [text or '""' for text in floats(values)][:-1] == expected[:-1]
    assert floats(values)[-1] == ""
    ms = np.array([0, YEAR_START_MS, YEAR_START_MS + 299_999], dtype=np.int64)
    assert iso_times(ms) == list(
        pd.to_datetime(ms, unit="ms", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def test_the_plotted_points_keep_every_pixel_columns_extremes() -> None:
    """A year's curve is cut to a few thousand points with its highs, lows and ends all kept."""
    rng = np.random.default_rng(5)
    n = 105_120
    times = (YEAR_START_MS + 300_000 * np.arange(n, dtype=np.int64)).astype("datetime64[ms]")
    curve = np.cumsum(rng.normal(0, 1, n))
    curve[77_777] = -1_000.0  # a one-bar crash must still show
    kept = envelope(times, curve, columns=1_000)
    assert len(kept) <= 4 * 1_000
    assert kept[0] == 0
    assert kept[-1] == n - 1
    assert curve[kept].min() == -1_000.0
    assert curve[kept].max() == curve.max()
    width = n // 1_000 + 1  # bars per pixel column
    for start in range(0, n, 3_000):  # any stretch's low and high are drawn within a column of it
        end = start + 3_000
        near = curve[kept[(kept >= start - width) & (kept < end + width)]]
        assert near.min() <= curve[start:end].min()
        assert near.max() >= curve[start:end].max()


def test_short_series_are_drawn_whole() -> None:
    """Fewer points than four per pixel column: nothing is dropped."""
    assert list(envelope(np.arange(10), np.arange(10.0), columns=5)) == list(range(10))
