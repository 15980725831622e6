"""Triple-barrier labels of the classic strategy's signals, with the paper fill model's rules.

A signal on bar t (decided at its close) is filled at the next candle's open, ``entry =
open[t+1]``, and protected by the strategy's own exits (:func:`barrier_distances`: the fixed
percentages through :func:`tbotd.strategy.exits.protective_prices`, clamped like every live
entry). From bar t+1 on, each bar is read as the paper fill model reads it
(:mod:`tbotd.execution.paper_model`): pessimistic — the stop-loss before the take-profit when a
bar touches both, a level the bar opened beyond fills at that open (gap). The third barrier is
time: a trade still open after ``max_hold`` bars leaves at ``close[t+max_hold]``.

The label is 1 when the take-profit is hit first **and** the trade's return after the round
trip's costs (``cost``: taker fee and slippage, both sides) is positive: a take-profit too
close to pay for its fees is a loss. Row t's label reads bars t+1 … t+max_hold only, so
:attr:`Barriers.lookahead` is what walk-forward splits must purge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.enums import MarketType, Side
from tbotd.strategy.exits import ExitParams, fixed_exits, protective_prices

_UNIT, _TICK = Decimal(1), Decimal("1e-10")


class Exit(IntEnum):
    """How a labelled trade ended."""

    TAKE_PROFIT = 1
    STOP_LOSS = 2
    TIME = 3


@dataclass(frozen=True, slots=True)
class Barriers:
    """Distances as fractions of the entry (per side: a leverage clamp may differ), the time
    barrier in bars and the round trip's cost as a fraction of the notional."""

    take_long: float
    stop_long: float
    take_short: float
    stop_short: float
    max_hold: int
    cost: float

    @property
    def lookahead(self) -> int:
        """Bars after the signal bar that its label reads (the entry's open included)."""
        return self.max_hold

    def break_even(self, side: int = 1) -> float:
        """The P(take-profit first) at which the trade's expected return after costs is 0."""
        take, stop = (
            (self.take_long, self.stop_long) if side > 0 else (self.take_short, self.stop_short)
        )
        return (stop + self.cost) / (take + stop)

    def describe(self) -> dict[str, object]:
        """Manifest/report form."""
        return asdict(self) | {
            "break_even_long": self.break_even(1),
            "break_even_short": self.break_even(-1),
            "definition": "entry = open[t+1]; stop-loss first when a bar touches both; a gap "
            "fills at the open; time barrier: close[t+max_hold]; label 1 iff take-profit first "
            "and the return after cost > 0",
        }


def barrier_distances(
    params: ExitParams, market_type: MarketType, max_hold: int, cost: float
) -> Barriers:
    """The strategy's fixed exits as the live entry would place them (bounds, liquidation)."""
    out: dict[Side, tuple[float, float]] = {}
    for side in (Side.LONG, Side.SHORT):
        p = protective_prices(fixed_exits(params), side, _UNIT, _TICK, params.bounds, market_type)
        out[side] = (float(abs(p.take_profit - _UNIT)), float(abs(_UNIT - p.stop_loss)))
    return Barriers(*out[Side.LONG], *out[Side.SHORT], max_hold, cost)


@dataclass(frozen=True)
class Outcomes:
    """Per event: label (1 win, 0 not), return after costs, how and on which bar it ended."""

    label: NDArray[np.int8]
    ret: NDArray[np.float64]
    exit: NDArray[np.int8]
    exit_bar: NDArray[np.int64]


def triple_barrier(
    open_: NDArray[np.float64],
    high: NDArray[np.float64],
    low: NDArray[np.float64],
    close: NDArray[np.float64],
    rows: NDArray[np.int64],
    sides: NDArray[np.int8],
    b: Barriers,
) -> Outcomes:
    """Outcomes of signals on bars ``rows`` (side +1 long, -1 short); every row needs
    ``row + max_hold < len(close)``."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and rows.max() + b.max_hold >= len(close):
        raise ValueError("a signal's time barrier lies beyond the data")
    long = np.asarray(sides) > 0
    entry = open_[rows + 1]
    take = np.where(long, entry * (1 + b.take_long), entry * (1 - b.take_short))
    stop = np.where(long, entry * (1 - b.stop_long), entry * (1 + b.stop_short))
    k = rows[:, None] + np.arange(1, b.max_hold + 1)[None, :]  # [E, H] bars after the signal
    o, h, lo = open_[k], high[k], low[k]
    t_, s_ = take[:, None], stop[:, None]
    first = np.zeros_like(o, dtype=bool)
    first[:, 0] = True  # the first bar opens at the entry: no gap there
    gap_sl = ~first & np.where(long[:, None], o <= s_, o >= s_)
    hit_sl = gap_sl | np.where(long[:, None], lo <= s_, h >= s_)
    gap_tp = ~first & np.where(long[:, None], o >= t_, o <= t_)
    hit_tp = gap_tp | np.where(long[:, None], h >= t_, lo <= t_)
    any_hit = hit_sl | hit_tp
    hold = b.max_hold
    j = np.where(any_hit.any(axis=1), any_hit.argmax(axis=1), hold - 1)
    e = np.arange(len(rows))
    sl_first = hit_sl[e, j]  # pessimistic: a bar touching both is a stop
    tp_first = ~sl_first & hit_tp[e, j]
    price = np.where(
        sl_first,
        np.where(gap_sl[e, j], o[e, j], stop),
        np.where(tp_first, np.where(gap_tp[e, j], o[e, j], take), close[rows + hold]),
    )
    sign = np.where(long, 1.0, -1.0)
    ret = sign * (price / entry - 1.0) - b.cost
    how = np.where(sl_first, Exit.STOP_LOSS, np.where(tp_first, Exit.TAKE_PROFIT, Exit.TIME))
    label = (tp_first & (ret > 0)).astype(np.int8)
    return Outcomes(label, ret, how.astype(np.int8), rows + j + 1)
