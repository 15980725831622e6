"""One 5-minute cycle: closed candles → predictions → decisions → orders → records.

The order matches the backtest exactly (exit priority: README: Strategies): the broker first
settles what happened inside the candle that just closed (stops, targets, liquidation, funding),
then the predictions for that candle are made, then the strategy (``build_strategy``: its signal
source over the candles and the prediction, then the shared position rules) decides at the close and
the broker fills at the next price. Each candle of each symbol is decided at most once, even
across restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from tbotd.config.settings import Settings
from tbotd.daemon.cycle_ports import Feed, Outcome, Predictor
from tbotd.daemon.histories import Histories
from tbotd.daemon.monitor import ModelMonitor
from tbotd.daemon.risk import RiskKeeper
from tbotd.domain.actions import Action, ClosePosition
from tbotd.domain.enums import OrderRole
from tbotd.domain.errors import FatalError, StorageUnavailableError
from tbotd.domain.market import Candle
from tbotd.domain.positions import Position, notional
from tbotd.domain.prediction import Prediction
from tbotd.domain.values import datetime_to_ms, timeframe_ms
from tbotd.execution.broker import Broker
from tbotd.execution.executor import ActionResult, execute
from tbotd.execution.order_round import order_round, orders_sent
from tbotd.ops.clock import Clock
from tbotd.ops.logs import get_logger
from tbotd.risk.gate import Exposure
from tbotd.store import Store
from tbotd.strategy.build import build_strategy
from tbotd.strategy.rules import ENTRY_WINDOW, DecisionInput
from tbotd.strategy.strategy import Strategy

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SymbolResult:
    """What happened to one symbol in one cycle."""

    symbol: str
    prediction: Prediction | None
    results: tuple[ActionResult, ...] = ()
    skipped: str = ""


@dataclass(slots=True)
class CycleReport:
    """The facts of one cycle, for the log line, the metrics and `/status`."""

    candle_time: datetime
    symbols: list[SymbolResult] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    equity: Decimal | None = None

    @property
    def decisions(self) -> int:
        """Symbols decided this cycle."""
        return sum(1 for s in self.symbols if not s.skipped)

    @property
    def orders_ok(self) -> bool:
        """Every action was carried out."""
        return all(r.done for s in self.symbols for r in s.results)


class Cycle:
    """Runs cycles for one tbotd instance; everything it touches is passed in."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        feed: Feed,
        broker: Broker,
        predictor: Predictor,
        clock: Clock,
    ) -> None:
        self.settings, self.store, self.feed, self.broker = settings, store, feed, broker
        self.predictor, self.clock = predictor, clock
        self.use_strategy(build_strategy(settings))
        self.risk = RiskKeeper(store, settings.risk.limits())
        self.histories = Histories(store, settings.exchange.timeframe, settings.daemon.history_bars)
        self.symbols = list(settings.exchange.symbols)
        self.last: CycleReport | None = None
        self.monitor: ModelMonitor | None = None  # grades predictions after each cycle (app)
        self._failing: set[str] = set()  # symbols whose last decision failed

    def use_strategy(self, strategy: Strategy) -> None:
        """Decide with ``strategy`` from the next cycle on (start-up, and SIGHUP reload)."""
        self.strategy = strategy
        self.session = strategy.session()
        self._meta_error_said = False

    async def run(self, candle_time: datetime) -> CycleReport:
        """Decide the candle that opened at ``candle_time`` for every symbol."""
        report = CycleReport(candle_time)
        lap = _Lap(report)
        wait = self.settings.daemon.candle_wait_s
        candles = await self.feed.wait_closed(candle_time, self.clock.wall_seconds(wait))
        report.missing = [s for s in self.symbols if s not in candles]
        for symbol in report.missing:
            self.store.record_event(
                self.clock.now(),
                "candle-missing",
                f"no closed candle for {candle_time.isoformat()}",
                symbol,
            )
        await asyncio.gather(*(self.broker.on_closed_candle(c) for c in candles.values()))
        lap("candles")
        histories = {s: self.histories.upto(s, candle_time) for s in sorted(candles)}
        outcomes = await self.predictor.predict(histories, candle_time) if histories else {}
        now = self.clock.now()
        with self.store.transaction():
            for made in outcomes.values():
                self.store.record_prediction(made.prediction, made.latency_ms, now)
        if self.monitor is not None:  # recorded as the model said (graded), acted on if healthy
            outcomes = self.monitor.health.gate(outcomes)
        lap("predict")
        equity = await self.broker.equity()
        positions = self._managed(await self.broker.positions())
        close_ms = datetime_to_ms(candle_time) + timeframe_ms(self.settings.exchange.timeframe)
        if self.risk.observe(close_ms, equity.total).flatten:  # asked until the book is flat
            if positions:
                report.symbols.extend(await self._flatten(positions, close_ms, candle_time))
                equity, positions = await self.broker.equity(), await self.broker.positions()
                positions = self._managed(positions)
            self.risk.flatten_reported(close_ms, self._held(positions))
        lap("risk")
        gross = sum((self._notional(p) for p in positions.values()), Decimal(0))
        share = equity.total / len(self.symbols)
        each = _Round(candle_time, outcomes, positions, share, Exposure(equity.total, gross))
        report.symbols.extend(await self._decide_and_send(sorted(candles), each, histories))
        lap("decide+execute")
        after = await self.broker.equity()
        report.equity = after.total
        self.store.record_equity(
            self.clock.now(), after.currency, after.balance, after.unrealized_pnl
        )
        lap("record")
        self._grade(report)
        self.last = report
        self._log(report)
        return report

    async def _decide_and_send(
        self, symbols: list[str], each: _Round, histories: Mapping[str, Sequence[Candle]]
    ) -> list[SymbolResult]:
        """Decide every symbol, one after another (the guard's caps are shared), recorded in
        one commit — one disk sync before the first order, not one per symbol (each is a few
        milliseconds with ``synchronous=FULL``) — then send each symbol's orders from its own
        task; bookkeeping waits for every symbol's orders (:mod:`tbotd.execution.order_round`).
        """
        with self.store.transaction():
            planned = [self._decide_one(symbol, each, histories[symbol]) for symbol in symbols]
        with order_round(symbols):
            done = await asyncio.gather(
                *(self._execute(plan, each.candle_time) for plan in planned),
                return_exceptions=True,
            )
        for result in done:  # every task has finished: a failure cannot orphan an order
            if isinstance(result, BaseException):
                raise result
        return [r for r in done if isinstance(r, SymbolResult)]

    def _grade(self, report: CycleReport) -> None:
        """Grade the predictions whose horizon has passed, after the orders went out: its time
        is reported as ``monitor`` beside ``total`` (the decision's), and its failure is logged,
        never the cycle's."""
        if self.monitor is None:
            return
        start = time.perf_counter()
        try:
            status = getattr(self.predictor, "status", None)
            self.monitor.run(self.clock.now(), status() if status is not None else None)
        except Exception:  # a full disk too: the next tick sees store.unwritable and says so
            log.exception("grading predictions failed", candle=report.candle_time.isoformat())
        report.timings_ms["monitor"] = round((time.perf_counter() - start) * 1000, 2)

    def _decide(
        self,
        symbol: str,
        candle_time: datetime,
        prediction: Prediction | None,
        positions: Mapping[str, Position],
        equity_share: Decimal,
        history: Sequence[Candle],
        exposure: Exposure,
    ) -> tuple[list[Action] | None, Exposure]:
        """The strategy's actions for ``symbol`` as the risk guard lets them through, recorded
        (None: this candle was already decided before a restart)."""
        if self.store.decision_exists(symbol, candle_time):
            return None, exposure
        position = positions.get(symbol)
        mark = self.feed.price(symbol).price
        market = self.broker.market(symbol)
        inp = DecisionInput(
            symbol,
            prediction,  # the neutral fallback's is the degraded state: ML abstains
            position,
            equity_share,
            mark,
            market,
            self.store.entries_decided(symbol, candle_time - ENTRY_WINDOW, candle_time),
        )
        decision = self.session.decide(inp, history)
        self._say_meta_error()
        own = Decimal(0) if position is None else self._notional(position)
        with self.store.transaction():  # the guard's entry count and the decision: one commit
            gated = self.risk.gate(decision.actions, replace(exposure, own=own), market, mark)
            self.store.record_decision(
                symbol, candle_time, gated.actions, self.clock.now(), decision.trace
            )
        return gated.actions, replace(exposure, gross=gated.gross)

    def _say_meta_error(self) -> None:
        """One ``meta-label-unusable`` event per strategy (start-up, each reload) whose
        meta-label model would not load: its setups are all vetoed, which must not be silent."""
        meta = self.strategy.meta
        if meta is None or self._meta_error_said or meta.scorer.error is None:
            return
        self._meta_error_said = True
        self.store.record_event(
            self.clock.now(), "meta-label-unusable", meta.scorer.error, error=meta.scorer.error
        )

    def _decide_one(
        self, symbol: str, each: _Round, history: Sequence[Candle]
    ) -> tuple[str, Prediction | None, list[Action] | None, str]:
        """One symbol's decision in its own savepoint: an unexpected error in it (a strategy's
        bug, data it cannot use) undoes and skips that symbol only, said as a
        ``decide-failed`` event — the other symbols still decide and trade, and every position
        keeps its exchange-side stop. A full disk or a fatal error still ends the cycle."""
        outcome = outcome_of(each.outcomes.get(symbol))
        guard, said = self.risk.state, self._meta_error_said  # what the savepoint's undo undoes
        try:
            with self.store.transaction():
                actions, each.exposure = self._decide(
                    symbol,
                    each.candle_time,
                    outcome,
                    each.positions,
                    each.share,
                    history,
                    each.exposure,
                )
        except (StorageUnavailableError, FatalError):
            raise
        except Exception as e:  # one symbol's fault must not stop the others
            if not self.store.in_transaction:
                raise  # the error ended the cycle's transaction: nothing is kept, fail the cycle
            self.risk.state, self._meta_error_said = guard, said  # as the database has them
            why = f"decision failed: {type(e).__name__}: {e}"
            candle = each.candle_time.isoformat()
            if symbol in self._failing:  # the traceback was logged at its first failure
                log.warning(why, symbol=symbol, candle=candle)
            else:
                log.exception("decision failed", symbol=symbol, candle=candle)
                self._failing.add(symbol)
            self.store.record_event(self.clock.now(), "decide-failed", why, symbol)
            return symbol, outcome, None, why
        self._failing.discard(symbol)
        return symbol, outcome, actions, ""

    async def _execute(
        self,
        plan: tuple[str, Prediction | None, list[Action] | None, str],
        candle_time: datetime,
    ) -> SymbolResult:
        symbol, prediction, actions, failed = plan
        try:
            if actions is None:
                skipped = failed or "already decided (restart)"
                return SymbolResult(symbol, prediction, skipped=skipped)
            results = await execute(self.broker, actions, candle_time)
            return SymbolResult(symbol, prediction, tuple(results))
        finally:
            orders_sent(symbol)  # done (or nothing to send): nobody's bookkeeping waits for it

    async def _flatten(
        self, positions: Mapping[str, Position], close_ms: int, candle_time: datetime
    ) -> list[SymbolResult]:
        """The risk guard says flatten: close every position (its TP/SL cancelled with it). A
        close that fails is a result, not an error (:func:`execute`), so the others are still
        closed and the guard asks again at the next close."""
        self.risk.flatten_retry(close_ms, positions)
        out = []
        for symbol in sorted(positions):
            p = positions[symbol]
            close = ClosePosition(symbol, p.side, p.qty, "risk guard: flatten")
            results = await execute(self.broker, [close], candle_time)
            out.append(SymbolResult(symbol, None, tuple(results), skipped="risk guard: flatten"))
        return out

    def _held(self, positions: Mapping[str, Position]) -> set[str]:
        """The managed symbols the book is not flat on: a position, or an entry of ours whose
        outcome is not known yet (the repair loop may still adopt its position)."""
        entries = {o.symbol for o in self.store.live_orders() if o.role is OrderRole.ENTRY}
        return set(positions) | (entries & set(self.symbols))

    def _managed(self, positions: dict[str, Position]) -> dict[str, Position]:
        """The positions on the symbols this daemon trades: one on a symbol the venue stopped
        trading (left out at start, its event says so) keeps its exchange-side stop, and no
        cycle can act on it."""
        return {s: p for s, p in positions.items() if s in self.symbols}

    def _notional(self, position: Position) -> Decimal:
        """A position's value at the current price, in the settlement currency."""
        market = self.broker.market(position.symbol)
        price = self.feed.price(position.symbol).price
        return notional(market.market_type, position.qty, market.contract_size, price)

    def _log(self, report: CycleReport) -> None:
        """One rich line per cycle: what was predicted, decided and done, and how long it took."""
        log.info(
            "cycle",
            candle=report.candle_time.isoformat(),
            decisions=report.decisions,
            missing=report.missing,
            sources={s.symbol: s.prediction.source.value for s in report.symbols if s.prediction},
            signals={
                s.symbol: f"{s.prediction.signal.value}@{s.prediction.confidence:.2f}"
                for s in report.symbols
                if s.prediction
            },
            actions={
                s.symbol: [
                    f"{type(r.action).__name__}:{'ok' if r.done else 'failed'}" for r in s.results
                ]
                or [s.skipped]
                for s in report.symbols
            },
            equity=str(report.equity),
            ms=report.timings_ms,
        )


def outcome_of(outcome: Outcome | None) -> Prediction | None:
    """The prediction an outcome carries (None when no source produced one)."""
    return None if outcome is None else outcome.prediction


@dataclass(slots=True)
class _Round:
    """What every symbol's decision at one close shares; ``exposure`` is threaded from one
    decision to the next."""

    candle_time: datetime
    outcomes: Mapping[str, Outcome]
    positions: Mapping[str, Position]
    share: Decimal
    exposure: Exposure


class _Lap:
    """Accumulates named timings (wall-clock milliseconds) into a report."""

    def __init__(self, report: CycleReport) -> None:
        self._report, self._t = report, time.perf_counter()
        self._start = self._t

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self._report.timings_ms[name] = round((now - self._t) * 1000, 2)
        self._report.timings_ms["total"] = round((now - self._start) * 1000, 2)
        self._t = now
