"""The pure parts of notifications: which events become which notices, how they read, the
severity queue, the daily summary, crash-restart marks and the ML source watch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tbotd.domain.enums import PredictionSource, Side
from tbotd.domain.notices import EventRecord, Notice, NoticeKind, Severity
from tbotd.domain.prediction import Prediction
from tbotd.notify import lifecycle
from tbotd.notify.classify import notice_for, storage_notice
from tbotd.notify.enrich import provenance_fields
from tbotd.notify.queue import SeverityQueue
from tbotd.notify.render import parse_body, render
from tbotd.notify.summary import figures, next_summary_at, summary_notice
from tbotd.predictor.outcome import PredictionOutcome, SourceFailure
from tbotd.predictor.sources import SourceWatch
from tbotd.store import Store, Trade

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
SYM = "BTC/USDT:USDT"


def event(kind: str, message: str = "m", symbol: str | None = SYM, **data: object) -> EventRecord:
    return EventRecord.of(T0, kind, message, symbol, data)


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("trade", {"reason": "stop_loss", "pnl": "-1"}, (NoticeKind.STOP_LOSS, Severity.WARNING)),
        ("trade", {"reason": "take_profit"}, (NoticeKind.TAKE_PROFIT, Severity.INFO)),
        ("trade", {"reason": "liquidation"}, (NoticeKind.LIQUIDATION, Severity.CRITICAL)),
        ("trade", {"reason": "decision"}, (NoticeKind.CLOSE, Severity.INFO)),
        ("trade", {"reason": "unprotectable"}, (NoticeKind.CLOSE, Severity.CRITICAL)),
        ("protect", {}, (NoticeKind.PROTECTION, Severity.CRITICAL)),
        ("protected", {}, (NoticeKind.PROTECTION, Severity.INFO)),
        ("paper-unchecked", {"count": 3}, (NoticeKind.PROTECTION, Severity.WARNING)),
        ("adopt", {}, (NoticeKind.RECONCILIATION, Severity.WARNING)),
        ("alert", {"kind_detail": "suspended"}, (NoticeKind.ALERT, Severity.CRITICAL)),
        ("entries-refused", {}, (NoticeKind.ALERT, Severity.CRITICAL)),
        ("ml_auth_failed", {}, (NoticeKind.ML_AUTH, Severity.CRITICAL)),
        ("model_state", {"state": "drifting"}, (NoticeKind.MODEL_HEALTH, Severity.WARNING)),
        ("model_state", {"state": "expired"}, (NoticeKind.MODEL_HEALTH, Severity.CRITICAL)),
        ("risk-trip", {}, (NoticeKind.RISK_GUARD, Severity.CRITICAL)),
        ("cycle-failed", {}, (NoticeKind.CYCLE, Severity.WARNING)),
    ],
)
def test_events_an_operator_must_know_become_notices(
    kind: str, data: dict[str, object], expected: tuple[NoticeKind, Severity]
) -> None:
    """Each event kind maps to its notice kind and severity."""
    notice = notice_for(event(kind, **data))
    assert notice is not None
    assert (notice.kind, notice.severity) == expected


@pytest.mark.parametrize(
    "kind", ["candle-missing", "stream-lost", "paper", "start", "notify-failed", "order"]
)
def test_routine_events_are_not_notified(kind: str) -> None:
    """Reconnects, gaps, bookkeeping and the notifier's own failures say nothing."""
    assert notice_for(event(kind)) is None


def test_cycles_missed_say_whether_the_daemon_was_down_or_a_cycle_overran() -> None:
    """Closes missed while down are said with the start; an overrun is a cycle warning that
    never claims the daemon was down (old events without a cause read as before)."""
    said = {
        cause: notice_for(event("missed-cycles", "2 cycle(s) missed", None, count=2, cause=cause))
        for cause in ("down", "overran")
    } | {"old": notice_for(event("missed-cycles", "2 cycle(s) missed", None, count=2))}
    start = (NoticeKind.START, "cycles missed while down (not replayed): 2 cycle(s) missed")
    for cause in ("down", "old"):
        notice = said[cause]
        assert notice is not None
        assert (notice.kind, notice.text) == start
    overran = said["overran"]
    assert overran is not None
    assert overran.kind is NoticeKind.CYCLE
    assert "while down" not in overran.text


