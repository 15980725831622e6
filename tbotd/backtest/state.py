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
from tbotd.domain.market import MarketSpec
from tbotd.domain.positions import HeldPosition
from tbotd.domain.values import timeframe_ms
from tbotd.execution import paper_model as pm
from tbotd.strategy.rules import DecisionInput

if TYPE_CHECKING:
    from tbotd.strategy.signal import SignalSeries
    from tbotd.strategy.strategy import Strategy


def dec(value: float) -> Decimal:
    """A CSV price as the exchange wrote it: the shortest decimal that reads back as ``value``."""
    return Decimal(repr(float(value)))


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


@dataclass(frozen=True, slots=True, eq=False)  # (compared by identity: it holds arrays)
class Decider:
    """What a decision reads besides the account: the strategy, its signal, the market and the
    opens decisions fill near. Holds nothing of the simulator, so the decisions a result keeps
    never keep a simulator (and its arrays) alive."""

    strategy: Strategy
    series: SignalSeries
    market: MarketSpec
    opens: NDArray[np.float64]

    def mark(self, i: int) -> Decimal:
        """The price a decision at candle ``i``'s close fills near: the next candle's open."""
        return dec(self.opens.item(i + 1))

    def decision_input(
        self,
        i: int,
        equity: Decimal,
        position: HeldPosition | None,
        entries: int,
        mark: Decimal | None = None,
    ) -> DecisionInput:
        """What the rules see at candle ``i``'s close (the mark: the next candle's open)."""
        mark = self.mark(i) if mark is None else mark
        market = self.market
        return DecisionInput(market.symbol, None, position, equity, mark, market, entries)


@dataclass(frozen=True, slots=True)
class Deferred:
    """Entries refused for size in a flat account too small to trade at those bars' prices (the
    fast path's :func:`~tbotd.backtest.drive.run_fast` proves each one is), one record for a run
    of them: the rules' own actions are worked out when first read, so a blown account's
    thousands of refusals cost nothing."""

    bars: tuple[int, ...]
    decider: Decider
    equity: Decimal

    def actions(self, bar: int) -> tuple[Action, ...]:
        """What the exact step would have decided at ``bar`` (flat, no entries this hour)."""
        inp = self.decider.decision_input(bar, self.equity, None, 0)
        return tuple(self.decider.strategy.decide(inp, self.decider.series.vote(bar)))


def each_decision(
    decided: Iterable[Decided | Deferred],
) -> Iterator[tuple[int, tuple[Action, ...]]]:
    """(bar, actions) of every kept decision, in the order they were made."""
    for d in decided:
        if isinstance(d, Deferred):
            yield from ((bar, d.actions(bar)) for bar in d.bars)
        else:
            yield d.bar, d.actions
