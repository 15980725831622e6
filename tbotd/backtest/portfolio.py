"""Several symbols from one wallet, in the daemon's order, with the risk guard.

At every close the daemon settles every symbol (exits, funding), observes the risk guard with the
book's equity, flattens if it says so, then decides the symbols one after another (in symbol
order), each sized from an equal share of the equity taken once before the first decision, each
entry passed through the guard's gate, the fills in that order. :class:`Portfolio` does the same
with one :class:`~tbotd.backtest.engine.Simulator` per symbol sharing one wallet, stepping a
symbol only at the bars where something can happen to it (:mod:`tbotd.backtest.events`), and
the guard only where it can change: every bar a symbol is stepped, the bar after (the decisions
moved the balance), each UTC day's first bar (daily rules), a cooldown's end, and — while
positions are open — the bars where a float scan of the equity finds the drawdown or the day's
loss may pass its limit (confirmed in exact Decimal there; the equity peak between two such bars
is taken exactly at the float maximum). A one-symbol run without a guard equals
:func:`~tbotd.backtest.drive.run_fast` (``tests/unit/test_portfolio_backtest.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from tbotd.backtest.drive import _levels, event_index
from tbotd.backtest.engine import Progress, Simulator
from tbotd.backtest.events import EventIndex, first_crossing
from tbotd.domain.actions import Action, ClosePosition, OpenPosition
from tbotd.domain.enums import MarketType, Side
from tbotd.domain.positions import notional
from tbotd.execution import paper_model as pm
from tbotd.risk import guard
from tbotd.risk.gate import Exposure, gate
from tbotd.risk.guard import DAY_MS, Change, Closed, RiskLimits, RiskState

TOLERANCE = 1e-9  # relative: the float scan selects a superset of the exact trips


@dataclass(slots=True)
class _Leg:
    """One symbol's place in the run: where its record stands and its next event."""

    sim: Simulator
    events: EventIndex
    start: int = 0  # first bar not yet recorded
    at: int = -1  # next bar it must be stepped at (-1: to be computed)
    hit: int = -1  # the bar a resting level may be reached (its exit test runs only there)
    seen: int = 0  # its trades the guard has heard of


