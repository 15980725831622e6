"""The risk guard's state as JSON-ready data and back (pure): the daemon keeps it in the
database's ``meta`` table after every change, so a trip or a halt survives restarts.

A state written before a field existed loads with that field's default. For ``flatten`` (the
flatten pending until the book is flat) that is "none pending": an older daemon asked its flatten
once and forgot it, and a position open now may as well be one the operator opened since on
purpose — closing it on upgrade would be a surprise, so nothing is derived."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tbotd.risk.guard import Flatten, Halt, RiskRule, RiskState, Trip


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def halt_data(halt: Halt | None) -> dict[str, Any] | None:
    """A halt as data (None stays None)."""
    if halt is None:
        return None
    data: dict[str, Any] = {"seq": halt.seq, "at_ms": halt.at_ms, "flatten": halt.flatten}
    if halt.resume_seq:
        data["resume_seq"] = halt.resume_seq
    return data


def halt_from(data: Any) -> Halt | None:
    """The halt :func:`halt_data` wrote."""
    if not data:
        return None
    return Halt(
        int(data["seq"]),
        int(data["at_ms"]),
        bool(data.get("flatten", False)),
        int(data.get("resume_seq", 0)),
    )


def flatten_data(flatten: Flatten | None) -> dict[str, Any] | None:
    """A pending flatten as data (None stays None)."""
    if flatten is None:
        return None
    f = flatten
    return {"at_ms": f.at_ms, "by": f.by, "tries": f.tries, "left": list(f.left)}


def flatten_from(data: Any) -> Flatten | None:
    """The pending flatten :func:`flatten_data` wrote (absent in older states: none)."""
    if not data:
        return None
    left = tuple(str(s) for s in data.get("left", ()))
    return Flatten(int(data["at_ms"]), str(data["by"]), int(data.get("tries", 0)), left)


def state_data(state: RiskState) -> dict[str, Any]:
    """Everything in ``state``, money as exact decimal text."""
    return {
        "seen_ms": state.seen_ms,
        "peak": _text(state.peak),
        "day": state.day,
        "day_start": _text(state.day_start),
        "entries_today": state.entries_today,
        "streak": state.streak,
        "streaks": dict(state.streaks),
        "trips": [
            {
                "rule": str(t.rule),
                "at_ms": t.at_ms,
                "detail": t.detail,
                "symbol": t.symbol,
                "until_ms": t.until_ms,
            }
            for t in state.trips
        ],
        "halt": halt_data(state.halt),
        "command_seq": state.command_seq,
        "flattened_seq": state.flattened_seq,
        "flatten": flatten_data(state.flatten),
    }


def state_from(data: dict[str, Any]) -> RiskState:
    """The state :func:`state_data` wrote."""
    return RiskState(
        seen_ms=data.get("seen_ms"),
        peak=_dec(data.get("peak")),
        day=data.get("day"),
        day_start=_dec(data.get("day_start")),
        entries_today=int(data.get("entries_today", 0)),
        streak=int(data.get("streak", 0)),
        streaks=tuple(sorted((str(k), int(v)) for k, v in data.get("streaks", {}).items())),
        trips=tuple(
            Trip(RiskRule(t["rule"]), int(t["at_ms"]), t["detail"], t["symbol"], t["until_ms"])
            for t in data.get("trips", [])
        ),
        halt=halt_from(data.get("halt")),
        command_seq=int(data.get("command_seq", 0)),
        flattened_seq=int(data.get("flattened_seq", 0)),
        flatten=flatten_from(data.get("flatten")),
    )
