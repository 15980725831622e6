"""Paper mode settles every candle, also those the cycle never handed to the broker (the daemon
was down, a cycle overran the next close): stops, targets and funding in them count, once
(RELIABILITY finding 44)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest

from tbotd.daemon.app import paper_funding
from tbotd.domain import Candle, ExitPlan, ExitSource, Side
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.positions import funding_amount
from tbotd.domain.values import book
from tbotd.execution.paper_settle import Hole, catch_up
from tbotd.execution.venue import CcxtVenue
from tbotd.ops.clock import ManualClock
from tbotd.store import Store
from tests.contract.harness import FUNDING_RATE, LINEAR, STEP, T0, Bar, PaperHarness

SYM = LINEAR.symbol
FIXED = ExitPlan(ExitSource.FIXED, sl_distance=Decimal("0.01"), tp_distance=Decimal("0.02"))
QTY = Decimal("0.1")
QUIET = ("20000", "20050", "19950", "20000")  # touches neither the 19,800 stop nor 20,400
CROSS = ("20000", "20010", "19700", "19750")  # through the 19,800 stop
DIP = ("20000", "20010", "19850", "19900")  # under 19,900, above 19,800

Paper = Callable[..., Awaitable[PaperHarness]]


@pytest.fixture
async def paper(tmp_path: Path) -> AsyncIterator[Paper]:
    """``await paper(*bars)``: the paper broker over scripted candles (the contract harness)."""
    started: list[PaperHarness] = []

    async def start(*bars: Bar) -> PaperHarness:
        h = PaperHarness(LINEAR, bars, tmp_path / "paper.sqlite")
        await h.start()
        started.append(h)
        return h

    yield start
    for h in started:
        await h.close()


async def closes(h: PaperHarness, *, handed: bool = True, stored: bool = True) -> Candle:
    """The next candle closes: the feed stores it; the cycle hands it to the broker unless
    ``handed`` is False (down, or a cycle overran)."""
    await h.next_candle()
    if stored:
        h.store.record_candles([h.candle])
    if handed:
        return await h.finish()
    await h.clock.set(h.candle.close_time)
    return h.candle


async def enter(h: PaperHarness) -> None:
    """A long of QTY at the first candle's open (stop 19,800, target 20,400), that candle
    settled and decided as a cycle does."""
    await h.next_candle()
    h.store.record_candles([h.candle])
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time - STEP)
    await h.finish()
    decide(h)


def decide(h: PaperHarness) -> None:
    """The cycle's decision on the candle just settled (recorded after its settlement)."""
    h.store.record_decision(SYM, h.candle_time, [], h.clock.now())


async def test_a_stop_crossed_in_a_candle_never_handed_closes_at_the_stop_then(
    paper: Paper,
) -> None:
    """A stop crossed in a candle the cycle skipped closes the position at the stop, at that
    candle's time (it stayed open before)."""
    h = await paper(QUIET, CROSS, QUIET)
    await enter(h)
    missed = await closes(h, handed=False)
    await closes(h)
    [trade] = h.store.trades()
    assert (trade.exit_reason, trade.exit_price, trade.exit_time) == (
        "stop_loss",
        Decimal(19800),
        missed.open_time,
    )
    assert await h.broker.positions() == {}
    assert h.store.live_orders() == []


async def test_a_restart_after_downtime_finds_the_stop_crossed_while_down(paper: Paper) -> None:
    """A new process over the same database settles the candles that closed while it was down:
    the stop crossed then closes the position at that candle."""
    h = await paper(QUIET, CROSS, QUIET)
    await enter(h)
    await h.restart()  # the daemon stops ...
    missed = await closes(h, handed=False)  # ... this candle closes while it is down ...
    await closes(h)  # ... and the first cycle after the start hands this one
    [trade] = h.store.trades()
    assert (trade.exit_reason, trade.exit_time) == ("stop_loss", missed.open_time)
    assert await h.broker.positions() == {}


async def test_funding_in_missed_candles_is_charged_once_even_across_a_restart(
    paper: Paper,
) -> None:
    """The 08:00 funding inside skipped candles is charged; a restart that settles those
    candles again (the cycle that settled them died before deciding) does not charge it twice."""
    h = await paper(*[QUIET] * 15)  # candle 11 (07:55) closes at 08:00, a funding time
    await enter(h)
    before = (await h.broker.equity()).balance
    for _ in range(12):
        await closes(h, handed=False)
    await closes(h)  # settles candles 1..12, then 13; no decision recorded after candle 0
    m = LINEAR.market
    paid = book(
        funding_amount(m.market_type, Side.LONG, QTY, m.contract_size, Decimal(20000), FUNDING_RATE)
    )
    assert [r["time"] for r in h.store.query("SELECT time FROM funding")] == [
        int((T0 + 12 * STEP).timestamp() * 1000)
    ]
    assert (await h.broker.equity()).balance == before + paid
    await h.restart()  # the watermark is candle 0's decision: 1..13 are settled again
    await closes(h)
    assert len(h.store.query("SELECT * FROM funding")) == 1
    assert (await h.broker.equity()).balance == before + paid
    assert h.store.wallet_balance(LINEAR.market.settle) == before + paid


