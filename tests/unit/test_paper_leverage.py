"""A paper position keeps the leverage it was opened with: a reload of `execution.leverage`
changes what opens next, never an open position's margin or liquidation price, restarts
included."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tbotd.domain import ExitPlan, ExitSource, Side
from tbotd.execution.paper import PaperBroker
from tbotd.execution.paper_model import FillParams
from tests.contract.harness import EXITS, FEE_BPS, LINEAR, STEP, PaperHarness

SYM = LINEAR.symbol
FIXED = ExitPlan(ExitSource.FIXED, sl_distance=Decimal("0.01"), tp_distance=Decimal("0.02"))
QUIET = ("20000", "20050", "19950", "20000")


class Levered(PaperHarness):
    """The contract harness's paper broker at ``leverage`` (what the config says at start)."""

    leverage = Decimal(3)

    def _broker(self) -> PaperBroker:
        broker = super()._broker()
        broker.retune(FillParams(taker_fee_bps=FEE_BPS, leverage=self.leverage), EXITS)
        return broker


async def test_a_leverage_reload_then_a_restart_leaves_an_open_position_as_it_was(
    tmp_path: Path,
) -> None:
    """Opened at 3×, the config reloaded to 10× (its stop moved since, so it was saved again),
    the daemon restarted at 10×: the position is still 3× with its liquidation price."""
    h = Levered(LINEAR, [QUIET] * 4, tmp_path / "p.sqlite")
    await h.start()
    await h.next_candle()
    await h.broker.open_position(SYM, Side.LONG, Decimal("0.1"), FIXED, h.candle_time - STEP)
    before = (await h.broker.positions())[SYM]
    assert before.leverage == 3
    assert before.liquidation_price is not None
    h.broker.retune(FillParams(taker_fee_bps=FEE_BPS, leverage=Decimal(10)), EXITS)
    await h.broker.move_protection(SYM, Decimal(19_850), Decimal(20_400), h.candle_time)
    h.leverage = Decimal(10)
    await h.restart()
    after = (await h.broker.positions())[SYM]
    assert (after.leverage, after.liquidation_price) == (3, before.liquidation_price)
    assert after.stop_loss == 19_850
    await h.close()
