"""Which audit events an operator must hear about, how urgently, and in what words (pure).

The store hands every event it records (or fails to record) to the notifier; :func:`notice_for`
turns the few that matter into a :class:`~tbotd.domain.notices.Notice` and ignores the rest
(stream reconnects, candle gaps, routine order bookkeeping). Kinds recorded by later features
are mapped here too: ``model_state`` (model monitoring) and ``risk-trip`` / ``risk-reset`` /
``flatten-retry`` / ``flatten-done`` / ``flatten-ended`` (the risk guard). ``notify-failed`` /
``notify-recovered`` are never notified (no loops).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tbotd.domain.notices import EventRecord, Notice, NoticeKind, Severity

K, S = NoticeKind, Severity

# event kinds that are one notice each: (kind, severity, how the text starts)
_SIMPLE: dict[str, tuple[NoticeKind, Severity, str]] = {
    "protect": (K.PROTECTION, S.CRITICAL, "position found unprotected, protecting it"),
    "protected": (K.PROTECTION, S.INFO, "position protected again"),
    "reconcile": (K.PROTECTION, S.WARNING, "reconciliation"),
    "adopt": (K.RECONCILIATION, S.WARNING, "a position changed by hand was adopted"),
    "position-gone": (K.RECONCILIATION, S.WARNING, "position gone from the exchange"),
    "orphan": (K.RECONCILIATION, S.WARNING, "orphan order cancelled"),
    "stale-order": (K.RECONCILIATION, S.WARNING, "stale order cancelled"),
    "imported": (K.RECONCILIATION, S.WARNING, "order found on the exchange, recorded"),
    "unknown-order": (K.RECONCILIATION, S.WARNING, "an order that is not ours"),
    "fills-recovered": (K.RECONCILIATION, S.WARNING, "fills recovered"),
    "fills-unexplained": (K.RECONCILIATION, S.WARNING, "fills the books cannot explain"),
    "exit-incomplete": (K.PROTECTION, S.WARNING, "a close did not fill whole, the rest kept"),
    "paper-unchecked": (K.PROTECTION, S.WARNING, "paper stop not checked over missing candles"),
    "leverage": (K.RECONCILIATION, S.WARNING, "exchange leverage set back"),
    "margin-mode": (K.RECONCILIATION, S.WARNING, "exchange margin mode set back"),
    "resolved": (K.RECONCILIATION, S.INFO, "order of unknown outcome resolved"),
    "ml_schema_mismatch": (K.ML_SOURCE, S.WARNING, "the remote ML service's schema differs"),
    "risk-trip": (K.RISK_GUARD, S.CRITICAL, "RISK GUARD TRIPPED"),
    "risk-reset": (K.RISK_GUARD, S.INFO, "risk guard reset"),
    "flatten-done": (K.RISK_GUARD, S.INFO, "risk guard flatten done"),
    "flatten-ended": (K.RISK_GUARD, S.WARNING, "risk guard flatten no longer asked"),
    "model-expired": (K.MODEL_HEALTH, S.WARNING, "model past its shelf life, it abstains"),
    "models-dir-refused": (K.MODEL_HEALTH, S.WARNING, "new models refused, the running ones stay"),
    "meta-label-unusable": (
        K.MODEL_HEALTH,
        S.WARNING,
        "meta-label model unusable: every classic setup is vetoed",
    ),
}

_CLOSES: dict[str, tuple[NoticeKind, Severity, str]] = {
    "stop_loss": (K.STOP_LOSS, S.WARNING, "stop-loss hit"),
    "take_profit": (K.TAKE_PROFIT, S.INFO, "take-profit hit"),
    "liquidation": (K.LIQUIDATION, S.CRITICAL, "LIQUIDATED"),
    "decision": (K.CLOSE, S.INFO, "closed by decision"),
    "external": (K.CLOSE, S.WARNING, "closed outside tbotd (by hand or by the exchange)"),
    "unprotectable": (K.CLOSE, S.CRITICAL, "closed: it could not be protected"),
}

_MODEL_STATES = {
    "healthy": S.INFO,
    "degraded": S.WARNING,
    "drifting": S.WARNING,
    "expired": S.CRITICAL,
    "failed": S.CRITICAL,
}


def notice_for(event: EventRecord) -> Notice | None:
    """The notice ``event`` calls for, or None when it is not the operator's concern."""
    special = _SPECIAL.get(event.kind)
    if special is not None:
        return special(event)
    simple = _SIMPLE.get(event.kind)
    if simple is None:
        return None
    kind, severity, lead = simple
    return _notice(event, kind, severity, f"{lead}: {event.message}")


