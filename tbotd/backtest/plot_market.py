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


def fixed_layout(fig: Any, bottom: Any) -> None:
    """Margins in inches and slanted dates on the ``bottom`` axes, in place of ``tight_layout``
    and ``autofmt_xdate``, which measured every text on the figure (a third of a year's plot).
    Wide enough for prices and equity of up to 7 digits and the slanted dates."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=1.0 / width, right=1 - 0.2 / width, top=1 - 0.45 / height, bottom=1.0 / height,
        hspace=0.08,
    )  # fmt: skip
    bottom.tick_params(axis="x", labelrotation=30, labelrotation_mode="xtick")


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
        _draw_levels(ax, trades)
    ax.set_ylabel("price (stop red, target green)")
    ax.legend(loc="upper left", fontsize=7)


def _draw_levels(ax: Any, trades: Sequence[Trade]) -> None:
    """Each trade's stop and target as a segment from its entry to its exit: one collection per
    colour (one line per segment made hundreds of artists, most of the plot's drawing time)."""
    from matplotlib.collections import LineCollection
    from matplotlib.dates import date2num

    days: Any = date2num  # untyped in matplotlib
    entries = days(_times([datetime_to_ms(t.entry_time) for t in trades]))
    exits = days(_times([datetime_to_ms(t.exit_time) for t in trades]))
    for color, levels in (
        (_STOP, [t.stop_loss for t in trades]),
        (_TARGET, [t.take_profit for t in trades]),
    ):
        segments = [
            ((start, float(level)), (end, float(level)))
            for start, end, level in zip(entries, exits, levels, strict=True)
            if level is not None
        ]
        if segments:
            ax.add_collection(LineCollection(segments, colors=color, linewidths=0.8, alpha=0.7))


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
