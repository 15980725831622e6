"""``equity.png``: price with the trades and their levels, the model's confidence against the
threshold, the equity curve with entries and exits marked, and the drawdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tbotd.backtest.envelope import envelope
from tbotd.backtest.equity_csv import drawdown as drawdown_of
from tbotd.backtest.honesty import MIN_TRADES, small_sample
from tbotd.backtest.plot_market import (
    MAX_MARKED,
    MarketTrack,
    draw_confidence,
    draw_price,
    fixed_layout,
)
from tbotd.backtest.run import BacktestResult
from tbotd.domain.enums import Side
from tbotd.domain.values import datetime_to_ms


def _at(times_ms: np.ndarray, open_ms: np.ndarray, equity: np.ndarray, before: bool) -> np.ndarray:
    """Equity at the close of the bar holding each time (``before``: of the bar ending there,
    i.e. just before an entry fills)."""
    idx = np.searchsorted(open_ms, times_ms, side="left" if before else "right") - 1
    return equity[np.clip(idx, 0, len(open_ms) - 1)]


def plot_equity(result: BacktestResult, path: Path, track: MarketTrack | None = None) -> None:
    """Panels sharing the time axis: (with ``track``) price with trades and TP/SL levels and the
    confidence against the threshold; equity with ▲/▼ entries and ● exits; drawdown in %."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    curve = result.equity
    times = curve.open_ms.astype("datetime64[ms]")
    equity = curve.equity
    drawdown = drawdown_of(equity, float(result.initial_equity))
    ratios = [3, 1, 3, 1] if track is not None else [3, 1]
    fig, axes = plt.subplots(
        len(ratios), 1, figsize=(12, 3.5 * len(ratios)), sharex=True,
        gridspec_kw={"height_ratios": ratios},
    )  # fmt: skip
    if track is not None:
        draw_price(axes[0], track, result.trades)
        draw_confidence(axes[1], track)
    top, bottom = axes[-2], axes[-1]
    drawn = envelope(times, equity)  # what the pixels can show: the same picture, far sooner
    top.plot(times[drawn], equity[drawn], color="#1f4e79", linewidth=0.8, label="equity")
    top.axhline(float(result.initial_equity), color="grey", linewidth=0.6, linestyle="--")
    trades = result.trades
    if 0 < len(trades) <= MAX_MARKED:
        for side, marker, color in ((Side.LONG, "^", "#2e7d32"), (Side.SHORT, "v", "#c62828")):
            entries = np.array(
                [datetime_to_ms(t.entry_time) for t in trades if t.side is side], dtype=np.int64
            )
            if len(entries):
                top.scatter(
                    entries.astype("datetime64[ms]"),
                    _at(entries, curve.open_ms, equity, before=True),
                    marker=marker,
                    s=18,
                    color=color,
                    label=f"{side} entry",
                    zorder=3,
                )
        exits = np.array([datetime_to_ms(t.exit_time) for t in trades], dtype=np.int64)
        top.scatter(
            exits.astype("datetime64[ms]"),
            _at(exits, curve.open_ms, equity, before=False),
            marker="o",
            s=8,
            color="black",
            label="exit",
            zorder=3,
        )
    top.set_ylabel(f"equity ({result.currency})")
    top.legend(loc="upper left", fontsize=8)
    growth = float(result.final_equity / result.initial_equity - 1)
    unmarked = " (too many to mark)" if len(trades) > MAX_MARKED else ""
    few = f" — fewer than {MIN_TRADES} trades: not evidence" if small_sample(len(trades)) else ""
    axes[0].set_title(
        f"tbotd backtest {result.symbol} {result.timeframe}: {len(trades)} trades{unmarked}, "
        f"return {growth:+.2%}, max drawdown {drawdown.max():.2%}{few}"
    )
    drawn = envelope(times, drawdown)  # each pixel column's deepest point is kept
    bottom.fill_between(
        times[drawn], -100 * drawdown[drawn], 0, color="#c62828", alpha=0.4, linewidth=0
    )
    bottom.set_ylabel("drawdown (%)")
    bottom.set_xlabel("time (UTC)")
    fixed_layout(fig, bottom)
    fig.savefig(path, dpi=110, pil_kwargs={"compress_level": 1})  # zlib level 6: 0.1 s more
    plt.close(fig)