def _notice(
    event: EventRecord, kind: NoticeKind, severity: Severity, text: str, **kw: Any
) -> Notice:
    where = f"{event.symbol}: " if event.symbol else ""
    return Notice(kind, severity, where + text, event.at, event.symbol, **kw)


def _fields(data: Mapping[str, Any], *names: str) -> tuple[tuple[str, str], ...]:
    return tuple((n, str(data[n])) for n in names if data.get(n) not in (None, ""))


def _entry(event: EventRecord) -> Notice:
    d = event.data
    if {"side", "qty", "price"} <= set(d):
        text = f"opened {d['side']} {d['qty']} at {d['price']}"
        if d.get("stop") or d.get("target"):
            text += f" (stop {d.get('stop')}, target {d.get('target')})"
    else:
        text = f"opened {event.message}"
    fields = _fields(d, "side", "qty", "price", "stop", "target", "candle_time")
    key = f"entry|{event.symbol}|{event.at.isoformat()}"
    return _notice(event, K.ENTRY, S.INFO, text, fields=fields, key=key)


def _trade(event: EventRecord) -> Notice:
    d = event.data
    reason = str(d.get("reason") or event.message.removeprefix("position closed: "))
    kind, severity, lead = _CLOSES.get(reason, (K.CLOSE, S.INFO, f"closed ({reason})"))
    text = lead
    if d.get("side") and d.get("qty"):
        text += f", {d['side']} {d['qty']}"
    if d.get("exit_price"):
        text += f" at {d['exit_price']}"
    if d.get("pnl") is not None:
        text += f"; PnL {d['pnl']} {d.get('currency', '')}".rstrip()
        text += f" (fees {d['fees']})" if d.get("fees") is not None else ""
    fields = (
        ("reason", reason),
        *_fields(d, "side", "qty", "entry_price", "exit_price", "pnl", "fees", "funding", "net"),
    )
    key = f"trade|{event.symbol}|{event.at.isoformat()}|{reason}"
    return _notice(event, kind, severity, text, fields=fields, key=key)


def _alert(event: EventRecord) -> Notice:
    if event.data.get("kind_detail") == "suspended":
        return _notice(
            event,
            K.ALERT,
            S.CRITICAL,
            f"new entries SUSPENDED: {event.message}",
            topic=f"suspended|{event.symbol}",
            state="suspended",
        )
    kind = K.PROTECTION if "protect" in event.message else K.ALERT
    return _notice(event, kind, S.CRITICAL, event.message)


def _resumed(event: EventRecord) -> Notice:
    text = f"new entries allowed again: {event.message}"
    topic = f"suspended|{event.symbol}"
    return _notice(event, K.ALERT, S.INFO, text, topic=topic, state="active", normal=True)


def _entries(refused: bool) -> Callable[[EventRecord], Notice]:
    def notice(event: EventRecord) -> Notice:
        severity = S.CRITICAL if refused else S.INFO
        lead = "new entries REFUSED" if refused else "new entries allowed"
        topic, state = f"entries|{event.symbol}", "refused" if refused else "allowed"
        text = f"{lead}: {event.message}"
        return _notice(event, K.ALERT, severity, text, topic=topic, state=state, normal=not refused)

    return notice


