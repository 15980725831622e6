"""Prometheus metrics of tbotd, in tbotd's own registry (never prometheus_client's global one).

Everything tbotd exports lives in :data:`REGISTRY`, which the ops endpoint's ``/metrics`` (and
``tbotd serve``'s) renders with :func:`render`. Metrics are grouped by the component that
updates them; each group is a small frozen dataclass built against a registry, so a test can
build a private group on a fresh :class:`~prometheus_client.CollectorRegistry` and count exactly
what it caused. The module-level instances below are what production code uses.

Prediction metrics (the fallback chain, :mod:`tbotd.predictor.fallback`):

* ``tbotd_predictions_total{source}`` — predictions handed to the strategy, one per symbol and
  cycle, by final source (remote, local-gpu, local-cpu, neutral).
* ``tbotd_prediction_failures_total{source,reason}`` — a source that failed to give a symbol's
  prediction, by why (``remote``/``timeout``, ``local``/``models_missing``, …).
* ``tbotd_prediction_latency_seconds{source}`` — from the start of the cycle's prediction step to
  the moment that symbol's final prediction was ready.
* ``tbotd_remote_requests_total{outcome}`` / ``tbotd_remote_request_seconds`` — every HTTP
  attempt of the remote client (``ok``, ``http_5xx``, ``connect``, …) and its duration.
* ``tbotd_remote_breaker_open`` — 1 while the remote endpoint's circuit breaker is open.

Daemon metrics (the cycle, :mod:`tbotd.daemon`): ``tbotd_cycles_total``,
``tbotd_decision_seconds``, ``tbotd_actions_total{kind,result}``, ``tbotd_errors_total{where}``,
``tbotd_equity{currency}``, ``tbotd_position_contracts{symbol}``, ``tbotd_candles_missing_total``.

Notification metrics (:mod:`tbotd.notify`): ``tbotd_notifications_total{target,result}`` (sent,
failed), ``tbotd_notifications_dropped_total{reason,severity}`` (duplicate, cooling_down,
unchanged, rate_limited, queue_full), ``tbotd_notification_send_seconds{target}``,
``tbotd_notification_target_up{target}`` and ``tbotd_notification_queue{target}``.

Serving metrics (``tbotd serve``, :mod:`tbotd.serving`):

* ``tbotd_serve_requests_total{route,status}``, ``tbotd_serve_request_seconds{route}``,
  ``tbotd_serve_batch_rows`` (rows per model forward pass after micro-batching).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True)
class PredictorMetrics:
    """What the prediction fallback chain and the remote client count."""

    predictions: Counter
    failures: Counter
    latency: Histogram
    remote_requests: Counter
    remote_seconds: Histogram
    breaker_open: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PredictorMetrics:
        """Register the prediction metrics in ``registry``."""
        return cls(
            predictions=Counter(
                "tbotd_predictions_total",
                "Predictions handed to the strategy, by final source",
                ["source"],
                registry=registry,
            ),
            failures=Counter(
                "tbotd_prediction_failures_total",
                "A prediction source failed for a symbol, by source and reason",
                ["source", "reason"],
                registry=registry,
            ),
            latency=Histogram(
                "tbotd_prediction_latency_seconds",
                "From the start of the prediction step to the symbol's final prediction",
                ["source"],
                buckets=_LATENCY_BUCKETS_S,
                registry=registry,
            ),
            remote_requests=Counter(
                "tbotd_remote_requests_total",
                "HTTP attempts of the remote ML client, by outcome",
                ["outcome"],
                registry=registry,
            ),
            remote_seconds=Histogram(
                "tbotd_remote_request_seconds",
                "Duration of each HTTP attempt of the remote ML client",
                buckets=_LATENCY_BUCKETS_S,
                registry=registry,
            ),
            breaker_open=Gauge(
                "tbotd_remote_breaker_open",
                "1 while the remote ML endpoint's circuit breaker is open",
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class ServeMetrics:
    """What ``tbotd serve`` counts."""

    requests: Counter
    seconds: Histogram
    batch_rows: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ServeMetrics:
        """Register the serving metrics in ``registry``."""
        return cls(
            requests=Counter(
                "tbotd_serve_requests_total",
                "Requests answered by tbotd serve, by route and HTTP status",
                ["route", "status"],
                registry=registry,
            ),
            seconds=Histogram(
                "tbotd_serve_request_seconds",
                "Time to answer a request, by route",
                ["route"],
                buckets=_LATENCY_BUCKETS_S,
                registry=registry,
            ),
            batch_rows=Histogram(
                "tbotd_serve_batch_rows",
                "Feature rows per model forward pass after micro-batching",
                buckets=_BATCH_BUCKETS,
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class DaemonMetrics:
    """What the daemon's cycle counts (``tbotd run``)."""

    cycles: Counter
    decision_seconds: Histogram
    orders: Counter
    errors: Counter
    equity: Gauge
    position: Gauge
    candles_missing: Counter
    risk_tripped: Gauge
    risk_trips: Counter
    streams_silent: Counter
    trades: Gauge
    realized: Gauge
    fees: Gauge
    last_cycle: Gauge
    model_state: Gauge
    events: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DaemonMetrics:
        """Register the daemon metrics in ``registry``."""
        return cls(
            cycles=Counter("tbotd_cycles_total", "Cycles run", registry=registry),
            decision_seconds=Histogram(
                "tbotd_decision_seconds",
                "From the cycle's start to the last order of the cycle",
                buckets=_LATENCY_BUCKETS_S,
                registry=registry,
            ),
            orders=Counter(
                "tbotd_actions_total",
                "Actions carried out (or not), by kind and result",
                ["kind", "result"],
                registry=registry,
            ),
            errors=Counter(
                "tbotd_errors_total",
                "Failures by where they happened",
                ["where"],
                registry=registry,
            ),
            equity=Gauge(
                "tbotd_equity",
                "Equity in the share-class currency",
                ["currency"],
                registry=registry,
            ),
            position=Gauge(
                "tbotd_position_contracts",
                "Open position in contracts (negative = short)",
                ["symbol"],
                registry=registry,
            ),
            candles_missing=Counter(
                "tbotd_candles_missing_total",
                "Symbols without a closed candle by the cycle's deadline",
                registry=registry,
            ),
            risk_tripped=Gauge(
                "tbotd_risk_tripped",
                "1 while a risk rule (or the operator's halt) stops new entries",
                ["rule"],
                registry=registry,
            ),
            risk_trips=Counter(
                "tbotd_risk_trips_total",
                "Risk guard trips (and operator halts), by rule",
                ["rule"],
                registry=registry,
            ),
            streams_silent=Counter(
                "tbotd_streams_silent_total",
                "Candle streams connected but silent past daemon.stream_silent_after_s (redialled)",
                ["symbol"],
                registry=registry,
            ),
            # from the database after each cycle, so a restart never resets them
            trades=Gauge("tbotd_trades_closed", "Closed trades in the database", registry=registry),
            realized=Gauge(
                "tbotd_realized_pnl",
                "Realised PnL of the closed trades after fees and funding",
                ["currency"],
                registry=registry,
            ),
            fees=Gauge(
                "tbotd_fees_paid",
                "Fees paid by the closed trades",
                ["currency"],
                registry=registry,
            ),
            last_cycle=Gauge(
                "tbotd_last_cycle_timestamp_seconds",
                "When the last cycle finished (Unix time; alert when it stops moving)",
                registry=registry,
            ),
            model_state=Gauge(
                "tbotd_model_state",
                "1 for each model's current health state (healthy, drifting, degraded, "
                "expired, failed), 0 for the others",
                ["model", "source", "state"],
                registry=registry,
            ),
            events=Counter(
                "tbotd_events_total",
                "Audit events by kind (reconciliation differences, unprotected positions, "
                "model states, ...): what the alert rules watch",
                ["kind"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class NotifyMetrics:
    """What the notifier counts: messages per target, drops by reason, failing targets."""

    sent: Counter
    dropped: Counter
    seconds: Histogram
    target_up: Gauge
    queued: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotifyMetrics:
        """Register the notification metrics in ``registry``."""
        return cls(
            sent=Counter(
                "tbotd_notifications_total",
                "Messages handed to a notification target, by target and result (sent, failed)",
                ["target", "result"],
                registry=registry,
            ),
            dropped=Counter(
                "tbotd_notifications_dropped",
                "Notices not sent, by why (duplicate, cooling_down, unchanged, rate_limited, "
                "queue_full) and severity",
                ["reason", "severity"],
                registry=registry,
            ),
            seconds=Histogram(
                "tbotd_notification_send_seconds",
                "Duration of each send attempt, by target",
                ["target"],
                buckets=_LATENCY_BUCKETS_S,
                registry=registry,
            ),
            target_up=Gauge(
                "tbotd_notification_target_up",
                "1 while the target's last message went through, 0 after a failure",
                ["target"],
                registry=registry,
            ),
            queued=Gauge(
                "tbotd_notification_queue",
                "Messages waiting for the target",
                ["target"],
                registry=registry,
            ),
        )


PREDICTOR_METRICS = PredictorMetrics.create(REGISTRY)
DAEMON_METRICS = DaemonMetrics.create(REGISTRY)
SERVE_METRICS = ServeMetrics.create(REGISTRY)
NOTIFY_METRICS = NotifyMetrics.create(REGISTRY)


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
