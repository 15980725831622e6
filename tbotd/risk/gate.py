"""The risk guard's gate: one symbol's actions as the guard lets them through (pure).

Called on each symbol's actions in symbol order after :func:`tbotd.risk.guard.observe`: while a
rule is tripped (or the operator halted) an entry becomes a hold of kind ``risk_halted``; an
entry that would break the gross or per-symbol exposure cap or the entries-per-day limit becomes
one of kind ``risk_limit``. Closes and stop moves always pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from tbotd.domain.actions import Action, ClosePosition, Hold, HoldKind, OpenPosition
from tbotd.risk.guard import RiskLimits, RiskState, describe, pct


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the exposure caps read: the book's equity, the notional of every open position
    (``gross``, after the entries gated before this one) and this symbol's own."""

    equity: Decimal
    gross: Decimal = Decimal(0)
    own: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Gated:
    """The actions let through, the new state, and the book's gross notional after them."""

    state: RiskState
    actions: list[Action] = field(default_factory=list)
    gross: Decimal = Decimal(0)


def gate(
    state: RiskState,
    limits: RiskLimits,
    actions: Sequence[Action],
    exposure: Exposure,
    entry_notional: Decimal = Decimal(0),
) -> Gated:
    """``actions`` for one symbol as the guard lets them be: entries refused while blocked or
    beyond a limit (``entry_notional``: the entry's value in the settlement currency)."""
    out: list[Action] = []
    closes_own = any(isinstance(a, ClosePosition) for a in actions)
    gross = exposure.gross - (exposure.own if closes_own else Decimal(0))
    for action in actions:
        if not isinstance(action, OpenPosition):
            out.append(action)
            continue
        refused = _refusal(state, limits, action, exposure, entry_notional, closes_own)
        if refused is not None:
            out.append(refused)
            continue
        out.append(action)
        gross += entry_notional
        if limits.max_entries_per_day is not None:  # counted only where it is a limit
            state = replace(state, entries_today=state.entries_today + 1)
    return Gated(state, out, gross)


def _refusal(
    state: RiskState,
    limits: RiskLimits,
    action: OpenPosition,
    exposure: Exposure,
    notional: Decimal,
    closes_own: bool,
) -> Hold | None:
    symbol = action.symbol
    blocked = state.blocking(symbol)
    if blocked is not None:
        why = f"not opening {action.side}: risk guard: {describe(blocked)}"
        return Hold(symbol, why, HoldKind.RISK_HALTED)
    side = action.side
    cap = limits.max_entries_per_day
    if cap is not None and state.entries_today >= cap:
        why = f"{state.entries_today} entries today (max_entries_per_day {cap})"
        return Hold(symbol, f"not opening {side}: {why}", HoldKind.RISK_LIMIT)
    why = _over_exposed(limits, exposure, notional, closes_own)
    if why:
        return Hold(symbol, f"not opening {side}: {why}", HoldKind.RISK_LIMIT)
    return None


def _over_exposed(
    limits: RiskLimits, exposure: Exposure, notional: Decimal, closes_own: bool
) -> str:
    """Why an entry of ``notional`` breaks an exposure cap ("" when it does not)."""
    one, all_ = limits.max_symbol_exposure, limits.max_gross_exposure
    if one is None and all_ is None:
        return ""
    equity = exposure.equity
    if equity <= 0:
        return "no equity to measure exposure against"
    if one is not None and notional / equity > one:
        return f"{pct(notional / equity)} of equity > max_symbol_exposure {pct(one)}"
    if all_ is not None:
        gross = exposure.gross - (exposure.own if closes_own else Decimal(0)) + notional
        if gross / equity > all_:
            return f"gross exposure {pct(gross / equity)} > max_gross_exposure {pct(all_)}"
    return ""