def _ml_source(event: EventRecord) -> Notice:
    d = event.data
    source, expected = str(d.get("source", "")), bool(d.get("expected"))
    if expected:
        text = f"ML predictions come from {source} again"
    else:
        text = f"ML degraded: predictions now come from {source}"
        text += f" ({d['reason']})" if d.get("reason") else ""
    return _notice(
        event,
        K.ML_SOURCE,
        S.INFO if expected else S.WARNING,
        text,
        fields=_fields(d, "source", "previous", "reason"),
        topic="ml_source",
        state=source,
        normal=expected,
    )


def _ml_auth(event: EventRecord) -> Notice:
    return _notice(event, K.ML_AUTH, S.CRITICAL, event.message, key="ml_auth_failed")


def _model_state(event: EventRecord) -> Notice:
    d = event.data
    state = str(d.get("state", "")).lower()
    model = str(d.get("model") or d.get("name") or "model")
    return _notice(
        event,
        K.MODEL_HEALTH,
        _MODEL_STATES.get(state, S.WARNING),
        f"model {model} is {state or 'in an unknown state'}: {event.message}",
        fields=_fields(d, "model", "state", "previous"),
        topic=f"model_health|{model}",
        state=state,
        normal=state == "healthy",
    )


def _storage(event: EventRecord) -> Notice:
    return storage_notice(event.at, writable=True, why=event.message)


def _unprotected(event: EventRecord) -> Notice:
    """Said once per symbol per de-duplication window: the repair loop retries every few
    seconds while the exchange is unreachable, each time with the error's own words."""
    text = f"position NOT protected yet: {event.message}"
    key = f"unprotected|{event.symbol}"
    return _notice(event, K.PROTECTION, S.CRITICAL, text, key=key)


def _flatten_retry(event: EventRecord) -> Notice:
    """Said once per de-duplication window, not at every close the flatten is retried: the
    count in the text changes each time, the key does not."""
    text = f"FLATTEN NOT DONE, retried: {event.message}"
    return _notice(event, K.RISK_GUARD, S.CRITICAL, text, key="flatten-retry")


def _decide_failed(event: EventRecord) -> Notice:
    text = f"{event.message}; this symbol skipped this close, the others traded"
    return _notice(event, K.CYCLE, S.WARNING, text, key=f"decide-failed:{event.symbol}")


def _cycle_failed(event: EventRecord) -> Notice:
    text = f"a cycle failed ({event.message}); the next one starts clean"
    return _notice(event, K.CYCLE, S.WARNING, text, key="cycle-failed")


def storage_notice(at: Any, writable: bool, why: str = "") -> Notice:
    """The database's state: unwritable (critical: no new entries) or writable again."""
    if writable:
        text = "database writable again; cycling"
        return Notice(K.STORAGE, S.INFO, text, at, topic="storage", state="ok", normal=True)
    text = f"DATABASE CANNOT BE WRITTEN ({why}): no new entries; positions kept protected"
    return Notice(K.STORAGE, S.CRITICAL, text, at, topic="storage", state="unwritable")


def _missed(event: EventRecord) -> Notice:
    """Closes no cycle decided: said with the start when the daemon was down; a cycle that
    overran the next close is a cycle problem (the machine or the exchange is too slow)."""
    if event.data.get("cause") == "overran":
        text = f"cycles missed, a cycle overran the next close (not replayed): {event.message}"
        return _notice(event, K.CYCLE, S.WARNING, text)
    text = f"cycles missed while down (not replayed): {event.message}"
    return _notice(event, K.START, S.WARNING, text)


_SPECIAL: dict[str, Callable[[EventRecord], Notice]] = {
    "entry": _entry,
    "trade": _trade,
    "alert": _alert,
    "resumed": _resumed,
    "entries-refused": _entries(refused=True),
    "entries-allowed": _entries(refused=False),
    "ml-source": _ml_source,
    "ml_auth_failed": _ml_auth,
    "model_state": _model_state,
    "storage": _storage,
    "cycle-failed": _cycle_failed,
    "decide-failed": _decide_failed,
    "flatten-retry": _flatten_retry,
    "unprotected": _unprotected,
    "missed-cycles": _missed,
}
