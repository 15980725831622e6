"""What one backtest's exact step reads and leaves besides its wallet: the candles as arrays,
the wallet's holder (one symbol's own, or a portfolio's shared), and the decisions kept."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.actions import Action
from tbotd.domain.values import timeframe_ms
from tbotd.execution import paper_model as pm

if TYPE_CHECKING:
    from tbotd.backtest.engine import Simulator


@dataclass(frozen=True)
class Candles:
    """One symbol's candles as float64 arrays (``open_ms`` int64), oldest first."""

    open_ms: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]
    timeframe: str

    def __len__(self) -> int:
        return len(self.open_ms)

    @property
    def close_ms(self) -> NDArray[np.int64]:
        """Each candle's close time (open + timeframe), epoch ms."""
        return self.open_ms + timeframe_ms(self.timeframe)


@dataclass(slots=True)
class Book:
    """The wallet one backtest trades from: one symbol's own, or shared by a portfolio's."""

    wallet: pm.Wallet


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision of the backtest that acted or was refused (bar index and actions); holds
    where nothing was wanted are not kept (the fast path never asks for them)."""

    bar: int
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Deferred:
    """Entries refused for size in a flat account too small to trade at those bars' prices (the
    fast path's :func:`~tbotd.backtest.drive.run_fast` proves each one is), one record for a run
    of them: the rules' own actions are worked out when first read, so a blown account's
    thousands of refusals cost nothing."""

    bars: tuple[int, ...]
    sim: Simulator
    equity: Decimal

    def actions(self, bar: int) -> tuple[Action, ...]:
        """What the exact step would have decided at ``bar`` (flat, no entries this hour)."""
        inp = self.sim.decision_input(bar, self.equity, None, 0)
        return tuple(self.sim.strategy.decide(inp, self.sim.series.vote(bar)))


def each_decision(
    decided: Iterable[Decided | Deferred],
) -> Iterator[tuple[int, tuple[Action, ...]]]:
    """(bar, actions) of every kept decision, in the order they were made."""
    for d in decided:
        if isinstance(d, Deferred):
            yield from ((bar, d.actions(bar)) for bar in d.bars)
        else:
            yield d.bar, d.actions
