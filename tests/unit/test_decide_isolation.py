"""One symbol's failing decision is that symbol's alone: the daemon's cycle skips it, says so,
and the other symbols still decide and trade."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tbotd.domain import Candle
from tbotd.domain.markets import KNOWN_MARKETS
from tbotd.domain.notices import EventRecord, NoticeKind, Severity
from tbotd.notify.classify import notice_for
from tbotd.store import Store
from tbotd.strategy.rules import DecisionInput
from tbotd.strategy.strategy import Decision, Session
from tests.unit.backtest_support import settings
from tests.unit.cycle_support import daemon_cycles
from tests.unit.test_backtest_paper_parity import daemon_predictions
from tests.unit.test_portfolio_backtest import BTC, ETH, two_symbols, with_risk


async def test_a_symbol_whose_decision_fails_is_skipped_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ETH's strategy raises at every close: ETH is skipped with a ``decide-failed`` event (a
    cycle warning naming it), BTC still decides and trades, and no cycle fails."""
    real = Session.decide

    def decide(self: Session, inp: DecisionInput, history: Sequence[Candle]) -> Decision:
        if inp.symbol == ETH:
            raise ValueError("indicator window is empty")
        return real(self, inp, history)

    monkeypatch.setattr(Session, "decide", decide)
    frames, preds, funding = two_symbols(3)
    frames = {s: f.head(120) for s, f in frames.items()}  # enough closes to trade on
    preds = {s: p.head(120) for s, p in preds.items()}
    config = with_risk(settings(execution={"position_fraction": "0.9"}), (BTC, ETH))
    markets = {s: KNOWN_MARKETS[s] for s in (BTC, ETH)}
    predict = {s: daemon_predictions(preds[s], s) for s in frames}
    trades, _, _ = await daemon_cycles(frames, predict, config, markets, funding, tmp_path / "d.db")
    assert trades
    assert {t.symbol for t in trades} == {BTC}
    store = Store.open(tmp_path / "d.db")
    failed = store.events("decide-failed")
    assert len(failed) == len(frames[BTC]) - 1  # every cycle, none of them failed
    assert {e["symbol"] for e in failed} == {ETH}
    assert store.query("SELECT COUNT(*) AS n FROM decisions WHERE symbol = ?", (ETH,))[0]["n"] == 0
    event = EventRecord.of(datetime.now(UTC), "decide-failed", failed[0]["message"], ETH, {})
    notice = notice_for(event)
    assert notice is not None
    assert (notice.kind, notice.severity) == (NoticeKind.CYCLE, Severity.WARNING)
    assert notice.text.startswith(f"{ETH}: decision failed: ValueError: indicator window is empty")
    store.close()