def test_a_stop_loss_reads_as_one_line_with_its_fields() -> None:
    """Side, quantity, exit price, PnL and fees in the text; every fact as a field."""
    notice = notice_for(
        event(
            "trade",
            "position closed: stop_loss",
            reason="stop_loss",
            side="long",
            qty="0.01",
            exit_price="49000",
            pnl="-10.2",
            fees="0.5",
            currency="USDT",
        )
    )
    assert notice is not None
    message = render(notice, "usdt")
    assert message.title == "[usdt] WARNING stop_loss"
    text, fields = parse_body(message.body)
    assert text == f"{SYM}: stop-loss hit, long 0.01 at 49000; PnL -10.2 USDT (fees 0.5)"
    assert fields["pnl"] == "-10.2"
    assert fields["symbol"] == SYM
    assert fields["time"] == T0.isoformat()


def test_the_rate_limit_count_is_said_in_the_next_message() -> None:
    """A message after dropped ones says how many were dropped."""
    body = render(Notice(NoticeKind.ALERT, Severity.CRITICAL, "x", T0), "i", suppressed=3).body
    assert "3 earlier message(s) dropped" in body


def test_an_entry_carries_its_provenance() -> None:
    """The prediction and the decision's provenance, when the records have them."""
    fields = provenance_fields(
        {"signal": "long", "confidence": 0.9, "source": "remote", "model_version": "m1"},
        {"provenance": "boosted", "strategy": "ml_enhanced"},
    )
    assert fields == (
        ("prediction", "long 0.90 from remote (m1)"),
        ("provenance", "boosted"),
        ("strategy", "ml_enhanced"),
    )
    assert provenance_fields(None, {"actions": "[]"}) == ()


def test_a_full_queue_drops_the_least_severe_first() -> None:
    """Full of infos: a warning replaces the oldest info; another info is itself dropped."""
    q: SeverityQueue[Notice] = SeverityQueue(2, lambda n: n.severity)
    info = [Notice(NoticeKind.ALERT, Severity.INFO, f"i{i}", T0) for i in range(3)]
    warning = Notice(NoticeKind.ALERT, Severity.WARNING, "w", T0)
    assert q.put(info[0]) is None
    assert q.put(info[1]) is None
    assert q.put(warning) is info[0]
    assert q.put(info[2]) is info[2]
    assert [q.pop(), q.pop(), q.pop()] == [info[1], warning, None]


def test_storage_notices_are_one_state() -> None:
    """Down is critical, back is the normal state of the same topic."""
    down, up = storage_notice(T0, writable=False, why="disk full"), storage_notice(T0, True)
    assert (down.topic, down.state, down.severity) == ("storage", "unwritable", Severity.CRITICAL)
    assert (up.topic, up.normal) == ("storage", True)


def test_a_run_that_never_stopped_cleanly_is_a_crash_restart() -> None:
    """The mark a run leaves decides what the next start says."""
    running = lifecycle.RunMark("running", 42, T0)
    assert lifecycle.RunMark.parse(running.text()) == running
    assert lifecycle.RunMark.parse("garbage") is None
    crash = lifecycle.starting(T0, "paper", [SYM], "1.0", running)
    assert (crash.kind, crash.severity) == (NoticeKind.CRASH, Severity.WARNING)
    assert "pid 42" in crash.text
    clean = lifecycle.starting(T0, "paper", [SYM], "1.0", lifecycle.RunMark("stopped", 42, T0))
    assert clean.kind is NoticeKind.START
    assert lifecycle.starting(T0, "paper", [SYM], "1.0", None).kind is NoticeKind.START
    assert lifecycle.stopping(T0, 3, "RuntimeError: x").severity is Severity.CRITICAL


