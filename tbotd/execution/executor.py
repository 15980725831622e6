"""Carrying out the manager's actions through a Broker, and saying what happened.

A refusal (too small, not enough margin) ends that action with a reason, never the cycle; an order
whose outcome is unknown has been resolved inside the broker before this returns. Only errors
that mean "stop" propagate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tbotd.domain.actions import Action, ClosePosition, Hold, MoveProtection, OpenPosition
from tbotd.domain.errors import OutcomeUnknownError, RejectedError, RetryableError
from tbotd.execution.broker import Broker
from tbotd.ops.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """One action and how it ended: ``done`` or not, and a human reason."""

    action: Action
    done: bool
    detail: str


async def execute(
    broker: Broker, actions: Sequence[Action], candle_time: datetime
) -> list[ActionResult]:
    """Apply ``actions`` in order; a failed close stops the rest (a flip must not double up)."""
    results: list[ActionResult] = []
    for action in actions:
        result = await _apply(broker, action, candle_time)
        results.append(result)
        if isinstance(action, ClosePosition) and not result.done:
            results.extend(
                ActionResult(a, done=False, detail="skipped: the close before it failed")
                for a in actions[len(results) :]
            )
            break
    return results


async def _apply(broker: Broker, action: Action, candle_time: datetime) -> ActionResult:
    try:
        if isinstance(action, OpenPosition):
            position = await broker.open_position(
                action.symbol, action.side, action.qty, action.exits, candle_time
            )
            return ActionResult(
                action,
                done=True,
                detail=f"{position.side} {position.qty} at {position.entry_price}, "
                f"SL {position.stop_loss} TP {position.take_profit}",
            )
        if isinstance(action, ClosePosition):
            trade = await broker.close_position(action.symbol, action.reason, candle_time)
            detail = "already flat" if trade is None else f"closed at {trade.exit_price}"
            return ActionResult(action, done=True, detail=detail)
        if isinstance(action, MoveProtection):
            await broker.move_protection(
                action.symbol, action.stop_loss, action.take_profit, candle_time
            )
            return ActionResult(
                action, done=True, detail=f"SL {action.stop_loss} TP {action.take_profit}"
            )
        if isinstance(action, Hold):
            return ActionResult(action, done=True, detail=action.reason)
    except (RejectedError, RetryableError, OutcomeUnknownError) as e:
        log.warning(
            "action not carried out",
            symbol=action.symbol,
            action=type(action).__name__,
            error=str(e),
        )
        return ActionResult(action, done=False, detail=f"{type(e).__name__}: {e}")
    raise TypeError(f"unknown action {action!r}")  # pragma: no cover - Action is a closed union