async def test_a_funding_time_before_the_position_opened_is_not_charged_by_a_catch_up(
    paper: Paper,
) -> None:
    """A skipped candle closing at 08:00, a position opened at 08:05 (a late decision's entry):
    the catch-up does not charge it the 08:00 funding (its trade would book none)."""
    h = await paper(*[QUIET] * 15)
    await h.next_candle()
    h.store.record_candles([h.candle])
    await h.finish()
    decide(h)  # candle 0 settled and decided, flat
    for _ in range(12):
        await closes(h, handed=False)  # candles 1..12; candle 11 closes at 08:00
    await h.next_candle()  # candle 13 opens at 08:05: the late entry fills now
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time - STEP)
    after_entry = (await h.broker.equity()).balance
    h.store.record_candles([h.candle])
    await h.finish()  # candles 1..12 settled with the position present, then 13
    assert h.store.query("SELECT * FROM funding") == []
    assert (await h.broker.equity()).balance == after_entry


async def test_a_stop_moved_after_a_candle_is_not_applied_to_that_candle(paper: Paper) -> None:
    """A stop raised by a candle's decision is not checked against that candle when a restart
    hands it again, only against the candles after it."""
    h = await paper(QUIET, DIP, DIP)
    await enter(h)
    decided = await closes(h)  # low 19,850: above the 19,800 stop
    decide(h)
    await h.broker.move_protection(SYM, Decimal(19900), Decimal(20400), decided.open_time)
    await h.restart()
    await h.broker.on_closed_candle(decided)  # the cycle re-runs the decided close
    assert SYM in await h.broker.positions()
    after = await closes(h)  # low 19,850 again: the raised stop is in place for this one
    [trade] = h.store.trades()
    assert (trade.exit_price, trade.exit_time) == (Decimal(19900), after.open_time)


async def test_candles_missing_from_the_store_are_said_not_passed_over(paper: Paper) -> None:
    """A span of candles the database lacks, while a paper position was open, records one
    ``paper-unchecked`` event naming the symbol and the span."""
    h = await paper(QUIET, CROSS, CROSS, QUIET)
    await enter(h)
    gone = await closes(h, handed=False, stored=False)
    await closes(h, handed=False, stored=False)
    await closes(h)
    [event] = h.store.events("paper-unchecked")
    assert event["symbol"] == SYM
    assert json.loads(event["data"]) == {
        "start": gone.open_time.isoformat(),
        "end": (gone.open_time + 2 * STEP).isoformat(),
        "count": 2,
    }
    assert SYM in await h.broker.positions()  # nothing invented over the hole


async def test_contiguous_candles_read_nothing_more(
    paper: Paper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual close (the next candle, or a flat symbol) costs no extra query."""
    h = await paper(QUIET, QUIET, QUIET, QUIET, QUIET)
    reads: list[datetime] = []
    real = h.store.candles_between

    def counted(symbol: str, timeframe: str, start: datetime, end: datetime) -> list[Candle]:
        reads.append(start)
        return real(symbol, timeframe, start, end)

    monkeypatch.setattr(h.store, "candles_between", counted)
    await closes(h)
    await closes(h, handed=False)
    await closes(h)  # flat: nothing to settle in the skipped candle
    await enter_now(h)
    await closes(h)
    assert reads == []


async def enter_now(h: PaperHarness) -> None:
    """A long at the open of the next candle, settled (as :func:`enter`, later in the script)."""
    await h.next_candle()
    await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time - STEP)
    await h.finish()


def test_the_plan_settles_stored_candles_in_order_and_names_each_hole() -> None:
    """Between the last candle settled and the one handed: stored candles oldest first, a hole
    wherever the store has none (before, between and after them)."""
    bars = [Candle(SYM, "5m", T0 + i * STEP, *QUIET, "1") for i in range(8)]
    plan = catch_up(bars[0].open_time, bars[7], [bars[4], bars[2], bars[3]])

    def hole(first: int, end: int) -> Hole:
        return Hole(SYM, "5m", bars[first].open_time, bars[end].open_time)

    assert plan == [hole(1, 2), bars[2], bars[3], bars[4], hole(5, 7)]
    assert [p.count for p in plan if isinstance(p, Hole)] == [1, 2]
    assert catch_up(bars[0].open_time, bars[1], []) == []


class _GarbageVenue:
    """A venue whose funding history answers a value that is not a number."""

    async def funding_rate_at(self, symbol: str, at: datetime) -> Decimal | None:
        raise InvalidDataError(f"{symbol} fundingRate 'abc' at {at} is not a number")


async def test_a_funding_rate_the_venue_garbles_is_skipped_and_said_not_an_error(
    tmp_path: Path,
) -> None:
    """Paper funding whose rate the venue answers with garbage: skipped for that time with a
    ``funding-unknown`` event, not an error that would stop every later cycle at that candle."""
    store = Store.open(tmp_path / "f.sqlite")
    funding = paper_funding(cast("CcxtVenue", _GarbageVenue()), store, ManualClock(T0))
    assert await funding(SYM, T0) is None
    assert [e["kind"] for e in store.events()] == ["funding-unknown"]
    store.close()
