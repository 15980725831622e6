"""Driving the exact step over a history: every bar (the reference) or only the bars where
something can happen (the fast path), with the same result.

:func:`run_reference` calls :meth:`~tbotd.backtest.engine.Simulator.step` for every bar.
:func:`run_fast` calls it only at the bars :mod:`tbotd.backtest.events` finds from the
strategy's signal (whatever its kind: the signal of every bar is known before the run, and the
rules' decision between two such bars provably holds) and copies the unchanged state over the
bars in between. ``tests/unit/test_backtest_fastpath.py`` proves the two equal, per kind.
"""

from __future__ import annotations

import numpy as np

from tbotd.backtest.engine import Progress, Simulator
from tbotd.backtest.events import FIRST_WINDOW, EventIndex, first_crossing
from tbotd.domain.enums import Side
from tbotd.execution import paper_model as pm
from tbotd.strategy.kinds import OnNeutral
from tbotd.strategy.signal import ABSTAIN


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


def _after_refusals(sim: Simulator, events: EventIndex, at: int) -> int:
    """The first flat decision bar from ``at`` on that is not certainly a refusal for size.

    The ones before it are recorded as refusals without stepping (:meth:`Simulator.deferrable`,
    :meth:`Simulator.may_size`): a blown account's are most of a busy year's decisions. Searched
    in growing windows, and only once the first bar is such a refusal, so a healthy account
    pays one check per entry.
    """
    last = sim.n - 1  # the last bar decides nothing (no next open to fill at)
    equity = sim.deferrable() if at < last else None
    if equity is None or sim.may_size(equity, at):
        return at
    refused: list[int] = []
    lo, width = at, FIRST_WINDOW
    while lo < last:
        hi = min(lo + width, last)
        span = np.arange(lo, hi)
        bars = span[events.flat[lo:hi] == span]
        ok = sim.may_size(equity, bars)
        if ok.any():
            k = int(ok.argmax())
            refused.extend(bars[:k].tolist())
            sim.refuse_from(refused, equity)
            return int(bars[k])
        refused.extend(bars.tolist())
        lo, width = hi, width * 4
    sim.refuse_from(refused, equity)
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
            at = min(events.decision(position.side, start), int(events.funding[start]))
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
