"""Each model's health state (pure): what an operator, the notifier and the strategy act on.

One state per model and source, the first that holds in this order:

* ``failed`` — its source could not give predictions in the last cycle (load error, exception,
  timeouts, an open breaker: the chain's failure reasons other than expiry and the per-symbol
  ones below);
* ``expired`` — past ``ml.max_model_age_days``;
* ``degraded`` — over its newest :data:`DEGRADED_WINDOW` graded calls (a full window), the hit
  rate is below the better of the two baselines on the same bars (always long, contrarian) by
  more than :data:`DEGRADED_SE` standard errors;
* ``drifting`` — inputs drifting (a feature at PSI ≥ 0.25), or the error-rate change test fired
  within its last :data:`CHANGE_RECENT_CALLS` graded calls;
* ``healthy`` — none of these (including "not enough graded calls yet to say").

The strategy treats ``failed``/``expired`` as abstain (the chain already gives neutral) and
``degraded`` too unless ``ml.trade_when_degraded``; ``drifting`` is a warning only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tbotd.monitoring.drift import ErrorChange
from tbotd.monitoring.metrics import ModelMetrics

DEGRADED_WINDOW = "200"
DEGRADED_SE = 2.0
CHANGE_RECENT_CALLS = 200
PER_SYMBOL_REASONS = frozenset({"insufficient_history", "out_of_distribution", "wrong_candle"})


class ModelState(StrEnum):
    """A model's health (see the module docstring for the rules)."""

    HEALTHY = "healthy"
    DRIFTING = "drifting"
    DEGRADED = "degraded"
    EXPIRED = "expired"
    FAILED = "failed"


ABSTAINING = frozenset({ModelState.DEGRADED, ModelState.EXPIRED, ModelState.FAILED})


@dataclass(frozen=True, slots=True)
class Health:
    """A state and the reasons for it (each one line an operator can act on)."""

    state: ModelState
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """``{"state", "reasons"}``."""
        return {"state": self.state.value, "reasons": list(self.reasons)}


def _degraded(metrics: ModelMetrics | None) -> str | None:
    window = (
        next((w for w in metrics.windows if w.window == DEGRADED_WINDOW), None) if metrics else None
    )
    if window is None or not window.full:
        return None
    hit, se = window.hit_rate.value, window.hit_rate.se
    baselines = [b.value for b in (window.always_long, window.contrarian) if b.value is not None]
    if hit is None or se is None or not baselines:
        return None
    best = max(baselines)
    if hit >= best - DEGRADED_SE * se:
        return None
    return (
        f"rolling-{DEGRADED_WINDOW} hit rate {100 * hit:.1f}% is below the better baseline "
        f"{100 * best:.1f}% by more than {DEGRADED_SE:g} s.e. ({100 * se:.1f} pts)"
    )


def _drifting(drift: Mapping[str, Any] | None, change: ErrorChange | None) -> list[str]:
    reasons = []
    if drift and drift.get("drifting"):
        reasons.append(f"inputs drifting: {', '.join(drift['drifting'])}")
    if change is not None and change.change_calls is not None:
        since = change.calls - change.change_calls
        if since < CHANGE_RECENT_CALLS:
            reasons.append(f"error rate rose (Page-Hinkley) {since} graded calls ago")
    return reasons


def assess(
    metrics: ModelMetrics | None,
    *,
    failure: str | None = None,
    expired: str | None = None,
    drift: Mapping[str, Any] | None = None,
    change: ErrorChange | None = None,
) -> Health:
    """The model's state from its rolling metrics, its source's last failure (``failure``,
    ``expired``: the chain's details) and its drift and error-change tests."""
    if failure:
        return Health(ModelState.FAILED, (failure,))
    if expired:
        return Health(ModelState.EXPIRED, (expired,))
    degraded = _degraded(metrics)
    if degraded:
        return Health(ModelState.DEGRADED, (degraded,))
    drifting = _drifting(drift, change)
    if drifting:
        return Health(ModelState.DRIFTING, tuple(drifting))
    return Health(ModelState.HEALTHY)
