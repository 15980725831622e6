"""The position rules every directional strategy shares (README: Strategies; README: Protection): a
pure function.

No I/O, no clock, no globals: given a signal source's :class:`~tbotd.strategy.signal.Vote` for
the candle that just closed, the current position, equity, mark price, the market's rules and
the config, :func:`decide_vote` returns the actions for that symbol:

- an abstaining source (degraded ML, indicator warm-up, ML abstaining under ``replace``) takes
  no new risk and never flattens: existing positions keep their exchange-side TP/SL;
- ``confidence >= threshold`` is required to act; below it nothing changes;
- flat with sufficient confidence closes (``on_neutral = "close"``) or holds;
- the same side as the open position holds (or refreshes TP/SL when configured);
- the opposite side closes, then opens the new side (a flip), as one decision;
- entries are capped per hour, sized from equity and rounded down, protected by bounded TP/SL.

Every hold says why as a :class:`~tbotd.domain.actions.HoldKind`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from tbotd.domain.actions import (
    Action,
    ClosePosition,
    Direction,
    ExitPlan,
    Hold,
    HoldKind,
    MoveProtection,
    OpenPosition,
)
from tbotd.domain.enums import Side
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import MarketSpec
from tbotd.domain.positions import HeldPosition
from tbotd.domain.prediction import Prediction
from tbotd.strategy.exits import ExitParams, Protection, plan_exits, protective_prices
from tbotd.strategy.kinds import OnNeutral
from tbotd.strategy.signal import Vote
from tbotd.strategy.sizing import position_size

ENTRY_WINDOW = timedelta(hours=1)  # max_entries_per_hour counts the entries decided in it
_SIDE_OF = {Direction.LONG: Side.LONG, Direction.SHORT: Side.SHORT}


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    """The position rules' knobs, from the strategy and execution sections of the config
    (built by :func:`tbotd.strategy.build.rules_config`)."""

    threshold: float
    on_neutral: OnNeutral
    refresh_exits_on_hold: bool
    position_fraction: Decimal
    leverage: Decimal
    exits: ExitParams
    cost_rate: Decimal = Decimal(0)  # fee + slippage + buffer, fraction of notional
    # per symbol: a flood of flips is capped (README: Protection)
    max_entries_per_hour: int = 1_000_000


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """Everything the rules may look at for one symbol after one closed candle.

    ``prediction`` is the ML prediction for that candle (None when no source produced one);
    ``equity`` is in the settlement currency; ``entries_last_hour`` counts the entries decided
    for this symbol on the candles of the hour before this one.
    """

    symbol: str
    prediction: Prediction | None
    position: HeldPosition | None
    equity: Decimal
    mark_price: Decimal
    market: MarketSpec
    entries_last_hour: int = 0


def decide_vote(inp: DecisionInput, vote: Vote, cfg: ManagerConfig) -> list[Action]:
    """The actions for one symbol: open, close, flip (close + open), move stops, or hold."""
    pos, direction = inp.position, vote.direction
    if direction is Direction.ABSTAIN:
        why = "no opinion (degraded or abstaining signal)"
        if pos is not None:
            why += ", position keeps its exchange-side TP/SL"
        return [Hold(inp.symbol, why, HoldKind.ABSTAIN)]
    if vote.confidence < cfg.threshold:
        why = f"confidence {vote.confidence:.3f} < threshold {cfg.threshold}"
        return [Hold(inp.symbol, why, HoldKind.BELOW_THRESHOLD)]
    if direction is Direction.FLAT:
        return [_flat(inp, cfg)]
    side = _SIDE_OF[direction]
    if pos is not None and pos.side is side:
        if cfg.refresh_exits_on_hold:
            return [_refresh(inp, vote, pos, cfg)]
        return [Hold(inp.symbol, f"already {side}", HoldKind.ALREADY_IN_POSITION)]
    actions: list[Action] = []
    if pos is not None:  # a flip closes even when the entry cap then refuses the new side
        actions.append(ClosePosition(inp.symbol, pos.side, pos.qty, f"flip to {side}"))
    actions.append(_open(inp, vote, side, cfg))
    return actions


def _flat(inp: DecisionInput, cfg: ManagerConfig) -> Action:
    """A confident flat signal: close (``on_neutral = "close"``), or hold."""
    pos = inp.position
    if pos is not None and cfg.on_neutral is OnNeutral.CLOSE:
        return ClosePosition(inp.symbol, pos.side, pos.qty, "confident neutral")
    why = "flat signal" + (", on_neutral = hold" if pos else "")
    return Hold(inp.symbol, why, HoldKind.FLAT_SIGNAL)


def _open(inp: DecisionInput, vote: Vote, side: Side, cfg: ManagerConfig) -> Action:
    """Open ``side`` sized from equity, or hold with the reason it cannot be opened."""
    if inp.entries_last_hour >= cfg.max_entries_per_hour:
        return Hold(
            inp.symbol,
            f"not opening {side}: {inp.entries_last_hour} entries in the last hour "
            f"(max_entries_per_hour {cfg.max_entries_per_hour})",
            HoldKind.ENTRY_CAP,
        )
    size = position_size(
        inp.market, inp.equity, cfg.position_fraction, cfg.leverage, inp.mark_price, cfg.cost_rate
    )
    if not size.ok:
        return Hold(inp.symbol, f"not opening {side}: {size.refusal}", HoldKind.SIZE_REFUSED)
    plan = plan_exits(vote.exits, cfg.exits)
    try:  # the exits must make sense around the current price before we commit
        planned = _prices(inp, plan, side, cfg, inp.mark_price)
    except InvalidDataError as e:
        return Hold(
            inp.symbol,
            f"not opening {side}: {plan.source} exits unusable: {e}",
            HoldKind.EXITS_UNUSABLE,
        )
    if planned.clamps:
        plan = replace(plan, clamps=planned.clamps)
    return OpenPosition(inp.symbol, side, size.qty, plan, f"{side} at {vote.confidence:.3f}")


def _refresh(inp: DecisionInput, vote: Vote, pos: HeldPosition, cfg: ManagerConfig) -> Action:
    """New TP/SL around the current mark price for a position that keeps its direction."""
    plan = plan_exits(vote.exits, cfg.exits)
    try:
        prices = _prices(inp, plan, pos.side, cfg, pos.entry_price)
    except InvalidDataError as e:
        return Hold(
            inp.symbol,
            f"already {pos.side}; exits not refreshed: {e}",
            HoldKind.EXITS_NOT_REFRESHED,
        )
    if (prices.stop_loss, prices.take_profit) == (pos.stop_loss, pos.take_profit):
        return Hold(inp.symbol, f"already {pos.side}; exits unchanged", HoldKind.EXITS_UNCHANGED)
    return MoveProtection(
        inp.symbol, prices.stop_loss, prices.take_profit, "refresh on hold", prices.clamps
    )


def _prices(
    inp: DecisionInput, plan: ExitPlan, side: Side, cfg: ManagerConfig, entry: Decimal
) -> Protection:
    """The bounded TP/SL ``plan`` gives around the mark, for a position entered at ``entry``."""
    market = inp.market
    return protective_prices(
        plan, side, inp.mark_price, market.tick_size, cfg.exits.bounds, market.market_type, entry
    )
