"""The notification policy: state changes only, de-duplicated, cooled down, filtered, budgeted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tbotd.domain.notices import EventRecord, Notice, NoticeKind, Severity
from tbotd.notify.classify import notice_for
from tbotd.notify.policy import (
    PolicyConfig,
    PolicyState,
    TargetRule,
    Verdict,
    admit,
    flush,
    next_flush,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ALL = PolicyConfig((TargetRule("phone"),), timedelta(minutes=10), timedelta(hours=1), 30)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def source(state: str, minutes: float) -> Notice:
    """The notice of an ``ml-source`` event (remote is the expected source)."""
    event = EventRecord.of(
        at(minutes), "ml-source", "changed", None, {"source": state, "expected": state == "remote"}
    )
    notice = notice_for(event)
    assert notice is not None
    return notice


def alert(text: str, minutes: float, severity: Severity = Severity.WARNING) -> Notice:
    return Notice(NoticeKind.ALERT, severity, text, at(minutes))


def run(
    notices: list[Notice], cfg: PolicyConfig = ALL, state: PolicyState | None = None
) -> tuple[PolicyState, list[Verdict]]:
    state = state or PolicyState()
    verdicts = []
    for notice in notices:
        verdict = admit(state, notice, notice.at, cfg)
        state = verdict.state
        verdicts.append(verdict)
    return state, verdicts


def sent(verdicts: list[Verdict]) -> list[str]:
    return [d.notice.text for v in verdicts for d in v.deliveries]


def test_a_flapping_ml_source_is_one_message_per_change_with_a_cool_down() -> None:
    """remote (silent) → down (sent) → back, down, back within 10 min (held) → one "back"
    when the cool-down ends, saying how often it changed."""
    state, verdicts = run(
        [
            source("remote", 0),
            source("neutral", 1),
            source("remote", 2),
            source("neutral", 3),
            source("remote", 4),
        ]
    )
    assert sent(verdicts) == ["ML degraded: predictions now come from neutral"]
    assert next_flush(state, ALL) == at(11)
    assert flush(state, at(10), ALL).deliveries == ()
    done = flush(state, at(11), ALL)
    [back] = done.deliveries
    assert back.notice.text == "ML predictions come from remote again (changed 3 times in 10 min)"
    assert back.notice.severity is Severity.INFO
    assert next_flush(done.state, ALL) is None
    assert sent(run([source("remote", 12)], state=done.state)[1]) == []


def test_a_change_that_flaps_back_within_the_cool_down_says_nothing() -> None:
    """down (sent), back, down again within the cool-down: the operator already knows."""
    state, verdicts = run([source("neutral", 0), source("remote", 1), source("neutral", 2)])
    assert sent(verdicts) == ["ML degraded: predictions now come from neutral"]
    assert flush(state, at(10), ALL).deliveries == ()
    assert next_flush(flush(state, at(10), ALL).state, ALL) is None


def test_changes_after_the_cool_down_are_sent_at_once() -> None:
    """down at 0, back at 15: both sent when they happen."""
    _, verdicts = run([source("remote", 0), source("neutral", 1), source("remote", 15)])
    assert sent(verdicts) == [
        "ML degraded: predictions now come from neutral",
        "ML predictions come from remote again",
    ]


def test_a_repeated_alert_is_sent_once_per_window() -> None:
    """The same text within the hour: dropped as a duplicate; after it, sent again."""
    _, verdicts = run([alert("x", 0), alert("x", 30), alert("y", 31), alert("x", 61)])
    assert sent(verdicts) == ["x", "y", "x"]
    assert [r for v in verdicts for r, _ in v.dropped] == ["duplicate"]


def test_a_repair_loop_retrying_is_one_message_per_symbol() -> None:
    """ "not protected yet" with a new error every few seconds: one message per symbol."""
    notices = [
        notice_for(EventRecord.of(at(i), "unprotected", f"timeout #{i}", sym, {}))
        for i, sym in enumerate(["BTC/USDT:USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"])
    ]
    assert len(sent(run([n for n in notices if n is not None])[1])) == 2


def test_entries_at_different_times_are_never_merged() -> None:
    """Two entries with identical text but different fill times are two messages."""
    data = {"side": "long", "qty": "1", "price": "100", "stop": "99", "target": "102"}
    first = notice_for(EventRecord.of(at(0), "entry", "long 1 at 100", "BTC/USDT:USDT", data))
    second = notice_for(EventRecord.of(at(5), "entry", "long 1 at 100", "BTC/USDT:USDT", data))
    assert first is not None
    assert second is not None
    assert len(sent(run([first, second, first])[1])) == 2


def test_filters_pass_each_target_what_it_asked_for() -> None:
    """By minimum severity, by kind, and with kinds left out."""
    cfg = PolicyConfig(
        (
            TargetRule("pager", min_severity=Severity.CRITICAL),
            TargetRule("trades", kinds=frozenset({NoticeKind.ENTRY, NoticeKind.ALERT})),
            TargetRule("quiet", exclude=frozenset({NoticeKind.ALERT})),
        )
    )
    notices = [
        alert("warn", 0),
        alert("crit", 1, Severity.CRITICAL),
        Notice(NoticeKind.START, Severity.INFO, "start", at(2)),
    ]
    _, verdicts = run(notices, cfg)
    routed = [(d.target, d.notice.text) for v in verdicts for d in v.deliveries]
    assert routed == [
        ("trades", "warn"),
        ("pager", "crit"),
        ("trades", "crit"),
        ("quiet", "start"),
    ]


def test_the_hourly_budget_keeps_critical_notices_and_counts_what_it_dropped() -> None:
    """Beyond max_per_hour: info and warnings dropped (counted), critical ones still sent; the
    next message sent says how many were dropped."""
    cfg = PolicyConfig((TargetRule("phone"),), max_per_hour=2)
    notices = [alert(f"a{i}", i) for i in range(4)] + [alert("c", 5, Severity.CRITICAL)]
    state, verdicts = run(notices, cfg)
    assert sent(verdicts) == ["a0", "a1", "c"]
    [critical] = verdicts[-1].deliveries
    assert critical.suppressed == 2
    assert [r for v in verdicts for r, _ in v.dropped] == ["rate_limited", "rate_limited"]
    later = admit(state, alert("b", 70), at(70), cfg)
    assert [d.suppressed for d in later.deliveries] == [0]


def test_a_normal_state_seen_first_is_silent_an_abnormal_one_is_not() -> None:
    """Starting with the ML service up says nothing; starting with it down says so."""
    assert sent(run([source("remote", 0)])[1]) == []
    assert sent(run([source("local-cpu", 0)])[1]) == [
        "ML degraded: predictions now come from local-cpu"
    ]


def test_the_policy_forgets_old_keys() -> None:
    """The de-duplication memory holds only the current window."""
    state, _ = run([alert(f"a{i}", i * 30) for i in range(10)])
    assert len(state.seen) <= 3
