"""One symbol's failing decision is that symbol's alone: the daemon's cycle skips it, says so,
and the other symbols still decide and trade."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tbotd.domain import Candle
from tbotd.domain.actions import OpenPosition
from tbotd.domain.markets import KNOWN_MARKETS
from tbotd.domain.notices import EventRecord, NoticeKind, Severity
from tbotd.notify.classify import notice_for
from tbotd.store import Store, Trade
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


async def test_a_failed_decision_leaves_no_phantom_entry_in_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ETH's decision fails after the risk guard counted its entry (its record cannot be
    written): the count is undone with it, so BTC may still make every entry the daily limit
    allows — the same trades as when ETH wants nothing at all."""
    frames, preds, funding = two_symbols(3)
    frames = {s: f.head(120) for s, f in frames.items()}
    preds = {s: p.head(120) for s, p in preds.items()}
    markets = {s: KNOWN_MARKETS[s] for s in (BTC, ETH)}
    quiet = {BTC: daemon_predictions(preds[BTC], BTC), ETH: {}}

    async def run(limit: int, predict: dict[str, Any], name: str) -> list[Trade]:
        config = with_risk(
            settings(execution={"position_fraction": "0.9"}), (BTC, ETH), max_entries_per_day=limit
        )
        trades, _, _ = await daemon_cycles(
            frames, predict, config, markets, funding, tmp_path / name
        )
        return trades

    alone = await run(1000, quiet, "a.db")
    assert len(alone) >= 2
    limit = len(alone)  # every BTC entry, none to spare
    expected = await run(limit, quiet, "b.db")
    assert expected == alone
    real = Store.record_decision

    def record(self: Store, symbol: str, *args: Any, **kw: Any) -> None:
        if symbol == ETH and any(isinstance(a, OpenPosition) for a in args[1]):
            raise TypeError("Object of type float32 is not JSON serializable")
        real(self, symbol, *args, **kw)

    monkeypatch.setattr(Store, "record_decision", record)
    both = {s: daemon_predictions(preds[s], s) for s in frames}
    assert await run(limit, both, "c.db") == alone
