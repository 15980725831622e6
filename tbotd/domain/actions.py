"""What the ML directional manager decides: a list of actions per symbol per candle.

Actions are plain data. The manager (a pure function) produces them; execution carries them out.
A flip is ``[ClosePosition, OpenPosition]`` in one decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tbotd.domain.enums import Side
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import to_decimal


class ExitSource(StrEnum):
    """Where the take-profit and stop-loss of a new position come from (DESIGN §2)."""

    PREDICTION = "prediction"  # absolute prices given by the model
    VOLATILITY = "volatility"  # k × predicted sd
    FIXED = "fixed"  # configured percentages


class ExitLevel(StrEnum):
    """Which protective level a clamp moved."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class ClampReason(StrEnum):
    """Why a level was moved from where its source put it."""

    BELOW_MIN = "below_min"  # nearer than the configured minimum
    ABOVE_MAX = "above_max"  # farther than the configured maximum
    LIQUIDATION = "liquidation"  # farther than the leverage allows before liquidation


@dataclass(frozen=True, slots=True)
class Clamp:
    """One level moved into bounds: the distance asked and the distance used (fractions)."""

    level: ExitLevel
    asked: Decimal
    used: Decimal
    reason: ClampReason


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """How to place TP/SL once the entry's actual fill price is known.

    Either absolute prices (``stop_loss``/``take_profit``) or distances as fractions of the fill
    price (``sl_distance``/``tp_distance``); never both. ``clamps``: how the bounds moved the
    levels when the decision priced them at the mark (DESIGN §13); the fill re-applies them.
    """

    source: ExitSource
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    sl_distance: Decimal | None = None
    tp_distance: Decimal | None = None
    clamps: tuple[Clamp, ...] = ()

    def __post_init__(self) -> None:
        prices, distances = ("stop_loss", "take_profit"), ("sl_distance", "tp_distance")
        wanted, unwanted = (
            (prices, distances) if self.source is ExitSource.PREDICTION else (distances, prices)
        )
        if any(getattr(self, n) is None for n in wanted) or any(
            getattr(self, n) is not None for n in unwanted
        ):
            raise InvalidDataError(
                f"a {self.source} exit plan needs exactly {' and '.join(wanted)}"
            )
        for name in wanted:
            value = to_decimal(getattr(self, name), f"exit plan {name}")
            if value <= 0:
                raise InvalidDataError(f"exit plan {name} {value} must be positive")
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """Open a new position of ``qty`` contracts, protected per ``exits`` once filled."""

    symbol: str
    side: Side
    qty: Decimal
    exits: ExitPlan
    reason: str


@dataclass(frozen=True, slots=True)
class ClosePosition:
    """Close the whole open position on ``side`` at market; its protective orders are cancelled."""

    symbol: str
    side: Side
    qty: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class MoveProtection:
    """Replace the protective orders: the new ones are placed before the old ones are cancelled."""

    symbol: str
    stop_loss: Decimal
    take_profit: Decimal
    reason: str
    clamps: tuple[Clamp, ...] = ()


@dataclass(frozen=True, slots=True)
class Hold:
    """Do nothing, and say why (below threshold, degraded prediction, below minimum, ...)."""

    symbol: str
    reason: str


Action = OpenPosition | ClosePosition | MoveProtection | Hold
