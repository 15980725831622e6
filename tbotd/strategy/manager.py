"""The ML directional manager (DESIGN §2): a pure function from facts to actions.

No I/O, no clock, no globals: given the prediction for the candle that just closed, the current
position, equity, mark price, the market's rules and the config, :func:`decide` returns the list
of actions for that symbol. The same function drives the daemon and the backtest.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tbotd.config.settings import OnNeutral, Settings
from tbotd.domain.actions import (
    Action,
    ClosePosition,
    ExitSource,
    Hold,
    MoveProtection,
    OpenPosition,
)
from tbotd.domain.enums import PredictionSource, Side, Signal
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import MarketSpec
from tbotd.domain.positions import Position
from tbotd.domain.prediction import Prediction
from tbotd.strategy.exits import ExitParams, plan_exits, protective_prices
from tbotd.strategy.sizing import position_size

_SIDE_OF = {Signal.LONG: Side.LONG, Signal.SHORT: Side.SHORT}


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
                strategy.k_sl, strategy.k_tp, strategy.stop_loss_pct, strategy.take_profit_pct
            ),
            cost_rate=(execution.taker_fee_bps + execution.slippage_bps + execution.size_buffer_bps)
            / 10_000,
        )


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """Everything the manager may look at for one symbol after one closed candle.

    ``prediction`` is None when no source produced one (degraded); ``equity`` is in the
    settlement currency.
    """

    symbol: str
    prediction: Prediction | None
    position: Position | None
    equity: Decimal
    mark_price: Decimal
    market: MarketSpec


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
    if pos is not None:
        actions.append(ClosePosition(inp.symbol, pos.side, pos.qty, f"flip to {side}"))
    actions.append(_open(inp, p, side, cfg))
    return actions


def _open(inp: DecisionInput, p: Prediction, side: Side, cfg: ManagerConfig) -> Action:
    """Open ``side`` sized from equity, or hold with the reason it cannot be opened."""
    plan = plan_exits(p, cfg.exits)
    if plan.source is ExitSource.PREDICTION:
        try:  # absolute prices must make sense around the current price before we commit
            protective_prices(plan, side, inp.mark_price, inp.market.tick_size)
        except InvalidDataError as e:
            return Hold(inp.symbol, f"not opening {side}: prediction exits unusable: {e}")
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
        prices = protective_prices(plan, pos.side, inp.mark_price, inp.market.tick_size)
    except InvalidDataError as e:
        return Hold(inp.symbol, f"already {pos.side}; exits not refreshed: {e}")
    if (prices.stop_loss, prices.take_profit) == (pos.stop_loss, pos.take_profit):
        return Hold(inp.symbol, f"already {pos.side}; exits unchanged")
    return MoveProtection(inp.symbol, prices.stop_loss, prices.take_profit, "refresh on hold")
