"""Which candles the paper broker must settle: the one handed, and any it was never handed.

The cycle hands the broker the candle that just closed. Candles that closed while the daemon was
down, while a cycle overran the next close, or after a cycle's deadline were never handed, so a
paper stop, target or liquidation crossed inside one of them was never seen and paper results
after an outage were better than the market allowed (RELIABILITY finding 44). Live mode has the
exchange's own stops; paper has only this.

:class:`Watermarks` keeps, per symbol, the open time of the last candle settled. Before the
candle it is handed, the broker settles the stored candles after the watermark, in time order,
exactly as a current one (exits, then funding); a span the store does not hold is a
:class:`Hole`, recorded as a ``paper-unchecked`` event rather than passed over in silence. Only a
symbol with an open position reads the store (a flat one has nothing to settle, and nothing opens
without a decision), and a contiguous candle costs no query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tbotd.domain.market import Candle
from tbotd.domain.values import timeframe_delta
from tbotd.ops.logs import get_logger
from tbotd.store import Store

log = get_logger(__name__)

UNCHECKED = "paper-unchecked"  # the event kind of a hole


@dataclass(frozen=True, slots=True)
class Hole:
    """Candles of ``symbol`` opened in [``start``, ``end``) that the store does not hold: no
    stop, target, liquidation or funding was settled over them."""

    symbol: str
    timeframe: str
    start: datetime
    end: datetime

    @property
    def count(self) -> int:
        """How many candles are missing."""
        return int((self.end - self.start) / timeframe_delta(self.timeframe))


def catch_up(after: datetime, candle: Candle, stored: Iterable[Candle]) -> list[Candle | Hole]:
    """The candles opened after ``after`` and before ``candle``, oldest first, with a
    :class:`Hole` wherever ``stored`` lacks them (pure)."""
    step = timeframe_delta(candle.timeframe)
    expected, plan = after + step, list[Candle | Hole]()
    for c in sorted(stored, key=lambda c: c.open_time):
        if not expected <= c.open_time < candle.open_time:
            continue
        if c.open_time > expected:
            plan.append(Hole(candle.symbol, candle.timeframe, expected, c.open_time))
        plan.append(c)
        expected = c.close_time
    if expected < candle.open_time:
        plan.append(Hole(candle.symbol, candle.timeframe, expected, candle.open_time))
    return plan


class Watermarks:
    """Per symbol, the open time of the last candle the paper broker settled."""

    def __init__(self, marks: dict[str, datetime] | None = None) -> None:
        self._marks = dict(marks or {})

    @classmethod
    def recovered(cls, store: Store, symbols: Sequence[str]) -> Watermarks:
        """At start (startup is recovery): each symbol's newest candle with a recorded
        decision, so the first cycle settles every candle after it — those that closed while
        the daemon was down first of all.

        Why that candle, and why it is safe:

        * Everything up to it was settled: a cycle settles a symbol's candle before it decides
          it, and records the decision after (:meth:`tbotd.daemon.cycle.Cycle.run`).
        * A candle after it may have been settled already (a cycle killed or failed between
          settling and deciding). Settling it again is harmless: an exit it triggered left no
          position (and none opens without a decision); the stop and target, which move only by
          a decision, are the ones it was checked against; funding — the one thing the wallet
          would take twice — is charged only when no payment for that symbol and funding time
          is recorded (payment and wallet are written in one transaction).
        * No candle is checked against a stop moved after it: stops move only by a decision,
          after its own candle closed, and every decision is at or before this candle.
        * This candle, handed again (the cycle re-running a close it had already decided, after
          a restart), is not settled again: its decision may have moved the stop since.

        A symbol never decided has no watermark: its first candle starts one.
        """
        marks = {s: t for s in symbols if (t := store.last_decided(s)) is not None}
        return cls(marks)

    def done(self, candle: Candle) -> bool:
        """``candle`` is at or before the last one settled: settling it again could apply a
        stop moved after it, or charge its funding twice."""
        mark = self._marks.get(candle.symbol)
        return mark is not None and candle.open_time <= mark

    def missed(self, store: Store, candle: Candle) -> list[Candle | Hole]:
        """What lies between the last candle settled and ``candle``, oldest first: the stored
        candles and the holes between them. No query when ``candle`` is the next one."""
        mark = self._marks.get(candle.symbol)
        step = timeframe_delta(candle.timeframe)
        if mark is None or candle.open_time <= mark + step:
            return []
        first, last = mark + step, candle.open_time - step
        stored = store.candles_between(candle.symbol, candle.timeframe, first, last)
        plan = catch_up(mark, candle, stored)
        log.info(
            "paper: settling candles the cycle was not handed",
            symbol=candle.symbol,
            since=first.isoformat(),
            candles=sum(1 for p in plan if isinstance(p, Candle)),
            missing=sum(p.count for p in plan if isinstance(p, Hole)),
        )
        return plan

    def settled(self, candle: Candle) -> None:
        """``candle`` is settled: the next one settles from here."""
        self._marks[candle.symbol] = candle.open_time


def report_hole(store: Store, at: datetime, hole: Hole) -> None:
    """Say that a paper position went unchecked over ``hole`` (an operator reading paper
    results must know they are not the market's whole story there)."""
    start, end = hole.start.isoformat(), hole.end.isoformat()
    log.warning("paper: stop not checked", symbol=hole.symbol, since=start, until=end)
    store.record_event(
        at,
        UNCHECKED,
        f"{hole.count} candle(s) from {start} to {end} are not in the database: the paper "
        "stop-loss, take-profit and liquidation were not checked over them, nor funding charged",
        hole.symbol,
        start=start,
        end=end,
        count=hole.count,
    )
