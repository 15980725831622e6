"""Fills from long ago: the venue answers 7 days of fills per request, the books need them all."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tbotd.domain import Side
from tests.contract.harness import LINEAR, STEP, LiveHarness
from tests.contract.test_broker_contract import FIXED, QTY, QUIET

SYM = LINEAR.symbol
DAYS = 9
SL_CANDLE = ("20000", "20010", "19700", "19750")  # reaches the stop at 19,800


async def test_a_stop_that_rests_for_nine_days_is_booked_with_its_fills(tmp_path: Path) -> None:
    """A stop that fires 9 days after its entry: the trade has the venue's exit price and PnL."""
    quiet = [QUIET] * (DAYS * 288 + 2)
    h = LiveHarness(LINEAR, [*quiet, SL_CANDLE, QUIET], tmp_path / "live.sqlite")
    await h.start()
    try:
        await h.next_candle()
        await h.broker.open_position(SYM, Side.LONG, QTY, FIXED, h.candle_time)
        h.index = len(quiet)  # the stop's candle, 9 days later
        await h.sim.advance_to(h.candle_time - STEP, step_s=3600)
        await h.sim.advance_to(h.candle_time)
        await h.finish()
        [trade] = h.store.trades(SYM)
        assert trade.exit_time - trade.entry_time > timedelta(days=DAYS)
        assert trade.exit_price == Decimal(19800)
        assert await h.broker._venue.positions([SYM]) == {}
        assert trade.pnl == (Decimal(19800) - Decimal(20000)) * QTY
    finally:
        await h.close()
