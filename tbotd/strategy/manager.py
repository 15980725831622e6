"""The ML directional manager (DESIGN §2): a pure function from facts to actions.

No I/O, no clock, no globals: given the prediction for the candle that just closed, the current
position, equity, mark price, the market's rules and the config, :func:`decide` returns the list
of actions for that symbol. The same function drives the daemon and the backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from tbotd.config.settings import OnNeutral, Settings
from tbotd.domain.actions import (
    Action,
    ClosePosition,
    ExitPlan,
    Hold,
    MoveProtection,
    OpenPosition,
)
from tbotd.domain.enums import PredictionSource, Side, Signal
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import MarketSpec
from tbotd.domain.positions import Position
from tbotd.domain.prediction import Prediction
from tbotd.strategy.exits import (
    ExitBounds,
    ExitParams,
    Protection,
    plan_exits,
    protective_prices,
)
from tbotd.strategy.sizing import position_size

_SIDE_OF = {Signal.LONG: Side.LONG, Signal.SHORT: Side.SHORT}
ENTRY_WINDOW = timedelta(hours=1)  # max_entries_per_hour counts the entries decided in it


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    """The manager's knobs, taken from the strategy and execution sections of the config."""

    threshold: float
    on_neutral: OnNeutral
    refresh_exits_on_hold: bool
    position_fraction: Decimal
    leverage: Decimal
    exits: ExitParams
    cost_rate: Decimal = Decimal(0)  # fee + slippage + buffer, fraction of notional
    max_entries_per_hour: int = 1_000_000  # per symbol (DESIGN §13: a flood of flips is capped)

    @classmethod
    def from_settings(cls, settings: Settings) -> ManagerConfig:
        """The manager config of one tbotd instance."""
        strategy, execution = settings.strategy, settings.execution
        return cls(
            threshold=strategy.threshold,
            on_neutral=strategy.on_neutral,
            refresh_exits_on_hold=strategy.refresh_exits_on_hold,
            position_fraction=execution.position_fraction,
            leverage=Decimal(execution.leverage),
            exits=ExitParams(
                strategy.k_sl,
                strategy.k_tp,
                strategy.stop_loss_pct,
                strategy.take_profit_pct,
                ExitBounds(
                    min_stop=strategy.min_stop_pct / 100,
                    max_stop=strategy.max_stop_pct / 100,
                    min_take=strategy.min_take_profit_pct / 100,
                    max_take=strategy.max_take_profit_pct / 100,
                    prediction_band=strategy.prediction_price_band_pct / 100,
                    leverage=Decimal(execution.leverage),
                ),
            ),
            cost_rate=(execution.taker_fee_bps + execution.slippage_bps + execution.size_buffer_bps)
            / 10_000,
            max_entries_per_hour=strategy.max_entries_per_hour,
        )


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """Everything the manager may look at for one symbol after one closed candle.

    ``prediction`` is None when no source produced one (degraded); ``equity`` is in the
    settlement currency; ``entries_last_hour`` counts the entries decided for this symbol on the
    candles of the hour before this one.
    """

    symbol: str
    prediction: Prediction | None
    position: Position | None
    equity: Decimal
    mark_price: Decimal
    market: MarketSpec
    entries_last_hour: int = 0


def decide(inp: DecisionInput, cfg: ManagerConfig) -> list[Action]:
    """The actions for one symbol: open, close, flip (close + open), move stops, or hold."""
    p, pos = inp.prediction, inp.position
    if p is None or p.source is PredictionSource.NEUTRAL:
        why = "degraded: no model prediction"
        return [Hold(inp.symbol, why + (", position keeps its exchange-side TP/SL" if pos else ""))]
    if p.confidence < cfg.threshold:
        return [Hold(inp.symbol, f"confidence {p.confidence:.3f} < threshold {cfg.threshold}")]
    if p.signal is Signal.NEUTRAL:
        if pos is not None and cfg.on_neutral is OnNeutral.CLOSE:
            return [ClosePosition(inp.symbol, pos.side, pos.qty, "confident neutral")]
        return [Hold(inp.symbol, "neutral signal" + (", on_neutral = hold" if pos else ""))]
    side = _SIDE_OF[p.signal]
    if pos is not None and pos.side is side:
        return (
            [_refresh(inp, p, pos, cfg)]
            if cfg.refresh_exits_on_hold
            else [Hold(inp.symbol, f"already {side}")]
        )
    actions: list[Action] = []
    if pos is not None:  # a flip closes even when the entry cap then refuses the new side
        actions.append(ClosePosition(inp.symbol, pos.side, pos.qty, f"flip to {side}"))
    actions.append(_open(inp, p, side, cfg))
    return actions


def _open(inp: DecisionInput, p: Prediction, side: Side, cfg: ManagerConfig) -> Action:
    """Open ``side`` sized from equity, or hold with the reason it cannot be opened."""
    if inp.entries_last_hour >= cfg.max_entries_per_hour:
        return Hold(
            inp.symbol,
            f"not opening {side}: {inp.entries_last_hour} entries in the last hour "
            f"(max_entries_per_hour {cfg.max_entries_per_hour})",
        )
    plan = plan_exits(p, cfg.exits)
    try:  # the exits must make sense around the current price before we commit
        planned = _prices(inp, plan, side, cfg, inp.mark_price)
    except InvalidDataError as e:
        return Hold(inp.symbol, f"not opening {side}: {plan.source} exits unusable: {e}")
    if planned.clamps:
        plan = replace(plan, clamps=planned.clamps)
    size = position_size(
        inp.market, inp.equity, cfg.position_fraction, cfg.leverage, inp.mark_price, cfg.cost_rate
    )
    if not size.ok:
        return Hold(inp.symbol, f"not opening {side}: {size.refusal}")
    return OpenPosition(inp.symbol, side, size.qty, plan, f"{p.signal} at {p.confidence:.3f}")


def _refresh(inp: DecisionInput, p: Prediction, pos: Position, cfg: ManagerConfig) -> Action:
    """New TP/SL around the current mark price for a position that keeps its direction."""
    plan = plan_exits(p, cfg.exits)
    try:
        prices = _prices(inp, plan, pos.side, cfg, pos.entry_price)
    except InvalidDataError as e:
        return Hold(inp.symbol, f"already {pos.side}; exits not refreshed: {e}")
    if (prices.stop_loss, prices.take_profit) == (pos.stop_loss, pos.take_profit):
        return Hold(inp.symbol, f"already {pos.side}; exits unchanged")
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