class Portfolio:
    """The daemon's cycle over aligned histories of several symbols (sorted by symbol)."""

    def __init__(self, sims: Sequence[Simulator], limits: RiskLimits, first_bar: int = 0) -> None:
        self.legs = [_Leg(s, event_index(s)) for s in sorted(sims, key=lambda s: s.symbol)]
        self.by_symbol = {leg.sim.symbol: leg for leg in self.legs}
        self.markets = {leg.sim.symbol: leg.sim.market for leg in self.legs}
        self.n = self.legs[0].sim.n
        self.close_ms = self.legs[0].sim.close_ms
        self.limits = limits
        self.guarded = limits.active
        self.state = RiskState()
        self.changes: list[Change] = []
        self.first = first_bar
        self.wake = first_bar  # the next bar the guard must look at
        self.observed = first_bar  # bars before it are folded into the state's peak
        self.exposure = Exposure(Decimal(0))
        days = self.close_ms // DAY_MS
        self.day_first = np.flatnonzero(np.diff(days) != 0) + 1
        self.day_at = 0  # the first entry of day_first not before the current bar
        for leg in self.legs:
            if self.guarded:
                leg.sim.gate = self._gate

    @property
    def wallet(self) -> pm.Wallet:
        """The shared wallet."""
        return self.legs[0].sim.wallet

    # -- the loop -----------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> None:
        """Every bar where something can happen, in the daemon's order; then the end of data."""
        n, t, reported = self.n, 0, 0
        while t < n:
            at = min(self._next(leg) for leg in self.legs)
            if self.guarded:
                at = min(at, self._wake(t, at))
            if at >= n:
                break
            self._bar(at)
            t = at + 1
            if progress is not None and t - reported >= n // 100:
                progress(t, n)
                reported = t
        for leg in self.legs:
            leg.sim.record(leg.start, n)
            leg.sim.finish()
        if progress is not None:
            progress(n, n)

    def _next(self, leg: _Leg) -> int:
        """The next bar ``leg`` must be stepped at (cached until its state changes)."""
        if leg.at >= 0:
            return leg.at
        sim, events, start, n = leg.sim, leg.events, leg.start, self.n
        position = sim.position()
        hit = n
        if start >= n:
            at = n
        elif position is None:
            at = events.decision(None, start)
        else:
            at = min(events.decision(position.side, start), int(events.funding[start]))
            adverse, take = _levels(position)
            low, high = sim.c.low, sim.c.high
            hit = first_crossing(low, high, start, min(at, n - 1) + 1, position.side, adverse, take)
            at = min(at, hit)
        leg.at, leg.hit = at, hit
        return at

    def _bar(self, i: int) -> None:
        """Candle ``i`` closed: settle, observe the guard, flatten, decide (in symbol order)."""
        stepped = [leg for leg in self.legs if leg.at == i]
        if self.guarded and i >= self.first:
            self._fold(i)
        for leg in stepped:
            leg.sim.record(leg.start, i)
            leg.sim.settle(i, may_exit=leg.hit == i)
            leg.sim.record(i, i + 1)
            leg.start, leg.at = i + 1, -1
        if i + 1 >= self.n:
            return
        if self.guarded and i >= self.first:
            self._observe(i)
        deciding = [leg for leg in stepped if self._decides(leg, i)]
        if not deciding:
            return
        equity = self._equity(i)
        share = equity / len(self.legs)
        if self.guarded:
            gross = sum((self._notional(leg.sim, i) for leg in self.legs), Decimal(0))
            self.exposure = Exposure(equity, gross)
        for leg in deciding:
            leg.sim.decide_after(i, share)
            leg.at = -1
        if self.limits.watches_equity and not self.wallet.positions and self._trips_flat():
            self.wake = i + 1  # the fills moved the balance past a limit: the next close trips

    @staticmethod
    def _decides(leg: _Leg, i: int) -> bool:
        position = leg.sim.position()
        return leg.events.decides(None if position is None else position.side, i)

    # -- the risk guard -----------------------------------------------------------------------

    def _observe(self, i: int) -> None:
        """The guard at bar ``i``'s close, with the trades closed since it last looked."""
        closed: list[Closed] = []
        for leg in self.legs:
            trades = leg.sim.trades
            closed.extend(
                Closed(t.symbol, int(t.exit_time.timestamp() * 1000), t.exit_reason)
                for t in trades[leg.seen :]
            )
            leg.seen = len(trades)
        seen = guard.observe(
            self.state, self.limits, int(self.close_ms[i]), self._equity(i), closed
        )
        self.state = seen.state
        self.changes.extend(seen.changes)
        self.observed = i + 1
        self.wake = self.n
        if seen.flatten:
            self._flatten(i)
            self.state = guard.after_flatten(self.state, ())  # simulated closes never fail

    def _flatten(self, i: int) -> None:
        """Close every position at the next open, as the daemon's flatten does (whose pending
        flatten ends at once too: the book it reports is flat)."""
        self.wake = i + 1
        for leg in self.legs:
            sim = leg.sim
            if sim.position() is None:
                continue
            sim.record(leg.start, i + 1)
            leg.start, leg.at = i + 1, -1
            sim.close(
                sim.mark(i),
                int(sim.c.open_ms[i + 1]),
                pm.ExitReason.DECISION,
                slip=True,
                label="decision",
            )

    def _gate(self, sim: Simulator, actions: list[Action], mark: Decimal) -> list[Action]:
        """One symbol's actions through the guard, the book's exposure carried along."""
        market = sim.market
        entry = next((a for a in actions if isinstance(a, OpenPosition)), None)
        value = Decimal(0)
        if entry is not None:
            value = notional(market.market_type, entry.qty, market.contract_size, mark)
        own = Decimal(0)
        position = sim.position()
        if position is not None and any(isinstance(a, ClosePosition) for a in actions):
            own = notional(market.market_type, position.qty, market.contract_size, mark)
        gated = gate(self.state, self.limits, actions, replace(self.exposure, own=own), value)
        self.state = gated.state
        self.exposure = replace(self.exposure, gross=gated.gross)
        return gated.actions

    def _trips_flat(self) -> bool:
        """With no position open the equity is the balance: would it trip a rule?"""
        state, limits, equity = self.state, self.limits, self.wallet.balance
        peak = equity if state.peak is None or equity > state.peak else state.peak
        dd, loss, start = limits.max_drawdown, limits.daily_loss, state.day_start
        if dd is not None and peak > 0 and (peak - equity) / peak > dd:
            return True
        return (
            loss is not None and start is not None and start > 0 and (start - equity) / start > loss
        )

    def _wake(self, t: int, limit: int) -> int:
        """The first bar in ``[t, limit)`` where the guard must look (else ``limit``)."""
        wake = max(self.wake, self.first, t)
        if self.limits.daily:
            days = self.day_first  # t only grows: walk a pointer instead of searching
            while self.day_at < len(days) and days[self.day_at] < t:
                self.day_at += 1
            if self.day_at < len(days):
                wake = min(wake, max(int(days[self.day_at]), self.first))
        untils = [trip.until_ms for trip in self.state.trips if trip.until_ms is not None]
        if untils:
            expiry = int(np.searchsorted(self.close_ms, min(untils)))
            wake = min(wake, max(expiry, self.first, t))
        stop = min(wake, limit, self.n - 1)
        if self.limits.watches_equity and self.wallet.positions and max(t, self.first) < stop:
            wake = min(wake, self._scan(max(t, self.first), stop))
        return min(wake, limit)

    def _scan(self, a: int, b: int) -> int:
        """The first bar in ``[a, b)`` whose float equity may trip drawdown or daily loss."""
        e = self._float_equity(a, b)
        state, limits = self.state, self.limits
        peak = np.maximum.accumulate(e)
        if state.peak is not None:
            peak = np.maximum(peak, float(state.peak))
        maybe = np.zeros(len(e), dtype=bool)
        if limits.max_drawdown is not None:
            maybe |= (peak - e) > (float(limits.max_drawdown) - TOLERANCE) * peak
        if limits.daily_loss is not None and state.day_start is not None:
            start = float(state.day_start)
            maybe |= (start - e) > (float(limits.daily_loss) - TOLERANCE) * start
        k = int(maybe.argmax())
        return a + k if maybe[k] else b

    def _fold(self, i: int) -> None:
        """Take the equity peak of the bars since the last look (``[observed, i)``) exactly."""
        a = self.observed
        if a >= i or self.state.peak is None:
            return
        b = min(i, self.n - 1)
        if a >= b:
            return
        if not self.wallet.positions:
            best = self.wallet.balance
        else:
            e = self._float_equity(a, b)
            top = float(e.max())
            if top < float(self.state.peak) * (1 - TOLERANCE):
                return  # no bar comes near the peak: nothing exact to compute
            near = np.flatnonzero(e >= top - abs(top) * TOLERANCE)
            best = max(self._equity(a + int(k)) for k in near)
        if best > self.state.peak:
            self.state = replace(self.state, peak=best)

    def _equity(self, i: int) -> Decimal:
        """The book's exact equity at bar ``i``'s close, marked at the next opens."""
        wallet = self.wallet
        equity = wallet.balance
        if wallet.positions:
            marks = {s: self.by_symbol[s].sim.mark(i) for s in wallet.positions}
            equity += pm.unrealized(wallet, self.markets, marks)
        return equity

    def _float_equity(self, a: int, b: int) -> NDArray[np.float64]:
        """The book's equity for bars ``[a, b)`` in float64 (the positions stay as they are)."""
        e = np.full(b - a, float(self.wallet.balance))
        for symbol, p in self.wallet.positions.items():
            sim = self.by_symbol[symbol].sim
            mark = sim.c.open[a + 1 : b + 1]
            size = (1 if p.side is Side.LONG else -1) * float(p.qty * sim.market.contract_size)
            entry = float(p.entry_price)
            if sim.market.market_type is MarketType.LINEAR:
                e += size * (mark - entry)
            else:
                e += size * (1 / entry - 1 / mark)
        return e

    def _notional(self, sim: Simulator, i: int) -> Decimal:
        p = sim.position()
        if p is None:
            return Decimal(0)
        market = sim.market
        return notional(market.market_type, p.qty, market.contract_size, sim.mark(i))