def test_the_summary_is_due_at_the_next_configured_utc_time() -> None:
    """Later today when the time has not come yet, else tomorrow."""
    assert next_summary_at(T0, "20:00") == T0.replace(hour=20)
    assert next_summary_at(T0, "12:00") == T0 + timedelta(days=1)
    assert next_summary_at(T0, "08:30") == T0.replace(hour=8, minute=30) + timedelta(days=1)


def test_the_daily_summary_adds_up_the_last_24_hours(tmp_path: Path) -> None:
    """Trades, PnL, fees, funding, equity and the prediction sources of the window only."""
    store = Store.open(tmp_path / "s.sqlite")
    for hours_ago, pnl, reason in (
        (30, "50", "take_profit"),
        (5, "-10", "stop_loss"),
        (1, "25", "x"),
    ):
        exit_time = T0 - timedelta(hours=hours_ago)
        entry_time = exit_time - timedelta(hours=1)
        store.record_trade(
            Trade(
                SYM,
                Side.LONG,
                Decimal(1),
                entry_time,
                exit_time,
                Decimal(100),
                Decimal(101),
                reason,
                Decimal(pnl),
                Decimal("0.5"),
                Decimal(0),
                "USDT",
            )
        )
    store.record_equity(T0 - timedelta(hours=25), "USDT", Decimal(1000), Decimal(0))
    store.record_equity(T0 - timedelta(minutes=5), "USDT", Decimal(1015), Decimal(0))
    for minutes, source in ((10, PredictionSource.REMOTE), (5, PredictionSource.NEUTRAL)):
        t = T0 - timedelta(minutes=minutes)
        made = Prediction.neutral(SYM, t, "r").model_copy(update={"source": source})
        store.record_prediction(made, 1.0, t)
    f = figures(store, T0, "USDT")
    assert (f.trades, f.wins, f.stops) == (2, 1, 1)
    assert (f.pnl, f.fees, f.net) == (Decimal(15), Decimal(1), Decimal(14))
    assert (f.equity, f.equity_before) == (Decimal(1015), Decimal(1000))
    assert f.sources == {"remote": 1, "neutral": 1}
    notice = summary_notice(f)
    assert notice.text == (
        "last 24 h: 2 trade(s), net 14 USDT (PnL 15, fees 1, funding 0); equity 1015 USDT (+15)"
    )
    assert dict(notice.fields)["predictions"] == "2 (neutral 1, remote 1)"
    assert notice.key == "daily_summary|2025-01-01"
    store.close()


def outcome(source: PredictionSource, *failures: SourceFailure) -> PredictionOutcome:
    prediction = Prediction.neutral(SYM, T0, "r").model_copy(update={"source": source})
    return PredictionOutcome(prediction, 1.0, failures)


def test_the_ml_source_watch_reports_changes_with_codes_only() -> None:
    """First state, then only changes; the reason is the failures' codes, never their text."""
    watch = SourceWatch(PredictionSource.REMOTE)
    first = watch.observe({SYM: outcome(PredictionSource.REMOTE)})
    assert first is not None
    assert first.data["expected"] is True
    assert watch.observe({SYM: outcome(PredictionSource.REMOTE)}) is None
    failure = SourceFailure("remote", "auth", "401 Bearer SECRET-QUOTED")
    down = watch.observe(
        {SYM: outcome(PredictionSource.REMOTE), "ETH": outcome(PredictionSource.NEUTRAL, failure)}
    )
    assert down is not None
    assert dict(down.data) == {
        "source": "neutral",
        "previous": "remote",
        "expected": False,
        "reason": "remote: auth",
    }
    assert "SECRET" not in down.message
