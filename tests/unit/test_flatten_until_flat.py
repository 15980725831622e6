"""The daemon's cycle flattens until the book is flat: a drawdown trip with ``on_trip = flatten``
whose close fails (the venue busy) is retried at the next close, not left to the stop; the retry
and the end are events an operator hears of, and `/status` shows what is still open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tbotd.daemon.cycle import Cycle
from tbotd.daemon.risk import risk_status, write_command
from tbotd.domain import Candle
from tbotd.domain.actions import ExitPlan, ExitSource
from tbotd.domain.enums import OrderRole, Side
from tbotd.domain.errors import RetryableError
from tbotd.domain.markets import KNOWN_MARKETS
from tbotd.domain.notices import EventRecord, NoticeKind, Severity
from tbotd.domain.orders import OrderState
from tbotd.domain.values import datetime_to_ms
from tbotd.execution.orders import new_order
from tbotd.execution.paper import PaperBroker
from tbotd.execution.paper_model import FillParams
from tbotd.notify.classify import notice_for
from tbotd.ops.clock import ManualClock
from tbotd.store import Store, Trade
from tbotd.strategy.build import exit_params
from tests.unit.backtest_support import LINEAR_SYMBOL, predictions, settings, to_candles
from tests.unit.cycle_support import Feed, Predictor
from tests.unit.test_backtest_paper_parity import daemon_predictions
from tests.unit.test_portfolio_backtest import losing, with_risk

FLATTEN = "risk guard: flatten"
PLAN = ExitPlan(ExitSource.FIXED, sl_distance=Decimal("0.03"), tp_distance=Decimal("0.03"))
BTC = LINEAR_SYMBOL
T = datetime(2024, 3, 4, 7, 30, tzinfo=UTC)


async def no_funding(symbol: str, at: datetime) -> Decimal | None:
    """No funding in this short run."""
    del symbol, at
    return None


class BusyOnce(PaperBroker):
    """The paper broker, but the first ``fails`` flatten closes fail as a busy venue's do."""

    fails, failed = 1, 0

    async def close_position(self, symbol: str, reason: str, candle_time: datetime) -> Trade | None:
        if reason == FLATTEN and self.failed < self.fails:
            self.failed += 1
            raise RetryableError("HTTP 503: service unavailable")
        return await super().close_position(symbol, reason, candle_time)


@dataclass
class Daemon:
    """The daemon's cycle over a paper broker, one close at a time."""

    store: Store
    broker: BusyOnce
    cycle: Cycle
    feed: Feed
    clock: ManualClock
    bars: list[Candle]

    async def close(self, i: int) -> None:
        """Candle ``i`` closes: the cycle runs for it."""
        candle = self.bars[i]
        self.feed.i = i
        await self.clock.set(candle.close_time)
        self.store.record_candles([candle])
        await self.cycle.run(candle.open_time)


async def daemon(tmp_path: Path, **risk: str) -> Daemon:
    """Always long (stops 3 % away) in a market falling 0.2 % a bar, with ``risk``."""
    frame = losing()[0]
    preds = predictions(frame, dict.fromkeys(range(300), ("long", 0.9)), sd="0.02")
    config = with_risk(settings(), **risk)
    bars = to_candles(frame, BTC)
    clock = ManualClock(bars[0].open_time)
    feed, store = Feed({BTC: bars}), Store.open(tmp_path / "d.db")
    ex = config.execution
    broker = BusyOnce(
        store=store,
        markets={BTC: KNOWN_MARKETS[BTC]},
        params=FillParams(ex.slippage_bps, ex.taker_fee_bps, Decimal(ex.leverage)),
        currency=config.strategy.share_class,
        initial_balance=config.strategy.initial_capital,
        instance="flatten",
        clock=clock,
        prices=feed.price,
        funding=no_funding,
        fallback_exits=exit_params(config),
    )
    await broker.start()
    predict = Predictor({BTC: daemon_predictions(preds, BTC)})
    cycle = Cycle(config, store, feed, broker, predict, clock)
    return Daemon(store, broker, cycle, feed, clock, bars)


