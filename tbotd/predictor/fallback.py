"""The prediction chain: remote → local (GPU, else CPU) → neutral, always within the deadline.

The daemon calls ONE object per cycle::

    chain = FallbackPredictor.from_settings(settings, events=store, clock=clock)
    outcomes = await chain.predict(histories, candle_time)   # {symbol: PredictionOutcome}
    await chain.close()

``predict`` never raises for a source failure and returns, for every requested symbol, a
Prediction for exactly ``candle_time`` (the open time of the candle that just closed) before
``ml.deadline_s`` has passed: the remote service gets ``deadline_s - local_reserve_s``; symbols
it did not answer go to the local models (on CUDA when present; a CUDA failure retries them on a
CPU copy); what is left becomes the neutral "no new risk" prediction (``source=neutral``). Each
:class:`PredictionOutcome` carries its latency and the failures of the sources tried before it,
which are also counted (``tbotd_prediction_failures_total{source,reason}``). A refused token
(401/403) is an operator alert: an ``ml_auth_failed`` event row plus an error log line. When
the chain's state changes (the worst source any symbol got: remote, local, neutral) an
``ml-source`` event says so — the notifier's "ML down" and "ML back".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tbotd.config.settings import Settings
from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import ConfigError, InvalidDataError
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.domain.values import require_utc
from tbotd.ops.clock import Clock, SystemClock
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import PREDICTOR_METRICS, PredictorMetrics
from tbotd.predictor.errors import RemoteAuthError, RemoteError, SchemaMismatchError
from tbotd.predictor.expiry import Expiry, expired_answer, expiry_of
from tbotd.predictor.outcome import PredictionOutcome, Skip, SourceFailure
from tbotd.predictor.protocols import EventSink, LocalModel
from tbotd.predictor.remote import RemotePredictor
from tbotd.predictor.sources import (
    SourceWatch,
    describe_error,
    hopeless,
    whole_source_failures,
)

if TYPE_CHECKING:
    pass

log = get_logger(__name__)
_LOCAL_MARGIN_S = 0.025  # the neutral step needs microseconds; this absorbs event-loop lag


class _Cycle:
    """Book-keeping of one ``predict`` call."""

    def __init__(self, symbols: Sequence[str], candle_time: datetime, start: float) -> None:
        self.candle_time = candle_time
        self.start = start
        self.pending = list(symbols)
        self.failures: dict[str, list[SourceFailure]] = {s: [] for s in symbols}
        self.outcomes: dict[str, PredictionOutcome] = {}

    def fail(self, symbols: Sequence[str], failure: SourceFailure) -> None:
        for symbol in symbols:
            self.failures[symbol].append(failure)

    def done(self, symbol: str, prediction: Prediction, now: float) -> None:
        latency_ms = (now - self.start) * 1000
        self.outcomes[symbol] = PredictionOutcome(
            prediction, latency_ms, tuple(self.failures[symbol])
        )
        self.pending.remove(symbol)


class FallbackPredictor:
    """Remote, then local models, then neutral; see the module docstring."""

    def __init__(
        self,
        *,
        remote: RemotePredictor | None,
        local: Sequence[LocalModel] = (),
        local_unavailable: SourceFailure | None = None,
        deadline_s: float = 3.0,
        local_reserve_s: float = 0.5,
        events: EventSink | None = None,
        clock: Clock | None = None,
        metrics: PredictorMetrics = PREDICTOR_METRICS,
        max_model_age_days: float | None = None,
    ) -> None:
        if not 0 < local_reserve_s < deadline_s:
            raise ConfigError("local_reserve_s must be positive and below deadline_s")
        self.remote = remote
        self.local = tuple(local)
        self.local_unavailable = local_unavailable
        self.deadline_s = deadline_s
        self.local_reserve_s = local_reserve_s
        self._events = events
        self._clock = clock or SystemClock()
        self._metrics = metrics
        self._alerted: set[str] = set()
        self.max_model_age_days = max_model_age_days
        # per source: how many cycles in a row it failed as a whole, and the last such failure
        self.failing: dict[str, tuple[int, SourceFailure]] = {}
        self._sources = SourceWatch(_best_source(remote, self.local))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        events: EventSink | None = None,
        clock: Clock | None = None,
        metrics: PredictorMetrics = PREDICTOR_METRICS,
        remote: RemotePredictor | None = None,
        local: Sequence[LocalModel] | None = None,
    ) -> FallbackPredictor:
        """Build the chain from ``settings.ml`` (blocking: loads the local models).

        ``remote`` and ``local`` replace what the settings would build (tests inject them).
        Missing or untrusted local models are logged once here and reported every cycle as
        ``local: models_missing`` / ``models_invalid``; the chain then goes remote → neutral.
        """
        ml = settings.ml
        if remote is None and ml.remote_url:
            remote = RemotePredictor(ml, settings.exchange.timeframe, metrics=metrics)
        unavailable = None
        if local is None:
            local, unavailable = _local_models(settings)
        return cls(
            remote=remote,
            local=local,
            local_unavailable=unavailable,
            deadline_s=ml.deadline_s,
            local_reserve_s=ml.local_reserve_s,
            events=events,
            clock=clock,
            metrics=metrics,
            max_model_age_days=ml.max_model_age_days,
        )

    async def predict(
        self,
        histories: Mapping[str, Sequence[Candle]],
        candle_time: datetime,
        deadline_s: float | None = None,
    ) -> dict[str, PredictionOutcome]:
        """One outcome per symbol of ``histories``, each for ``candle_time``, within the deadline.

        ``histories`` map each symbol to its closed candles, oldest first, the newest being the
        candle that opened at ``candle_time``. ``deadline_s`` (wall-clock seconds from now)
        overrides ``ml.deadline_s`` for this call.
        """
        candle_time = require_utc(candle_time, "candle_time")
        loop = asyncio.get_running_loop()
        cycle = _Cycle(list(histories), candle_time, loop.time())
        deadline = cycle.start + (deadline_s if deadline_s is not None else self.deadline_s)
        reserve = min(self.local_reserve_s, (deadline - cycle.start) / 2)
        if self.remote is not None and cycle.pending:
            await self._remote(self.remote, histories, cycle, deadline - reserve)
        if self.local_unavailable is not None and cycle.pending:
            cycle.fail(cycle.pending, self.local_unavailable)
        for model in self.local:
            if cycle.pending:
                await self._local(model, histories, cycle, deadline - _LOCAL_MARGIN_S)
        for symbol in list(cycle.pending):
            reason = "; ".join(str(f) for f in cycle.failures[symbol]) or "no source configured"
            cycle.done(symbol, Prediction.neutral(symbol, candle_time, reason), loop.time())
        self._count(cycle)
        change = self._sources.observe(cycle.outcomes)
        if change is not None:
            self._alert("ml-source", change.message, **change.data)
        return cycle.outcomes

    async def _remote(
        self,
        remote: RemotePredictor,
        histories: Mapping[str, Sequence[Candle]],
        cycle: _Cycle,
        deadline: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        asked = list(cycle.pending)
        try:
            async with asyncio.timeout_at(deadline):
                result = await remote.predict(
                    {s: histories[s] for s in asked}, cycle.candle_time, deadline
                )
        except TimeoutError:
            cut = remote.cut_short  # retrying a refused connection when the deadline came
            why = SourceFailure("remote", cut.reason, str(cut)) if cut is not None else None
            cycle.fail(
                asked, why or SourceFailure("remote", "timeout", "no answer before the deadline")
            )
            return
        except RemoteError as e:
            cycle.fail(asked, SourceFailure("remote", e.reason, str(e)))
            self._remote_failed(e)
            return
        except Exception as e:  # noqa: BLE001 - a bug here must not cost the cycle its decision
            error = describe_error(e)
            log.error("remote predictor failed unexpectedly", error=error)  # noqa: TRY400 - fast
            cycle.fail(asked, SourceFailure("remote", "error", error))
            return
        now = loop.time()
        for symbol, prediction in result.predictions.items():
            expiry = expired_answer(prediction, self._clock.now(), self.max_model_age_days)
            if expiry is None:
                cycle.done(symbol, prediction, now)
            else:
                cycle.fail([symbol], SourceFailure("remote", "expired", str(expiry)))
                self._expired("remote", expiry)
        for symbol, rejection in result.rejections.items():
            cycle.fail([symbol], SourceFailure("remote", rejection.reason, rejection.detail))
        missing = [s for s in cycle.pending if not cycle.failures[s]]
        cycle.fail(missing, SourceFailure("remote", "missing", "no answer for this symbol"))
        if result.rejections:
            log.warning(
                "remote predictions rejected",
                rejected={s: f"{r.reason}: {r.detail}" for s, r in result.rejections.items()},
            )

    def _remote_failed(self, error: RemoteError) -> None:
        url = self.remote.url if self.remote is not None else ""
        if isinstance(error, RemoteAuthError):
            message = (
                f"the remote ML service refused the token (HTTP {error.status}): check "
                "BASIS_ML_API_TOKEN; predicting with the local models meanwhile"
            )
            log.error("remote ML token refused", url=url, status=error.status)
            self._alert("ml_auth_failed", message, status=error.status, url=url)
        elif isinstance(error, SchemaMismatchError):
            if str(error) not in self._alerted:
                self._alerted.add(str(error))
                self._alert("ml_schema_mismatch", str(error), url=url)
        elif error.reason == "breaker_open":
            log.info("remote skipped: circuit breaker open", error=str(error))
        else:
            log.warning("remote predictions failed", reason=error.reason, error=str(error))

    def _expired(self, source: str, expiry: Expiry) -> None:
        """One ``model-expired`` event (and error line) per model past its shelf life."""
        key = f"expired:{source}:{expiry.model}"
        if key in self._alerted:
            return
        self._alerted.add(key)
        log.error("model past its shelf life abstains", source=source, why=str(expiry))
        self._alert(
            "model-expired",
            f"{source}: {expiry}; it abstains until retrained",
            source=source,
            model=expiry.model,
            trained_until=expiry.trained_until.isoformat(),
        )

    def _alert(self, kind: str, message: str, **data: Any) -> None:
        if self._events is None:
            return
        try:
            self._events.record_event(self._clock.now(), kind, message, **data)
        except Exception:  # an alert that cannot be stored must not stop predictions
            log.exception("could not record the alert event", kind=kind)

    async def _local(
        self,
        model: LocalModel,
        histories: Mapping[str, Sequence[Candle]],
        cycle: _Cycle,
        deadline: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        source = model.source.value
        asked = [s for s in cycle.pending if not hopeless(cycle.failures[s])]
        if not asked:
            return
        if loop.time() >= deadline:
            cycle.fail(asked, SourceFailure(source, "timeout", "no time left"))
            return
        expiry = expiry_of(source, model.trained_until, self._clock.now(), self.max_model_age_days)
        if expiry is not None:
            cycle.fail(asked, SourceFailure(source, "expired", str(expiry)))
            self._expired(source, expiry)
            return
        try:
            async with asyncio.timeout_at(deadline):
                predictions, problems = await model.predict_partial(
                    {s: histories[s] for s in asked}
                )
        except TimeoutError:
            cycle.fail(asked, SourceFailure(source, "timeout", "local models did not answer"))
            return
        except Exception as e:  # noqa: BLE001 - e.g. a CUDA error: the next source takes over
            error = describe_error(e)
            log.error("local models failed", source=source, error=error)  # noqa: TRY400 - fast
            cycle.fail(asked, SourceFailure(source, "error", error))
            return
        now = loop.time()
        for symbol in asked:
            if symbol in problems or symbol not in predictions:
                skip = problems.get(symbol) or Skip("insufficient_history", "no prediction")
                cycle.fail([symbol], SourceFailure(source, skip.reason, skip.detail))
                continue
            try:
                prediction = predictions[symbol].check_for(symbol, cycle.candle_time)
            except InvalidDataError as e:
                cycle.fail([symbol], SourceFailure(source, "wrong_candle", str(e)))
                continue
            cycle.done(symbol, prediction, now)

    def _count(self, cycle: _Cycle) -> None:
        self.failing = whole_source_failures(self.failing, cycle.failures.values())
        sources: Counter[str] = Counter()
        for outcome in cycle.outcomes.values():
            source = outcome.source.value
            sources[source] += 1
            self._metrics.predictions.labels(source=source).inc()
            self._metrics.latency.labels(source=source).observe(outcome.latency_ms / 1000)
            for failure in outcome.failures:
                self._metrics.failures.labels(source=failure.source, reason=failure.reason).inc()
        if sources.get(PredictionSource.NEUTRAL.value):
            reasons = Counter(r for o in cycle.outcomes.values() for r in o.reasons)
            log.warning("neutral predictions used", count=sources["neutral"], reasons=dict(reasons))
        log.debug(
            "predictions",
            candle=cycle.candle_time.isoformat(),
            sources=dict(sources),
            max_latency_ms=round(
                max((o.latency_ms for o in cycle.outcomes.values()), default=0), 1
            ),
        )

    async def warm_up(self, histories: Mapping[str, Sequence[Candle]]) -> None:
        """Run the local models once on start-up history (results discarded, nothing counted).

        Their per-symbol caches (candles converted to arrays, feature windows) fill here, so
        the first live cycle is as fast as every other one. The remote service is not called.
        """
        for model in self.local:
            try:
                await model.predict_partial(histories)
            except Exception as e:  # noqa: BLE001 - a warm-up failure only means a cold first cycle
                log.warning("local model warm-up failed", source=model.source.value, error=str(e))

    def status(self) -> dict[str, Any]:
        """What the chain can use right now (for the ops endpoint's /status and /readyz)."""
        remote: dict[str, Any] | None = None
        if self.remote is not None:
            remote = {
                "url": self.remote.url,
                "wire_format": self.remote.config.wire_format.value,
                "breaker": self.remote.breaker.state.value,
                "last_failure": self.remote.breaker.last_reason or None,
            }
        return {
            "remote": remote,
            "local": [m.source.value for m in self.local],
            "local_unavailable": str(self.local_unavailable) if self.local_unavailable else None,
            "deadline_s": self.deadline_s,
            "drift": [
                {"model": m.model_version, "source": m.source.value} | m.drift_summary()
                for m in self.local
            ],
            "failing": {
                source: {"cycles": n, "reason": f.reason, "detail": f.detail}
                for source, n_f in self.failing.items()
                for n, f in [n_f]
            },
        }

    async def close(self) -> None:
        """Close the remote session and stop the local models' executors."""
        if self.remote is not None:
            await self.remote.close()
        for model in self.local:
            await asyncio.to_thread(model.close)


def _best_source(remote: RemotePredictor | None, local: Sequence[LocalModel]) -> PredictionSource:
    """The source the chain uses when nothing fails."""
    if remote is not None:
        return PredictionSource.REMOTE
    return local[0].source if local else PredictionSource.NEUTRAL


__all__ = [
    "EventSink",
    "FallbackPredictor",
    "LocalModel",
    "PredictionOutcome",
    "SourceFailure",
]


def _local_models(settings: Settings) -> tuple[Sequence[LocalModel], SourceFailure | None]:
    """The configured local models; torch is imported only when there is a models directory, so
    a daemon with only the remote API stays small (a 1 GB server is a common home)."""
    if settings.ml.models_dir is None:
        return [], SourceFailure("local", "not_configured", "ml.models_dir is not set")
    from tbotd.predictor.local import load_local_models

    return load_local_models(settings.ml.models_dir, settings)
