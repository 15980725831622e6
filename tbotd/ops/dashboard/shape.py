"""What the dashboard shows, from records (pure: no I/O, no config, no clock).

Down-sampling keeps a year of 5-minute candles under the page's payload budget without hiding
what matters (a bucket's high and low survive; an equity bucket keeps its low, so a drawdown is
never smoothed away). Cards never invent numbers: what the page does not show is a
:class:`Missing` value with its reason, which the page shows as "not available".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from tbotd.domain.notices import EventRecord, Severity
from tbotd.notify.classify import notice_for

Bar = tuple[int, float, float, float, float]  # time (s), open, high, low, close
Point = tuple[int, float]  # time (s), value


class Missing(StrEnum):
    """Why a card's field has no value (structured; the page shows :data:`MISSING_TEXT`)."""

    NO_PREDICTION = "no_prediction"
    NOT_REPORTED = "not_reported"
    NO_DECISION = "no_decision"
    MONITORING_NOT_BUILT = "monitoring_not_built"
    PER_MODEL_NOT_BUILT = "per_model_not_built"
    REMOTE_MODEL = "remote_model"
    COUNTERFACTUAL_NOT_RECORDED = "counterfactual_not_recorded"


MISSING_TEXT: dict[Missing, str] = {
    Missing.NO_PREDICTION: "no prediction recorded for this symbol yet",
    Missing.NOT_REPORTED: "the prediction's source did not report it",
    Missing.NO_DECISION: "no decision recorded for this symbol yet",
    Missing.MONITORING_NOT_BUILT: "not on this card yet: model monitoring (rolling accuracy, "
    "calibration, drift, expiry) is in /status (`models`) and `tbotd models status`",
    Missing.PER_MODEL_NOT_BUILT: "not on this card yet: each model's own answer is in /status "
    "(`predictions.<symbol>.answers`) and `tbotd status`",
    Missing.REMOTE_MODEL: "the model is served remotely; its training date is not reported",
    Missing.COUNTERFACTUAL_NOT_RECORDED: "the daemon records no classic-only counterfactual "
    "(`tbotd backtest --compare` computes it over history)",
}


def missing(why: Missing) -> dict[str, str]:
    """A field the page shows as "not available", with the reason."""
    return {"missing": why.value, "why": MISSING_TEXT[why]}


class ProtectionState(StrEnum):
    """A position's exchange-side protection, by the strict definition (``protection``)."""

    COVERED = "covered"  # protected: stops cover the whole quantity within the bounds
    PARTLY = "partly"  # stops exist but cover less than the position, or sit out of bounds
    MISSING = "missing"  # no stop covers any of it
    UNKNOWN = "unknown"  # not judged yet (before the first check)


def protection_state(judged: Mapping[str, Any] | None) -> ProtectionState:
    """The state of one position from its verdict as ``/status`` reports it."""
    if judged is None or judged.get("protected") is None:
        return ProtectionState.UNKNOWN
    if judged["protected"]:
        return ProtectionState.COVERED
    covered = _decimal(judged.get("covered_qty"))
    return ProtectionState.PARTLY if covered and covered > 0 else ProtectionState.MISSING


def bucket_ms(first_ms: int, last_ms: int, step_ms: int, limit: int) -> int:
    """The bucket width (a whole number of bars) that leaves at most ``limit`` buckets
    between two bar times."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    bars = (last_ms - first_ms) // step_ms + 1
    return max(1, -(-bars // limit)) * step_ms


def downsample_bars(bars: Sequence[Bar], origin_s: int, bucket_s: int) -> list[Bar]:
    """Bars merged per time bucket ``[origin + k·bucket, origin + (k+1)·bucket)``: first open,
    highest high, lowest low, last close, at the bucket's first bar's time. The reference for
    the reader's SQL, which does the same inside SQLite."""
    out: list[Bar] = []
    key = None
    for bar in bars:
        k = (bar[0] - origin_s) // bucket_s
        if k != key:
            out.append(bar)
            key = k
            continue
        t, o, h, lo, _ = out[-1]
        out[-1] = (t, o, max(h, bar[2]), min(lo, bar[3]), bar[4])
    return out


