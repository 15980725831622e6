"""What a backtest report must say about itself so that it does not mislead.

A handful of trades gives a CAGR, a Sharpe ratio and a win rate that look like facts and are
noise; a backtest over the candles the models were trained on measures memory, not skill; and a
return means little without what simply holding the asset did. Pure functions: the report, the
terminal table and the plot all say the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

MIN_TRADES = 30  # below this, per-trade statistics are too noisy to read as an edge


@dataclass(frozen=True, slots=True)
class Span:
    """A time span, start inclusive, end exclusive (UTC)."""

    start: datetime
    end: datetime

    def overlaps(self, other: Span) -> bool:
        """True when the two spans share any instant."""
        return self.start < other.end and other.start < self.end


def small_sample(trades: int) -> str | None:
    """The warning for statistics computed from fewer than :data:`MIN_TRADES` trades."""
    if trades >= MIN_TRADES:
        return None
    return (
        f"only {trades} trade{'s' if trades != 1 else ''}: CAGR, Sharpe, win rate and profit "
        f"factor from fewer than {MIN_TRADES} trades are noise, not evidence of an edge"
    )


def training_overlap(backtest: Span, training: Span | None) -> str | None:
    """The warning for a backtest that covers candles the models were trained on."""
    if training is None or not backtest.overlaps(training):
        return None
    return (
        f"the backtest ({_day(backtest.start)} → {_day(backtest.end)}) overlaps the models' "
        f"training window ({_day(training.start)} → {_day(training.end)}): results there are "
        "in-sample and flatter the models"
    )


def warnings(trades: int, backtest: Span, training: Span | None) -> list[str]:
    """Every warning that applies, most important first."""
    found = (training_overlap(backtest, training), small_sample(trades))
    return [w for w in found if w is not None]


def buy_and_hold_return(opens: Sequence[float], closes: Sequence[float]) -> float | None:
    """Holding the asset from the first price a strategy can trade at (the second candle's
    open, as in ``--compare``) to the last close; unleveraged, before fees."""
    if len(opens) < 2 or opens[1] <= 0:
        return None
    return float(closes[-1]) / float(opens[1]) - 1.0


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