async def test_a_flatten_whose_close_failed_is_retried_at_the_next_close(tmp_path: Path) -> None:
    """Always long in a falling market, a 1 % drawdown limit that flattens, the first close
    refused: the position is closed by the next close's retry (a decision, not its stop), a
    ``flatten-retry`` and a ``flatten-done`` event are recorded, and the status shows the
    pending flatten and its open position in between."""
    d = await daemon(tmp_path, max_drawdown_pct="1", on_trip="flatten")
    store, broker, cycle, bars = d.store, d.broker, d.cycle, d.bars
    statuses, trip = [], None
    for i in range(len(bars) - 1):
        await d.close(i)
        statuses.append(risk_status(cycle.risk.state).get("flatten"))
        if trip is None and store.query("SELECT 1 FROM events WHERE kind = 'risk-trip'"):
            trip = i
        if trip is not None and i == trip + 1:
            break
    assert trip is not None, "the drawdown tripped"
    assert broker.failed == 1, "its flatten's first close failed"
    assert await broker.positions() == {}, "the next close retried the flatten"
    last = store.trades()[-1]
    assert last.exit_reason == "decision"
    assert datetime_to_ms(last.exit_time) == datetime_to_ms(bars[trip + 1].close_time)
    pending = statuses[trip]
    assert pending is not None
    assert (pending["by"], pending["tries"], pending["open"]) == ("max_drawdown", 1, [BTC])
    assert statuses[trip + 1] is None, "done once the book is flat"
    events = store.query("SELECT kind, message FROM events WHERE kind LIKE 'flatten-%'")
    assert [e["kind"] for e in events] == ["flatten-retry", "flatten-done"]
    assert "1 position(s) still open" in str(events[0]["message"])
    assert "after 2 close(s)" in str(events[1]["message"])
    store.close()


async def test_an_entry_not_resolved_at_the_flatten_keeps_it_asked(tmp_path: Path) -> None:
    """`tbotd halt --flatten` while an entry's outcome is unknown (the book looks flat): the
    flatten stays asked; the position the repair then adopts is closed at the next close."""
    d = await daemon(tmp_path)
    d.broker.fails = 0
    write_command(d.store, halt=True, flatten=True, at=T)
    entry = new_order("unsure", BTC, Side.LONG, OrderRole.ENTRY, Decimal("0.1"), T, T)
    d.store.record_order_intent(entry)  # as the live broker leaves an entry it cannot confirm
    await d.close(0)
    assert await d.broker.positions() == {}
    pending = risk_status(d.cycle.risk.state).get("flatten")
    d.store.update_order(entry.transition(OrderState.REJECTED, T), "resolved")
    await d.broker.open_position(BTC, Side.LONG, Decimal("0.1"), PLAN, T)  # the venue's, adopted
    await d.close(1)
    assert await d.broker.positions() == {}, "the adopted position is closed at the next close"
    assert d.store.trades()[-1].exit_reason == "decision"
    assert pending is not None, "the book looked flat, the entry made it not"
    assert (pending["by"], pending["open"]) == ("operator halt #1", [BTC])
    assert risk_status(d.cycle.risk.state)["flatten"] is None
    kinds = [r["kind"] for r in d.store.query("SELECT kind FROM events ORDER BY id")]
    assert kinds.count("flatten-retry") == 1
    assert kinds.count("flatten-done") == 1
    d.store.close()


def test_a_retried_flatten_is_said_once_per_window_and_its_end_is_said() -> None:
    """The notifier de-duplicates the retries by a fixed key (not every 5 minutes) and says
    when the book is flat."""
    at = T
    retry = [notice_for(EventRecord.of(at, "flatten-retry", f"try {k}", None, {})) for k in (2, 3)]
    assert all(n is not None and n.kind is NoticeKind.RISK_GUARD for n in retry)
    assert {n.identity for n in retry if n is not None} == {"flatten-retry"}
    done = notice_for(EventRecord.of(at, "flatten-done", "flat", None, {}))
    assert done is not None
    assert (done.kind, done.severity) == (NoticeKind.RISK_GUARD, Severity.INFO)
