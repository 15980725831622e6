"""Driving the exact step over a history: every bar (the reference) or only the bars where
something can happen (the fast path), with the same result.

:func:`run_reference` calls :meth:`~tbotd.backtest.engine.Simulator.step` for every bar.
:func:`run_fast` calls it only at the bars :mod:`tbotd.backtest.events` finds from the
strategy's signal (whatever its kind: the signal of every bar is known before the run, and the
rules' decision between two such bars provably holds) and copies the unchanged state over the
bars in between. ``tests/unit/test_backtest_fastpath.py`` proves the two equal, per kind.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from tbotd.backtest.engine import Progress, Simulator
from tbotd.backtest.events import FIRST_WINDOW, EventIndex, first_crossing
from tbotd.backtest.state import Deferred
from tbotd.domain.enums import Side
from tbotd.execution import paper_model as pm
from tbotd.strategy.kinds import OnNeutral
from tbotd.strategy.signal import ABSTAIN
from tbotd.strategy.sizing import may_size


def run_reference(sim: Simulator) -> None:
    """Every bar through the exact step: the straightforward loop the fast path must equal."""
    for i in range(sim.n):
        sim.step(i)
    sim.finish()


def _levels(p: pm.PaperPosition) -> tuple[float | None, float | None]:
    """Float copies of the adverse level reached first (SL or liquidation) and the take-profit."""
    adverse = [float(x) for x in (p.liquidation_price, p.stop_loss) if x is not None]
    level = None
    if adverse:
        level = max(adverse) if p.side is Side.LONG else min(adverse)
    return level, None if p.take_profit is None else float(p.take_profit)


def event_index(sim: Simulator) -> EventIndex:
    """The next-event lookups for this simulator's signal and rules."""
    result = sim.series.result
    signal = result.direction.copy()
    confidence = np.where(signal == ABSTAIN, np.nan, result.confidence)
    funding_bar = sim.close_ms % (8 * 3_600_000) == 0
    cfg = sim.cfg
    return EventIndex.build(
        signal,
        confidence,
        cfg.threshold,
        cfg.on_neutral is OnNeutral.CLOSE,
        cfg.refresh_exits_on_hold,
        funding_bar,
    )


def _deferrable(sim: Simulator) -> Decimal | None:
    """The equity, when every entry this account may be refused is certainly a refusal for
    size (else None): flat, its own wallet, no risk guard, under the hourly entry cap (the count
    only falls while flat). Nothing changes such an account until it trades (no position: no
    exit, no funding), so its refusals can be recorded without stepping. Asked only once this
    very wallet was refused for size: a healthy account never pays for the check."""
    wallet = sim.wallet
    if sim.refused_for_size is not wallet or wallet.positions or not sim.own_wallet:
        return None
    if sim.gate is not None or len(sim.entries) >= sim.cfg.max_entries_per_hour:
        return None
    return wallet.balance


def _may_size(sim: Simulator, equity: Decimal, bars: NDArray[np.int64] | int) -> NDArray[np.bool_]:
    """Whether an entry decided at each of ``bars`` may be sized (a superset: where False, the
    exact sizing at that bar's mark — the next open — certainly refuses)."""
    cfg = sim.cfg
    marks = sim.c.open[bars + 1]
    return may_size(sim.market, equity, cfg.position_fraction, cfg.leverage, cfg.cost_rate, marks)


def _refuse(sim: Simulator, bars: list[int], equity: Decimal) -> None:
    """Refusals for size at ``bars``, kept as the exact step keeps them (their actions worked
    out when read, :class:`~tbotd.backtest.state.Deferred`)."""
    if bars:  # (no key for none, as the exact step leaves it)
        sim.decided.append(Deferred(tuple(bars), sim.decider, equity))
        sim.skipped["manager_refused"] += len(bars)


def _after_refusals(sim: Simulator, events: EventIndex, at: int) -> int:
    """The first flat decision bar from ``at`` on that is not certainly a refusal for size.

    The ones before it are recorded as refusals without stepping (:func:`_deferrable`,
    :func:`_may_size`): a blown account's are most of a busy year's decisions. Searched in
    growing windows, and only once the first bar is such a refusal, so a healthy account pays
    nothing for it.
    """
    last = sim.n - 1  # the last bar decides nothing (no next open to fill at)
    equity = _deferrable(sim) if at < last else None
    if equity is None or _may_size(sim, equity, at):
        return at
    refused: list[int] = []
    lo, width = at, FIRST_WINDOW
    while lo < last:
        hi = min(lo + width, last)
        span = np.arange(lo, hi)
        bars = span[events.flat[lo:hi] == span]
        ok = _may_size(sim, equity, bars)
        if ok.any():
            k = int(ok.argmax())
            refused.extend(bars[:k].tolist())
            _refuse(sim, refused, equity)
            return int(bars[k])
        refused.extend(bars.tolist())
        lo, width = hi, width * 4
    _refuse(sim, refused, equity)
    return events.decision(None, last)


def run_fast(sim: Simulator, progress: Progress | None = None) -> None:
    """The exact step only where something can happen; the same result as :func:`run_reference`."""
    events = event_index(sim)
    n, start, reported = sim.n, 0, 0
    low, high = sim.c.low, sim.c.high
    while start < n:
        position = sim.position()
        hit = n
        if position is None:
            at = _after_refusals(sim, events, events.decision(None, start))
        else:
            at = min(events.decision(position.side, start), events.funding.item(start))
            adverse, take = _levels(position)
            hit = first_crossing(low, high, start, min(at, n - 1) + 1, position.side, adverse, take)
            at = min(at, hit)
        sim.record(start, min(at, n))
        if at >= n:
            break
        sim.step(at, may_exit=hit == at, decides=events.decides)
        start = at + 1
        if progress is not None and start - reported >= n // 100:
            progress(start, n)
            reported = start
    sim.finish()
    if progress is not None:
        progress(n, n)