def downsample_line(points: Sequence[Point], origin: int, width: int) -> list[Point]:
    """Points per time bucket ``[origin + k·width, origin + (k+1)·width)``: each keeps its
    lowest, its highest and its last point (in time order; the earliest of equal values), so
    every bucket's peak and trough survives (a drawdown inside one bucket may look shallower:
    :func:`max_drawdown` over every point says how deep it went)."""
    buckets: dict[int, list[Point]] = {}
    for point in points:
        buckets.setdefault((point[0] - origin) // width, []).append(point)
    out: list[Point] = []
    for chunk in buckets.values():
        low = min(chunk, key=lambda p: (p[1], p[0]))
        high = max(chunk, key=lambda p: (p[1], -p[0]))
        out.extend(sorted({low, high, chunk[-1]}))
    return out


def drawdown(points: Sequence[Point]) -> list[Point]:
    """Each point's distance below the running peak, in percent (0 at a new high)."""
    peak = float("-inf")
    out: list[Point] = []
    for t, value in points:
        peak = max(peak, value)
        out.append((t, 0.0 if peak <= 0 else (value - peak) / peak * 100))
    return out


def max_drawdown(points: Sequence[Point]) -> float:
    """The deepest fall below a running peak, in percent (0 for none)."""
    peak, worst = float("-inf"), 0.0
    for _, value in points:
        peak = max(peak, value)
        if peak > 0:
            worst = min(worst, (value - peak) / peak * 100)
    return worst


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the daemon knows about the loaded local model (None fields: not known)."""

    version: str
    created_at: datetime | None


def ml_card(
    prediction: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    model: ModelInfo | None,
    now: datetime,
) -> dict[str, Any]:
    """One symbol's ML card from its latest prediction and decision rows; what the page does
    not show is :func:`missing`, never a number."""
    monitoring = missing(Missing.MONITORING_NOT_BUILT)
    card: dict[str, Any] = {
        "votes": missing(Missing.PER_MODEL_NOT_BUILT),
        "consensus": missing(Missing.PER_MODEL_NOT_BUILT),
        "rolling_accuracy": monitoring,
        "baseline_accuracy": monitoring,
        "calibration": monitoring,
        "drift": monitoring,
        "expiry": monitoring,
    }
    if prediction is None:
        return card | {"prediction": missing(Missing.NO_PREDICTION)} | _why(decision)
    regime, sd = prediction.get("regime"), prediction.get("sd")
    card |= {
        "candle_time": prediction["candle_time"],
        "direction": prediction["signal"],
        "confidence": prediction["confidence"],
        "sd": sd if sd is not None else missing(Missing.NOT_REPORTED),
        "regime": json.loads(regime) if regime else missing(Missing.NOT_REPORTED),
        "source": prediction["source"],
        "latency_ms": prediction.get("latency_ms"),
        "model_version": prediction["model_version"],
        "model_age_h": _age_h(model, prediction["model_version"], now),
    }
    return card | _why(decision)


def _age_h(model: ModelInfo | None, version: str, now: datetime) -> Any:
    if model is None or model.version != version:
        return missing(Missing.REMOTE_MODEL)
    if model.created_at is None:
        return missing(Missing.NOT_REPORTED)
    return round((now - model.created_at).total_seconds() / 3600, 1)


def _why(decision: Mapping[str, Any] | None) -> dict[str, Any]:
    """The decision's provenance, and when ML had no usable opinion, its reasons."""
    if decision is None:
        return {"decision": missing(Missing.NO_DECISION)}
    ml = json.loads(decision["ml"]) if decision.get("ml") else None
    result = json.loads(decision["result"]) if decision.get("result") else None
    abstained = ml is not None and ml.get("direction") == "abstain"
    return {
        "decision": {
            "candle_time": decision["candle_time"],
            "strategy": decision.get("strategy"),
            "provenance": decision.get("provenance"),
            "result": result,
            "ml": ml,
        },
        "abstained_because": ml.get("reasons", []) if abstained and ml else None,
    }


def severity_of(
    kind: str, message: str, symbol: str | None, data: Mapping[str, Any], at: datetime
) -> Severity | None:
    """How urgent the notifier would call this event (None: routine) — one definition."""
    notice = notice_for(EventRecord.of(at, kind, message, symbol, data))
    return None if notice is None else notice.severity


def alerts_first(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Events with a severity first (critical, then warning, then info), each group newest
    first; routine events after them, newest first."""

    def key(event: Mapping[str, Any]) -> tuple[int, int]:
        severity = event.get("severity")
        rank = -1 if severity is None else Severity(severity).rank
        return (-rank, -int(event["time"]))

    return sorted(events, key=key)


def parse_json(text: object) -> dict[str, Any]:
    """A stored JSON object (an event's data), or an empty one."""
    if not isinstance(text, str) or not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _decimal(text: object) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None
