"""Take-profit and stop-loss maths (README: Strategies; README: Protection), always from the actual
fill price.

Priority of sources: absolute prices from the prediction; else the predicted volatility ``sd``
(SL = entry × (1 ∓ k_sl·sd), TP = entry × (1 ± k_tp·sd)); else fixed percentages from config.

Whatever the source says, the result is **bounded** (README: Protection): the stop sits between
``min_stop`` and ``max_stop`` of the entry — and at most :data:`LIQUIDATION_SHARE` of the way to
where the configured leverage would be liquidated — and the take-profit between ``min_take`` and
``max_take``. A model asking for more (an ``sd`` of 0.45 read as a fraction, an ``sd`` of 1e-5)
is clamped, never obeyed, and every clamp is reported. Prices are rounded to the tick inside the
bounds and validated: a long's stop is below its reference and its take-profit above (the reverse
for a short); anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Protocol

from tbotd.domain.actions import Clamp, ClampReason, ExitLevel, ExitPlan, ExitSource
from tbotd.domain.enums import MarketType, Side
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.positions import MAINTENANCE_MARGIN_RATE, liquidation_distance
from tbotd.domain.values import round_to_tick

_HUNDRED = Decimal(100)
LIQUIDATION_SHARE = Decimal("0.5")  # a stop may use at most half the distance to liquidation


@dataclass(frozen=True, slots=True)
class ExitBounds:
    """Where protective levels may sit, as fractions of the entry (README: Protection)."""

    min_stop: Decimal = Decimal("0.003")
    max_stop: Decimal = Decimal("0.05")
    min_take: Decimal = Decimal("0.003")
    max_take: Decimal = Decimal("0.20")
    prediction_band: Decimal = Decimal("0.20")  # a model's absolute price farther is refused
    leverage: Decimal = Decimal(1)
    mmr: Decimal = MAINTENANCE_MARGIN_RATE
    # each (market type, side)'s stop range, worked out once per bounds: every entry and every
    # refresh asks, and hashing the bounds for a shared cache cost more than the maths
    _ranges: dict[tuple[MarketType, Side], tuple[Decimal, Decimal, bool]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def stop_range(self, market_type: MarketType, side: Side) -> tuple[Decimal, Decimal, bool]:
        """(nearest, farthest, farthest-is-set-by-liquidation) stop distance for ``side``."""
        key = (market_type, side)
        found = self._ranges.get(key)
        if found is None:
            found = self._ranges[key] = _stop_range(self, market_type, side)
        return found


def _stop_range(
    bounds: ExitBounds, market_type: MarketType, side: Side
) -> tuple[Decimal, Decimal, bool]:
    """:meth:`ExitBounds.stop_range`, worked out: the configured band, its far end pulled in to
    :data:`LIQUIDATION_SHARE` of the way to liquidation when that is nearer."""
    far, by_liquidation = bounds.max_stop, False
    distance = liquidation_distance(market_type, side, bounds.leverage, bounds.mmr)
    if distance is not None and distance * LIQUIDATION_SHARE < far:
        far, by_liquidation = distance * LIQUIDATION_SHARE, True
    return bounds.min_stop, far, by_liquidation


@dataclass(frozen=True, slots=True)
class ExitParams:
    """The config knobs for exits: volatility multipliers, fixed percentages and the bounds."""

    k_sl: Decimal
    k_tp: Decimal
    stop_loss_pct: Decimal
    take_profit_pct: Decimal
    bounds: ExitBounds = ExitBounds()


@dataclass(frozen=True, slots=True)
class Protection:
    """Validated protective prices for a position, and the clamps that produced them."""

    stop_loss: Decimal
    take_profit: Decimal
    clamps: tuple[Clamp, ...] = ()

    @property
    def levels(self) -> tuple[Decimal, Decimal]:
        """(stop-loss, take-profit)."""
        return self.stop_loss, self.take_profit


class ExitSources(Protocol):
    """What a signal may say about exits (a :class:`~tbotd.domain.prediction.Prediction`, or a
    vote's :class:`~tbotd.strategy.signal.ExitHint`)."""

    @property
    def stop_loss(self) -> Decimal | None:
        """Absolute stop-loss price."""

    @property
    def take_profit(self) -> Decimal | None:
        """Absolute take-profit price."""

    @property
    def sd(self) -> float | None:
        """Predicted volatility, a fraction of price."""


def plan_exits(hint: ExitSources, params: ExitParams) -> ExitPlan:
    """Choose how the new position will be protected, from the best source the signal has."""
    if hint.stop_loss is not None and hint.take_profit is not None:
        return ExitPlan(
            ExitSource.PREDICTION,
            stop_loss=hint.stop_loss,
            take_profit=hint.take_profit,
        )
    if hint.sd is not None:
        sd = Decimal(repr(hint.sd))
        return ExitPlan(
            ExitSource.VOLATILITY, sl_distance=params.k_sl * sd, tp_distance=params.k_tp * sd
        )
    return fixed_exits(params)


@lru_cache(maxsize=64)
def fixed_exits(params: ExitParams) -> ExitPlan:
    """The configured fixed-percentage exits (also the fallback when others are unusable); one
    frozen plan per configuration."""
    return ExitPlan(
        ExitSource.FIXED,
        sl_distance=params.stop_loss_pct / _HUNDRED,
        tp_distance=params.take_profit_pct / _HUNDRED,
    )


def protective_prices(
    plan: ExitPlan,
    side: Side,
    reference: Decimal,
    tick: Decimal,
    bounds: ExitBounds,
    market_type: MarketType = MarketType.LINEAR,
    entry: Decimal | None = None,
) -> Protection:
    """TP/SL around ``reference`` (a fill, or the mark), bounded, rounded to ``tick``.

    ``entry`` (default: ``reference``) is the position's entry price: the stop's bounds are
    measured from it, so a stop refreshed around a later mark still risks between ``min_stop``
    and ``max_stop`` of the entry. Raises InvalidDataError when no valid pair exists: a level on
    the wrong side, a prediction's price outside ``prediction_band``, or no tick inside bounds.
    """
    entry = reference if entry is None else entry
    stop_d, take_d = _distances(plan, side, reference, bounds)
    clamps: list[Clamp] = []
    near, far, by_liq = bounds.stop_range(market_type, side)
    if not (near <= stop_d <= far and bounds.min_take <= take_d <= bounds.max_take):
        stop_d = _clamp(
            ExitLevel.STOP_LOSS, stop_d, near, far, far_is_liquidation=by_liq, clamps=clamps
        )
        take_d = _clamp(
            ExitLevel.TAKE_PROFIT,
            take_d,
            bounds.min_take,
            bounds.max_take,
            far_is_liquidation=False,
            clamps=clamps,
        )
    sign = side.sign
    stop = reference * (1 - sign * stop_d)
    if entry != reference:  # the band is the entry's: clamp the refreshed stop into it
        from_entry = sign * (entry - stop) / entry
        stop = entry * (1 - sign * min(max(from_entry, near), far))
    low, high = entry * (1 - sign * near), entry * (1 - sign * far)
    if high < low:
        low, high = high, low
    stop = _inside(round_to_tick(stop, tick), low, high, tick)
    take = round_to_tick(reference * (1 + sign * take_d), tick)
    return validate_protection(side, reference, stop, take, tuple(clamps))


def validate_protection(
    side: Side,
    reference: Decimal,
    stop_loss: Decimal,
    take_profit: Decimal,
    clamps: tuple[Clamp, ...] = (),
) -> Protection:
    """Refuse TP/SL that would not protect: a long's SL must be below and TP above ``reference``."""
    if stop_loss <= 0 or take_profit <= 0:
        raise InvalidDataError(
            f"stop-loss {stop_loss} / take-profit {take_profit} must be positive"
        )
    below, above = (stop_loss, take_profit) if side is Side.LONG else (take_profit, stop_loss)
    if not below < reference < above:
        raise InvalidDataError(
            f"a {side} at {reference} needs its stop-loss "
            f"{'below' if side is Side.LONG else 'above'} and take-profit "
            f"{'above' if side is Side.LONG else 'below'} it; got stop-loss {stop_loss}, "
            f"take-profit {take_profit}"
        )
    return Protection(stop_loss, take_profit, clamps)


def _distances(
    plan: ExitPlan, side: Side, reference: Decimal, bounds: ExitBounds
) -> tuple[Decimal, Decimal]:
    """The plan's stop and target as adverse / favourable fractions of ``reference``."""
    if plan.source is not ExitSource.PREDICTION:
        return _both(plan.sl_distance, plan.tp_distance)
    stop, take = _both(plan.stop_loss, plan.take_profit)
    stop_d = side.sign * (reference - stop) / reference
    take_d = side.sign * (take - reference) / reference
    if stop_d <= 0 or take_d <= 0:
        validate_protection(side, reference, stop, take)  # raises, saying which side is wrong
    for name, distance in (("stop-loss", stop_d), ("take-profit", take_d)):
        if distance > bounds.prediction_band:
            raise InvalidDataError(
                f"the prediction's {name} is {distance:.2%} from {reference}, outside the "
                f"{bounds.prediction_band:.0%} band a model's price is believed in"
            )
    return stop_d, take_d


def _clamp(
    level: ExitLevel,
    asked: Decimal,
    near: Decimal,
    far: Decimal,
    *,
    far_is_liquidation: bool,
    clamps: list[Clamp],
) -> Decimal:
    """``asked`` moved into [near, far], the move recorded in ``clamps``."""
    if asked < near:
        clamps.append(Clamp(level, asked, near, ClampReason.BELOW_MIN))
        return near
    if asked > far:
        reason = ClampReason.LIQUIDATION if far_is_liquidation else ClampReason.ABOVE_MAX
        clamps.append(Clamp(level, asked, far, reason))
        return far
    return asked


def _inside(price: Decimal, low: Decimal, high: Decimal, tick: Decimal) -> Decimal:
    """``price`` (on the tick) moved by whole ticks into [low, high]; refused if no tick fits."""
    if price < low:
        price = (low / tick).to_integral_value(rounding=ROUND_CEILING) * tick
    elif price > high:
        price = (high / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
    if not low <= price <= high:
        raise InvalidDataError(f"no price on the tick {tick} lies between {low} and {high}")
    return price


def _both(first: Decimal | None, second: Decimal | None) -> tuple[Decimal, Decimal]:
    if first is None or second is None:  # ExitPlan's constructor makes this impossible
        raise InvalidDataError("exit plan is missing a price or distance")
    return first, second
