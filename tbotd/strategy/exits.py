"""Take-profit and stop-loss maths (DESIGN §2), always from the actual fill price.

Priority of sources: absolute prices from the prediction; else the predicted volatility ``sd``
(SL = entry × (1 ∓ k_sl·sd), TP = entry × (1 ± k_tp·sd)); else fixed percentages from config.
Prices are rounded to the tick and validated: a long's stop is below its entry and its take-profit
above (the reverse for a short); anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tbotd.domain.actions import ExitPlan, ExitSource
from tbotd.domain.enums import Side
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.prediction import Prediction
from tbotd.domain.values import round_to_tick

_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class ExitParams:
    """The config knobs for exits: volatility multipliers and fixed percentages."""

    k_sl: Decimal
    k_tp: Decimal
    stop_loss_pct: Decimal
    take_profit_pct: Decimal


@dataclass(frozen=True, slots=True)
class Protection:
    """Validated protective prices for a position."""

    stop_loss: Decimal
    take_profit: Decimal


def plan_exits(prediction: Prediction, params: ExitParams) -> ExitPlan:
    """Choose how the new position will be protected, from the best source the prediction has."""
    if prediction.stop_loss is not None and prediction.take_profit is not None:
        return ExitPlan(
            ExitSource.PREDICTION,
            stop_loss=prediction.stop_loss,
            take_profit=prediction.take_profit,
        )
    if prediction.sd is not None:
        sd = Decimal(repr(prediction.sd))
        return ExitPlan(
            ExitSource.VOLATILITY, sl_distance=params.k_sl * sd, tp_distance=params.k_tp * sd
        )
    return fixed_exits(params)


def fixed_exits(params: ExitParams) -> ExitPlan:
    """The configured fixed-percentage exits (also the fallback when others are unusable)."""
    return ExitPlan(
        ExitSource.FIXED,
        sl_distance=params.stop_loss_pct / _HUNDRED,
        tp_distance=params.take_profit_pct / _HUNDRED,
    )


def protective_prices(plan: ExitPlan, side: Side, entry: Decimal, tick: Decimal) -> Protection:
    """TP/SL for a position entered at ``entry``, rounded to ``tick``; raises if on a wrong side."""
    if plan.source is ExitSource.PREDICTION:
        stop, take = _both(plan.stop_loss, plan.take_profit)
    else:
        sl_distance, tp_distance = _both(plan.sl_distance, plan.tp_distance)
        stop = entry * (1 - side.sign * sl_distance)
        take = entry * (1 + side.sign * tp_distance)
    return validate_protection(side, entry, round_to_tick(stop, tick), round_to_tick(take, tick))


def validate_protection(
    side: Side, reference: Decimal, stop_loss: Decimal, take_profit: Decimal
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
    return Protection(stop_loss, take_profit)


def _both(first: Decimal | None, second: Decimal | None) -> tuple[Decimal, Decimal]:
    if first is None or second is None:  # ExitPlan's constructor makes this impossible
        raise InvalidDataError("exit plan is missing a price or distance")
    return first, second
