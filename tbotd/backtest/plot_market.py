"""The market panels of the demo's and the backtest's plots: price with the trades and their
take-profit/stop-loss levels, and the model's confidence against the strategy's threshold — the
two things that show at a glance what happened and why nothing traded when nothing did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tbotd.backtest.envelope import envelope
from tbotd.domain.enums import Side
from tbotd.domain.values import datetime_to_ms
from tbotd.store.wallet import Trade

MAX_MARKED = 500  # beyond this many trades, markers and levels hide the price
_LONG, _SHORT, _STOP, _TARGET = "#2e7d32", "#c62828", "#c62828", "#2e7d32"


@dataclass(frozen=True)
class MarketTrack:
    """Closes per bar and, where the strategy had one, the model's confidence per bar."""

    open_ms: NDArray[np.int64]
    close: NDArray[np.float64]
    confidence_ms: NDArray[np.int64]
    confidence: NDArray[np.float64]
    threshold: float | None


def _times(ms: NDArray[np.int64] | Sequence[int]) -> Any:
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")


def draw_price(ax: Any, track: MarketTrack, trades: Sequence[Trade]) -> None:
    """Close price; ▲/▼ at each entry price, ● at each exit price; each trade's stop (red) and
    target (green) as a segment from its entry to its exit."""
    times = _times(track.open_ms)
    drawn = envelope(times, track.close)  # the points the pixels can show
    ax.plot(times[drawn], track.close[drawn], color="#555555", linewidth=0.7, label="close")
    if 0 < len(trades) <= MAX_MARKED:
        for side, marker, color in ((Side.LONG, "^", _LONG), (Side.SHORT, "v", _SHORT)):
            mine = [t for t in trades if t.side is side]
            if mine:
                ax.scatter(
                    _times([datetime_to_ms(t.entry_time) for t in mine]),
                    [float(t.entry_price) for t in mine],
                    marker=marker, s=24, color=color, label=f"{side} entry", zorder=3,
                )  # fmt: skip
        ax.scatter(
            _times([datetime_to_ms(t.exit_time) for t in trades]),
            [float(t.exit_price) for t in trades],
            marker="o", s=10, color="black", label="exit", zorder=3,
        )  # fmt: skip
        for t in trades:
            span = _times([datetime_to_ms(t.entry_time), datetime_to_ms(t.exit_time)])
            for level, color in ((t.stop_loss, _STOP), (t.take_profit, _TARGET)):
                if level is not None:
                    ax.plot(span, [float(level)] * 2, color=color, linewidth=0.8, alpha=0.7)
    ax.set_ylabel("price (stop red, target green)")
    ax.legend(loc="upper left", fontsize=7)


def draw_confidence(ax: Any, track: MarketTrack) -> None:
    """The confidence of each prediction, and the threshold an entry needs."""
    if len(track.confidence):
        times = _times(track.confidence_ms)
        drawn = envelope(times, track.confidence)
        ax.plot(
            times[drawn], track.confidence[drawn], color="#1f4e79", linewidth=0.6,
            label="confidence",
        )  # fmt: skip
    else:
        ax.text(0.5, 0.5, "no predictions", transform=ax.transAxes, ha="center", va="center")
    if track.threshold is not None:
        ax.axhline(track.threshold, color="#c62828", linewidth=0.8, linestyle="--")
        ax.text(
            0.0, track.threshold, f" threshold {track.threshold:g}", color="#c62828", fontsize=7,
            va="bottom", transform=ax.get_yaxis_transform(),
        )  # fmt: skip
    ax.set_ylabel("confidence")
