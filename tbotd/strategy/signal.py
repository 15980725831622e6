"""What a signal source says, one bar at a time (:class:`Vote`) or for a whole history (arrays).

A strategy is a signal source plus the shared position rules (README: Strategies). The source's
rule is written once, over numpy arrays: the backtest runs it over every bar at once, the daemon
over the newest bar (arrays of length 1), so both run the same code. :class:`Opinions` are those
arrays; :meth:`Opinions.at` turns one bar into the :class:`~tbotd.domain.actions.Opinion` a decision
records.

Direction codes are those of the prediction tables (``SHORT, FLAT, LONG = 0, 1, 2``) plus
``ABSTAIN = -1``; reasons are a bit mask over :class:`~tbotd.domain.actions.Reason`, so a bar
carries any number of them in one integer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.actions import Direction, Opinion, Reason

ABSTAIN, SHORT, FLAT, LONG = -1, 0, 1, 2
DIRECTIONS = {ABSTAIN: Direction.ABSTAIN, SHORT: Direction.SHORT, FLAT: Direction.FLAT}
DIRECTIONS[LONG] = Direction.LONG
CODES = {d: c for c, d in DIRECTIONS.items()}
REASONS = tuple(Reason)
BIT = {r: np.int64(1 << i) for i, r in enumerate(REASONS)}

Codes = NDArray[np.int8]
Floats = NDArray[np.float64]
Masks = NDArray[np.int64]


def signed(direction: Codes) -> NDArray[np.float64]:
    """+1 long, -1 short, 0 flat or abstaining."""
    return np.where(direction == LONG, 1.0, np.where(direction == SHORT, -1.0, 0.0))


@lru_cache(maxsize=256)
def reasons_of(mask: int) -> tuple[Reason, ...]:
    """The reasons set in ``mask``, in declaration order."""
    return tuple(r for i, r in enumerate(REASONS) if mask >> i & 1)


@dataclass(frozen=True)
class Opinions:
    """One opinion per bar: direction codes, confidence (0 where abstaining), reason masks."""

    direction: Codes
    confidence: Floats
    reasons: Masks

    def __len__(self) -> int:
        return len(self.direction)

    @classmethod
    def abstaining(cls, n: int, reason: Reason) -> Opinions:
        """``n`` bars without an opinion, for ``reason``."""
        return cls(
            np.full(n, ABSTAIN, dtype=np.int8), np.zeros(n), np.full(n, BIT[reason], np.int64)
        )

    def at(self, i: int) -> Opinion:
        """Bar ``i`` as a recordable :class:`Opinion`."""
        return Opinion(
            DIRECTIONS[int(self.direction[i])],
            float(self.confidence[i]),
            reasons_of(int(self.reasons[i])),
        )


@dataclass(frozen=True, slots=True)
class ExitHint:
    """The exits a signal asks for: a model's absolute prices, or its volatility ``sd`` (a
    fraction of price); neither means the configured fixed percentages."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    sd: float | None = None


NO_HINT = ExitHint()


@dataclass(frozen=True)
class ExitHints:
    """One :class:`ExitHint` per bar: ``sd`` (NaN where none) and the prices' exact decimal
    text ("" where none; the arrays are None when no bar has prices)."""

    sd: Floats
    stop_loss: NDArray[np.str_] | None = None
    take_profit: NDArray[np.str_] | None = None

    @classmethod
    def none(cls, n: int) -> ExitHints:
        """No bar asks for particular exits."""
        return cls(np.full(n, np.nan))

    def at(self, i: int) -> ExitHint:
        """The hint of bar ``i``."""
        sd: float = self.sd.item(i)  # (a Python float: a run reads a few thousand bars)
        if self.stop_loss is None and math.isnan(sd):  # neither prices nor sd: the fixed exits
            return NO_HINT
        stop = str(self.stop_loss[i]) if self.stop_loss is not None else ""
        take = str(self.take_profit[i]) if self.take_profit is not None else ""
        has_sd = not math.isnan(sd)
        if not stop and not has_sd:
            return NO_HINT
        return ExitHint(
            Decimal(stop) if stop else None,
            Decimal(take) if take else None,
            sd if has_sd else None,
        )

    def where(self, mask: NDArray[np.bool_], other: ExitHints) -> ExitHints:
        """``other``'s hint where ``mask``, this one's elsewhere."""
        stop = _pick(mask, other.stop_loss, self.stop_loss, len(self.sd))
        take = _pick(mask, other.take_profit, self.take_profit, len(self.sd))
        return ExitHints(np.where(mask, other.sd, self.sd), stop, take)


def _pick(
    mask: NDArray[np.bool_],
    yes: NDArray[np.str_] | None,
    no: NDArray[np.str_] | None,
    n: int,
) -> NDArray[np.str_] | None:
    if yes is None and no is None:
        return None
    empty = np.full(n, "", dtype=str)
    return np.where(mask, empty if yes is None else yes, empty if no is None else no)


@dataclass(frozen=True, slots=True)
class Vote:
    """What the position rules act on for one bar: a direction, its confidence, its exits."""

    direction: Direction
    confidence: float
    exits: ExitHint = NO_HINT


@dataclass(frozen=True)
class SignalSeries:
    """A strategy's signal for every bar of a history: what the rules act on (``result`` and
    ``exits``) and where it came from (``base``, ``ml``, ``provenance`` codes, -1 for none)."""

    result: Opinions
    exits: ExitHints
    base: Opinions | None = None
    ml: Opinions | None = None
    provenance: NDArray[np.int8] | None = None

    def __len__(self) -> int:
        return len(self.result)

    def warming_up(self, bars: int) -> SignalSeries:
        """This series with no opinion on its first ``bars`` bars (they only warm indicators
        up, like the history a daemon has before its first cycle)."""
        if bars <= 0:
            return self
        r = self.result
        direction, confidence, reasons = r.direction.copy(), r.confidence.copy(), r.reasons.copy()
        direction[:bars], confidence[:bars] = ABSTAIN, 0.0
        reasons[:bars] = BIT[Reason.WARMUP]
        return replace(self, result=Opinions(direction, confidence, reasons))

    def vote(self, i: int) -> Vote:
        """Bar ``i`` as the rules see it (read with ``.item``: Python scalars, and a run reads
        only the bars it steps)."""
        result = self.result
        direction: int = result.direction.item(i)
        return Vote(DIRECTIONS[direction], result.confidence.item(i), self.exits.at(i))
