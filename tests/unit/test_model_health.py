"""Model health: a model worse than its baselines is degraded and the strategy abstains; every
change of state is one event and one gauge change; failures and expiry come first."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from tbotd.daemon.model_health import HealthKeeper
from tbotd.domain.enums import PredictionSource, Signal
from tbotd.domain.prediction import Prediction
from tbotd.monitoring.drift import ErrorChange
from tbotd.monitoring.health import ModelState, assess
from tbotd.monitoring.metrics import ModelMetrics, Stat, WindowMetrics
from tbotd.ops.metrics import DaemonMetrics
from tbotd.predictor.outcome import PredictionOutcome

T = datetime(2024, 3, 1, tzinfo=UTC)
KEY = ("m1", "local-cpu")


def _metrics(hit: float, always_long: float, contrarian: float, n: int = 200) -> ModelMetrics:
    se = (hit * (1 - hit) / n) ** 0.5

    def window(name: str) -> WindowMetrics:
        none = Stat(n, None)
        return WindowMetrics(
            name, n, True, Stat(n, hit, se), Stat(n, always_long), Stat(n, contrarian),
            none, none, none, none,
        )  # fmt: skip

    return ModelMetrics("m1", "local-cpu", n, T, (window("50"), window("200")), ())


def test_below_the_better_baseline_by_two_standard_errors_is_degraded() -> None:
    """48 % against a 56 % contrarian (s.e. 3.5): degraded; against 54 %, still healthy."""
    degraded = assess(_metrics(0.48, 0.51, 0.56))
    assert degraded.state is ModelState.DEGRADED
    assert "56.0%" in degraded.reasons[0]
    assert assess(_metrics(0.48, 0.51, 0.54)).state is ModelState.HEALTHY


def test_not_enough_graded_calls_is_not_a_verdict() -> None:
    """A window that is not full says nothing: healthy, never degraded on a handful of calls."""
    m = _metrics(0.30, 0.60, 0.60)
    partial = replace(m, windows=tuple(replace(w, full=False) for w in m.windows))
    assert assess(partial).state is ModelState.HEALTHY


def test_failure_then_expiry_then_degraded_then_drifting_take_precedence_in_that_order() -> None:
    """Each state's reason is kept, and the more serious one wins."""
    bad = _metrics(0.40, 0.55, 0.55)
    drift = {"drifting": ["rv_48"]}
    assert assess(bad, failure="error: boom", expired="old", drift=drift).state is ModelState.FAILED
    assert assess(bad, expired="old", drift=drift).state is ModelState.EXPIRED
    assert assess(bad, drift=drift).state is ModelState.DEGRADED
    drifting = assess(_metrics(0.55, 0.5, 0.5), drift=drift)
    assert drifting.state is ModelState.DRIFTING
    assert drifting.reasons == ("inputs drifting: rv_48",)


def test_a_recent_error_rate_change_is_drifting_and_an_old_one_is_not() -> None:
    """The Page-Hinkley change counts for the next 200 graded calls only."""
    recent = ErrorChange(calls=250, change_calls=100, last_change=T)
    old = ErrorChange(calls=400, change_calls=100, last_change=T)
    healthy = _metrics(0.55, 0.5, 0.5)
    assert assess(healthy, change=recent).state is ModelState.DRIFTING
    assert assess(healthy, change=old).state is ModelState.HEALTHY


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, dict[str, Any]]] = []
        self.times: list[tuple[datetime, str | None]] = []

    def record_event(
        self, at: datetime, kind: str, message: str, symbol: str | None = None, **data: Any
    ) -> None:
        self.rows.append((kind, message, data))
        self.times.append((at, symbol))


def _outcome() -> PredictionOutcome:
    p = Prediction(
        symbol="BTC/USDT:USDT", timestamp=T, signal=Signal.LONG, confidence=0.9,
        model_version="m1", source=PredictionSource.LOCAL_CPU,
    )  # fmt: skip
    return PredictionOutcome(p, 2.0)


def test_each_change_of_state_is_one_event_one_gauge_change_and_degraded_abstains() -> None:
    """healthy (silent) → degraded (event, gauge, neutral) → degraded (nothing) → healthy."""
    events, registry = Events(), CollectorRegistry()
    keeper = HealthKeeper(events, metrics=DaemonMetrics.create(registry))
    sources: dict[str, Any] = {"drift": [], "failing": {}}
    states = [(0.55, 0.5), (0.40, 0.55), (0.41, 0.55), (0.55, 0.5)]
    for i, (hit, baseline) in enumerate(states):
        keeper.update(T + timedelta(minutes=5 * i), [_metrics(hit, baseline, 0.5)], {}, sources)
        if i == 1:
            gated = keeper.gate({"BTC/USDT:USDT": _outcome()})["BTC/USDT:USDT"]
            assert gated.prediction.signal is Signal.NEUTRAL
            assert gated.prediction.source is PredictionSource.NEUTRAL
    assert [(d["previous"], d["state"]) for _, _, d in events.rows] == [
        ("healthy", "degraded"),
        ("degraded", "healthy"),
    ]
    gauge = registry.get_sample_value(
        "tbotd_model_state", {"model": "m1", "source": "local-cpu", "state": "healthy"}
    )
    assert gauge == 1.0
    assert keeper.gate({"s": _outcome()})["s"].prediction.signal is Signal.LONG


def test_trading_on_a_degraded_model_is_the_operators_choice() -> None:
    """With ml.trade_when_degraded the prediction passes through unchanged."""
    keeper = HealthKeeper(Events(), True, DaemonMetrics.create(CollectorRegistry()))
    keeper.update(T, [_metrics(0.40, 0.55, 0.5)], {}, {"drift": [], "failing": {}})
    assert keeper.states[KEY].state is ModelState.DEGRADED
    assert keeper.gate({"s": _outcome()})["s"].prediction.signal is Signal.LONG


def test_a_source_failing_two_cycles_running_is_failed_and_one_blip_is_not() -> None:
    """One whole-source timeout is a blip; two in a row make the model failed."""
    keeper = HealthKeeper(Events(), metrics=DaemonMetrics.create(CollectorRegistry()))
    fail = {"reason": "timeout", "detail": "local models did not answer"}
    keeper.update(
        T, [_metrics(0.55, 0.5, 0.5)], {}, {"failing": {"local-cpu": fail | {"cycles": 1}}}
    )
    assert keeper.states[KEY].state is ModelState.HEALTHY
    keeper.update(
        T, [_metrics(0.55, 0.5, 0.5)], {}, {"failing": {"local-cpu": fail | {"cycles": 2}}}
    )
    assert keeper.states[KEY].state is ModelState.FAILED
    expired = {"reason": "expired", "detail": "too old", "cycles": 1}
    keeper.update(T, [_metrics(0.55, 0.5, 0.5)], {}, {"failing": {"local-cpu": expired}})
    assert keeper.states[KEY].state is ModelState.EXPIRED
