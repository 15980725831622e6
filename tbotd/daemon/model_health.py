"""Each model's health state kept by the daemon: events on change, the gauge, and the gate.

:func:`tbotd.monitoring.health.assess` decides a state from the rolling metrics, the chain's
per-source failures and expiry, input drift and the error-change test. :class:`HealthKeeper`
keeps the last state per model and source; each change is one ``model_state`` event (the
notifier turns it into one notification) and one change of ``tbotd_model_state``. The cycle
passes its predictions through :meth:`HealthKeeper.gate`: a degraded model's prediction becomes
the neutral "no new risk" one (unless ``ml.trade_when_degraded``), so the strategy abstains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from tbotd.domain.prediction import Prediction
from tbotd.monitoring.drift import ErrorChange
from tbotd.monitoring.health import Health, ModelState, assess
from tbotd.monitoring.live import Key
from tbotd.monitoring.metrics import ModelMetrics
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import DAEMON_METRICS, DaemonMetrics
from tbotd.predictor.outcome import PredictionOutcome, SourceFailure

log = get_logger(__name__)
_CHAIN_FAILED_AFTER = 2  # cycles in a row a source failed as a whole: one timeout is not "failed"


class EventSink(Protocol):
    """Where state changes are recorded (the Store)."""

    def record_event(
        self, at: datetime, kind: str, message: str, symbol: str | None = None, **data: Any
    ) -> None:
        """Append an audit event."""
        ...


class Made(Protocol):
    """A prediction and how long it took (what the chain returns per symbol)."""

    @property
    def prediction(self) -> Prediction:
        """The prediction for the candle that just closed."""
        ...

    @property
    def latency_ms(self) -> float:
        """How long it took to get it."""
        ...


def _keys(metrics: Sequence[ModelMetrics], sources: Mapping[str, Any]) -> list[Key]:
    """Every graded model, and each local model even before its first grade (an expired one
    never gets graded)."""
    keys = [(m.model, m.source) for m in metrics]
    keys += [(d["model"], d["source"]) for d in sources.get("drift", [])]
    return list(dict.fromkeys(keys))


class HealthKeeper:
    """The last health state per model and source; see the module docstring."""

    def __init__(
        self,
        events: EventSink,
        trade_when_degraded: bool = False,
        metrics: DaemonMetrics = DAEMON_METRICS,
    ) -> None:
        self.events, self.trade_when_degraded, self._metrics = events, trade_when_degraded, metrics
        self.states: dict[Key, Health] = {}

    def update(
        self,
        now: datetime,
        metrics: Sequence[ModelMetrics],
        changes: Mapping[Key, ErrorChange],
        sources: Mapping[str, Any],
    ) -> None:
        """Assess every model; record each change of state."""
        by_key = {(m.model, m.source): m for m in metrics}
        drift = {(d["model"], d["source"]): d for d in sources.get("drift", [])}
        failing = sources.get("failing", {})
        for key in _keys(metrics, sources):
            failed = failing.get(key[1]) or {}
            health = assess(
                by_key.get(key),
                failure=_failure(failed),
                expired=failed.get("detail") if failed.get("reason") == "expired" else None,
                drift=drift.get(key),
                change=changes.get(key),
            )
            self._set(now, key, health)

    def _set(self, now: datetime, key: Key, health: Health) -> None:
        previous = self.states.get(key)
        self.states[key] = health
        if previous is not None and previous.state is health.state:
            return
        model, source = key
        for state in ModelState:
            self._metrics.model_state.labels(model, source, state.value).set(
                1.0 if state is health.state else 0.0
            )
        if previous is None and health.state is ModelState.HEALTHY:
            return  # a start with a healthy model is not news
        was = previous.state.value if previous is not None else None
        message = "; ".join(health.reasons) or "back to normal"
        log.warning("model state", model=model, source=source, state=health.state, was=was)
        try:
            self.events.record_event(
                now, "model_state", message, model=model, source=source,
                state=health.state.value, previous=was, reasons=list(health.reasons),
            )  # fmt: skip
        except Exception:  # an event that cannot be stored must not stop the cycle
            log.exception("could not record the model_state event")

    def gate(self, outcomes: Mapping[str, Made]) -> dict[str, Made]:
        """A degraded model's predictions replaced by neutral (unless trading on degraded)."""
        if self.trade_when_degraded:
            return dict(outcomes)
        return {symbol: self._gated(o) for symbol, o in outcomes.items()}

    def _gated(self, outcome: Made) -> Made:
        p = outcome.prediction
        health = self.states.get((p.model_version, p.source.value))
        if health is None or health.state is not ModelState.DEGRADED:
            return outcome
        neutral = Prediction.neutral(p.symbol, p.timestamp, f"{p.source.value} model degraded")
        failure = SourceFailure(p.source.value, "degraded", "; ".join(health.reasons))
        before = tuple(getattr(outcome, "failures", ()))
        return PredictionOutcome(neutral, outcome.latency_ms, (*before, failure))

    def to_json(self) -> dict[Key, dict[str, Any]]:
        """Each model's state and reasons."""
        return {key: h.to_json() for key, h in self.states.items()}


def _failure(failed: Mapping[str, Any]) -> str | None:
    """The source's failure when it failed as a whole long enough (expiry is its own state)."""
    if not failed or failed.get("reason") == "expired":
        return None
    if int(failed.get("cycles", 0)) < _CHAIN_FAILED_AFTER:
        return None
    return f"{failed['reason']}: {failed.get('detail', '')}".rstrip(": ")
