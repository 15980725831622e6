"""The remote ML client: one aiohttp session, two wire formats, bounded by the cycle's deadline.

Public API (the fallback chain calls it; ``tbotd serve`` is its reference server)::

    client = RemotePredictor(settings.ml, timeframe="5m")
    result = await client.predict(histories, candle_time, deadline)  # deadline: loop.time() instant
    result.predictions   # {symbol: Prediction(source=remote)} accepted for exactly candle_time
    result.rejections    # {symbol: Rejection(reason, detail)} for entries that were refused
    await client.close()

Wire formats (``ml.wire_format``): ``json`` — the JSON prediction API of
:mod:`tbotd.predictor.jsonapi` (``POST /v1/predictions`` or ``/v1/predictions:batch``); ``oip`` —
the Open Inference Protocol v2 of :mod:`tbotd.predictor.oip` (all symbols' features in one
``POST /v2/models/{name}[/versions/{v}]/infer``, after a handshake — ``GET /v2/health/ready``, the
model's ready route and its metadata checked against the local feature schema — that is repeated
whenever the circuit breaker has opened, and at least hourly).

Authentication: ``{ml.auth_header}: {ml.auth_scheme} <BASIS_ML_API_TOKEN>``. The token comes only
from the environment / systemd credentials (the config loader refuses it in files), is registered
with the log redactor, never appears in a message, and is refused (:class:`ConfigError`) for plain
http except to loopback. Redirects are not followed, so the token never travels to another host.

Failure handling: timeouts and retries as :mod:`tbotd.predictor.transport` says, the whole call
bounded by ``deadline``; a :class:`CircuitBreaker` for the endpoint. Every failure is a
:class:`~tbotd.predictor.errors.RemoteError` with a ``reason`` label.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tbotd.config.settings import MLConfig, WireFormat
from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import ConfigError
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.features import WARMUP
from tbotd.ml.signals import prediction_from_outputs
from tbotd.ops.clock import Clock
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import PREDICTOR_METRICS, PredictorMetrics
from tbotd.predictor import jsonapi, oip
from tbotd.predictor.breaker import CircuitBreaker
from tbotd.predictor.errors import (
    BreakerOpenError,
    InvalidResponseError,
    Rejection,
    RemoteAuthError,
    RemoteError,
    RemoteHTTPError,
    RemoteNotReadyError,
    RemoteRetryableError,
    RemoteTimeoutError,
    SchemaMismatchError,
)
from tbotd.predictor.history import SeriesCache, latest_feature_rows, newest
from tbotd.predictor.transport import Transport, auth_headers, retry_after_s

log = get_logger(__name__)
HANDSHAKE_EVERY_S = 3600.0  # OIP: re-check the served model's schema at least hourly


@dataclass(frozen=True)
class RemoteResult:
    """What the remote said for one cycle: accepted predictions and per-symbol rejections."""

    predictions: dict[str, Prediction]
    rejections: dict[str, Rejection]
    sent: bool = True  # False when every symbol was refused before any request went out


class RemotePredictor:
    """Client of one remote ML endpoint (see the module docstring)."""

    def __init__(
        self,
        config: MLConfig,
        timeframe: str = "5m",
        *,
        metrics: PredictorMetrics = PREDICTOR_METRICS,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not config.remote_url:
            raise ConfigError("ml.remote_url is not set: there is no remote ML service to call")
        self.config = config
        self.url = config.remote_url
        self._http = Transport(config, metrics, clock, rng)
        self._metrics = metrics
        self._monotonic = monotonic
        self.breaker = CircuitBreaker(
            self.url, config.remote_breaker_failures, config.remote_breaker_cooldown_s, monotonic
        )
        self._cache = SeriesCache(WARMUP, timeframe)
        self._rows = jsonapi.CandleRowsCache()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tbotd-remote")
        self._verified_at: float | None = None
        self._logged_mismatches: set[str] = set()

    # --- the cycle --------------------------------------------------------------------------

    async def predict(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime, deadline: float
    ) -> RemoteResult:
        """Predictions for ``candle_time`` by ``deadline`` (an ``asyncio`` loop-time instant).

        Raises a :class:`RemoteError` (reason-labelled) when the remote gives nothing usable.
        """
        if not histories:
            return RemoteResult({}, {})
        if not self.breaker.allow():
            raise BreakerOpenError(
                f"circuit breaker open after {self.breaker.last_reason or 'failures'}; "
                f"next probe in {self.breaker.retry_in_s():.0f} s"
            )
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    result = await self._predict(histories, candle_time, deadline)
            except TimeoutError as e:
                if self._http.cut_short is not None:  # down until the deadline, not slow
                    raise self._http.cut_short from e
                raise RemoteTimeoutError("no answer within the cycle's deadline") from e
        except RemoteError as e:
            self._failed(e)
            raise
        except BaseException:
            self._failed(RemoteError("unexpected failure"))
            raise
        if result.predictions:
            self.breaker.record_success()
        elif result.sent:
            self.breaker.record_failure("no usable prediction")
        else:
            self.breaker.release()  # nothing was asked: not a verdict on the remote
        self._metrics.breaker_open.set(int(self.breaker.is_open))
        return result

    @property
    def cut_short(self) -> RemoteError | None:
        """The retryable failure the last call was retrying when its deadline came."""
        return self._http.cut_short

    def _failed(self, error: RemoteError) -> None:
        if isinstance(error, RemoteAuthError | SchemaMismatchError):
            self.breaker.trip(error.reason)
        else:
            self.breaker.record_failure(error.reason)
        if self.breaker.is_open:
            self._verified_at = None
        self._metrics.breaker_open.set(int(self.breaker.is_open))
        if isinstance(error, SchemaMismatchError) and str(error) not in self._logged_mismatches:
            self._logged_mismatches.add(str(error))
            log.error(
                "remote model refused: feature schema mismatch", url=self.url, error=str(error)
            )

    async def _predict(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime, deadline: float
    ) -> RemoteResult:
        if self.config.wire_format is WireFormat.OIP:
            return await self._predict_oip(histories, candle_time, deadline)
        return await self._predict_json(histories, candle_time, deadline)

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- JSON prediction API ----------------------------------------------------------------

    async def _predict_json(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime, deadline: float
    ) -> RemoteResult:
        symbols, encoded, rejections = await self._off_loop(
            self._json_requests, histories, candle_time
        )
        if encoded is None:
            return RemoteResult({}, rejections, sent=False)
        path, body = encoded
        data = await self._http.call("POST", path, body, deadline)
        predictions, rejected = jsonapi.decode_predictions(data, symbols, candle_time)
        return RemoteResult(predictions, rejections | rejected)

    def _json_requests(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime
    ) -> tuple[list[str], tuple[str, bytes] | None, dict[str, Rejection]]:
        """(symbols asked, (path, body) or None, symbols refused before asking) — blocking."""
        count = self.config.remote_candles
        requests: list[tuple[str, datetime, str | None]] = []
        rejections: dict[str, Rejection] = {}
        for symbol, history in histories.items():
            if not count:
                requests.append((symbol, candle_time, None))
                continue
            candles = newest(history, count)
            if not candles or candles[-1].open_time != candle_time:
                rejections[symbol] = _stale(symbol, candle_time)
                continue
            requests.append((symbol, candle_time, self._rows.rows_json(symbol, candles)))
        symbols = [symbol for symbol, _, _ in requests]
        encoded = jsonapi.encode_request_texts(requests) if requests else None
        return symbols, encoded, rejections

    # --- Open Inference Protocol v2 ---------------------------------------------------------

    async def _predict_oip(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime, deadline: float
    ) -> RemoteResult:
        now = self._monotonic()
        if self._verified_at is None or now - self._verified_at >= HANDSHAKE_EVERY_S:
            await self._handshake(deadline)
            self._verified_at = now
        symbols, series, features, problems = await self._off_loop(
            latest_feature_rows, self._cache, histories, WARMUP
        )
        rejections = {s: Rejection("insufficient_history", p) for s, p in problems.items()}
        finite = oip.finite_rows(features)
        rows: list[int] = []
        for i, (symbol, s) in enumerate(zip(symbols, series, strict=True)):
            if s.candles[-1].open_time != candle_time:
                rejections[symbol] = _stale(symbol, candle_time)
            elif not finite[i]:
                rejections[symbol] = Rejection("invalid_features", "a feature is NaN or infinite")
            else:
                rows.append(i)
        if not rows:
            return RemoteResult({}, rejections, sent=False)
        request_id = uuid.uuid4().hex
        body = await self._off_loop(
            oip.encode_infer_request, features[rows], request_id, candle_time
        )
        path = oip.model_path(self.config.model_name, self.config.model_version) + "/infer"
        data = await self._http.call("POST", path, body, deadline)
        decoded = oip.decode_infer_response(data, len(rows), request_id)
        predictions: dict[str, Prediction] = {}
        for k, i in enumerate(rows):
            symbol = symbols[i]
            if k in decoded.bad_rows:
                rejections[symbol] = Rejection("invalid_prediction", decoded.bad_rows[k])
                continue
            try:
                predictions[symbol] = prediction_from_outputs(
                    symbol,
                    candle_time,
                    decoded.outputs,
                    k,
                    decoded.model_version,
                    PredictionSource.REMOTE,
                    decoded.trained_until,
                )
            except ValidationError as e:
                rejections[symbol] = Rejection("invalid_prediction", str(e)[:300])
        return RemoteResult(predictions, rejections)

    async def handshake(self, deadline: float) -> None:
        """OIP: check now what the first cycle would check (a daemon may call it at start-up).

        Server ready, model ready, and the model's metadata (or Triton configuration) matching
        the local feature schema; raises the :class:`RemoteError` that a cycle would see. The
        JSON API has no such routes: nothing to do.
        """
        if self.config.wire_format is WireFormat.OIP:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                await self._handshake(deadline)

    async def _handshake(self, deadline: float) -> None:
        """Server ready, model ready, model metadata (and config) match our feature schema."""
        name, version = self.config.model_name, self.config.model_version
        if await self._status("/v2/health/ready", deadline) != 200:
            raise RemoteNotReadyError("GET /v2/health/ready did not answer 200")
        path = oip.model_path(name, version)
        if await self._status(path + "/ready", deadline) != 200:
            raise RemoteNotReadyError(f"GET {path}/ready did not answer 200")
        meta = jsonapi.strict_json_loads(await self._http.call("GET", path, None, deadline))
        declared = oip.check_metadata(meta, name)
        if declared is None:
            declared = await self._config_schema_hash(path, deadline)
        oip.check_schema_hash(declared, self.config.remote_require_schema_hash)

    async def _config_schema_hash(self, path: str, deadline: float) -> str | None:
        """Triton keeps model parameters in its configuration (``GET .../config``)."""
        try:
            data = await self._http.call("GET", path + "/config", None, deadline)
        except (RemoteHTTPError, InvalidResponseError):
            return None
        try:
            return oip.schema_hash_from_config(jsonapi.strict_json_loads(data))
        except InvalidResponseError:
            return None

    async def _status(self, path: str, deadline: float) -> int:
        """The HTTP status of a health route (the body is ignored, as the spec advises)."""
        try:
            await self._http.call("GET", path, None, deadline)
        except (RemoteHTTPError, RemoteRetryableError) as e:
            if isinstance(e, RemoteRetryableError) and e.reason == "connect":
                raise
            return 503
        return 200

    # --- HTTP -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the HTTP session and stop the encoding thread."""
        await self._http.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _stale(symbol: str, candle_time: datetime) -> Rejection:
    return Rejection(
        "stale_history",
        f"{symbol}: the newest candle given is not the one of {candle_time.isoformat()}",
    )


__all__ = ["RemotePredictor", "RemoteResult", "auth_headers", "retry_after_s"]
