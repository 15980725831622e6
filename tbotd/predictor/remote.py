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
whenever the circuit breaker has opened).

Authentication: ``{ml.auth_header}: {ml.auth_scheme} <BASIS_ML_API_TOKEN>``. The token comes only
from the environment / systemd credentials (the config loader refuses it in files), is registered
with the log redactor, never appears in a message, and is refused (:class:`ConfigError`) for plain
http except to loopback. Redirects are not followed, so the token never travels to another host.

Failure handling: explicit timeouts on every request (never aiohttp's 300 s default), each capped by
the time left before ``deadline``; at most ``ml.remote_retries`` (≤ 2) retries with full-jitter
backoff and only for connect errors, 5xx, 408 and 429 (``Retry-After`` honoured when it fits the
deadline) via :func:`tbotd.ops.retry.retry`; a :class:`CircuitBreaker` for the endpoint. Every
failure is a :class:`~tbotd.predictor.errors.RemoteError` with a ``reason`` label.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from pydantic import ValidationError

from tbotd.config.settings import MLConfig, WireFormat, sends_secrets_safely
from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import ConfigError
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.features import WARMUP
from tbotd.ml.signals import prediction_from_outputs
from tbotd.ops.clock import Clock, SystemClock
from tbotd.ops.logs import get_logger, register_secrets
from tbotd.ops.metrics import PREDICTOR_METRICS, PredictorMetrics
from tbotd.ops.retry import Backoff, retry
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
    RemoteRateLimitedError,
    RemoteRetryableError,
    RemoteTimeoutError,
    SchemaMismatchError,
)
from tbotd.predictor.history import SeriesCache, latest_feature_rows, newest

log = get_logger(__name__)
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RemoteResult:
    """What the remote said for one cycle: accepted predictions and per-symbol rejections."""

    predictions: dict[str, Prediction]
    rejections: dict[str, Rejection]
    sent: bool = True  # False when every symbol was refused before any request went out


def auth_headers(config: MLConfig) -> dict[str, str]:
    """The authentication header for ``config`` (empty without a token); checks the transport.

    Raises :class:`ConfigError` when a token would travel over plain http to a non-loopback host.
    """
    if config.token is None or not config.token.get_secret_value():
        return {}
    if not sends_secrets_safely(config.remote_url):
        raise ConfigError(
            f"refusing to send BASIS_ML_API_TOKEN to {config.remote_url}: plain http is only "
            "allowed to loopback hosts; use https"
        )
    token = config.token.get_secret_value()
    register_secrets([token])
    value = f"{config.auth_scheme} {token}" if config.auth_scheme else token
    return {config.auth_header: value}


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


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
        self._headers = auth_headers(config)
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._rng = rng
        self._policy = Backoff(
            attempts=config.remote_retries + 1,
            base_s=config.remote_backoff_s,
            cap_s=config.remote_backoff_cap_s,
        )
        self.breaker = CircuitBreaker(
            self.url, config.remote_breaker_failures, config.remote_breaker_cooldown_s, monotonic
        )
        self._cache = SeriesCache(WARMUP, timeframe)
        self._rows = jsonapi.CandleRowsCache()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tbotd-remote")
        self._session: aiohttp.ClientSession | None = None
        self._verified = False
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

    def _failed(self, error: RemoteError) -> None:
        if isinstance(error, RemoteAuthError | SchemaMismatchError):
            self.breaker.trip(error.reason)
        else:
            self.breaker.record_failure(error.reason)
        if self.breaker.is_open:
            self._verified = False
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
        data = await self._call("POST", path, body, deadline)
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
        if not self._verified:
            await self._handshake(deadline)
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
        data = await self._call("POST", path, body, deadline)
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
        meta = jsonapi.strict_json_loads(await self._call("GET", path, None, deadline))
        declared = oip.check_metadata(meta, name)
        if declared is None:
            declared = await self._config_schema_hash(path, deadline)
        oip.check_schema_hash(declared, self.config.remote_require_schema_hash)
        self._verified = True

    async def _config_schema_hash(self, path: str, deadline: float) -> str | None:
        """Triton keeps model parameters in its configuration (``GET .../config``)."""
        try:
            data = await self._call("GET", path + "/config", None, deadline)
        except (RemoteHTTPError, InvalidResponseError):
            return None
        try:
            return oip.schema_hash_from_config(jsonapi.strict_json_loads(data))
        except InvalidResponseError:
            return None

    async def _status(self, path: str, deadline: float) -> int:
        """The HTTP status of a health route (the body is ignored, as the spec advises)."""
        try:
            await self._call("GET", path, None, deadline)
        except (RemoteHTTPError, RemoteRetryableError) as e:
            if isinstance(e, RemoteRetryableError) and e.reason == "connect":
                raise
            return 503
        return 200

    # --- HTTP -------------------------------------------------------------------------------

    async def _session_for(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_context: ssl.SSLContext | bool = True
            if self.config.remote_ca_file is not None:
                ssl_context = ssl.create_default_context(cafile=str(self.config.remote_ca_file))
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_context, limit=8),
                timeout=self._timeout(self.config.remote_timeout_s),
                trust_env=False,
            )
        return self._session

    def _timeout(self, remaining_s: float) -> aiohttp.ClientTimeout:
        total = max(0.001, min(self.config.remote_timeout_s, remaining_s))
        connect = min(self.config.remote_connect_timeout_s, total)
        return aiohttp.ClientTimeout(
            total=total, connect=connect, sock_connect=connect, sock_read=total
        )

    async def _call(self, method: str, path: str, body: bytes | None, deadline: float) -> bytes:
        """One request with retries; returns the 2xx body or raises a :class:`RemoteError`."""
        session = await self._session_for()
        loop = asyncio.get_running_loop()
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"

        async def attempt() -> bytes:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RemoteTimeoutError(f"{method} {path}: no time left before the deadline")
            started = loop.time()
            outcome = "error"
            try:
                async with session.request(
                    method,
                    self.url + path,
                    data=body,
                    headers=headers,
                    timeout=self._timeout(remaining),
                    allow_redirects=False,
                ) as resp:
                    data = await _read_capped(resp)
                    outcome = _check_status(method, path, resp, self._clock.now())
                    return data
            except RemoteError as e:
                outcome = e.reason
                raise
            except asyncio.CancelledError:
                outcome = "deadline"
                raise
            except aiohttp.ConnectionTimeoutError as e:
                outcome = "connect"
                raise RemoteRetryableError(f"{method} {path}: connect timeout") from e
            except TimeoutError as e:
                outcome = "timeout"
                raise RemoteTimeoutError(f"{method} {path}: no response in time") from e
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
                outcome = "connect"
                raise RemoteRetryableError(f"{method} {path}: {type(e).__name__}") from e
            except aiohttp.ClientError as e:
                raise RemoteError(f"{method} {path}: {type(e).__name__}") from e
            finally:
                self._metrics.remote_requests.labels(outcome=outcome).inc()
                self._metrics.remote_seconds.observe(loop.time() - started)

        until = self._clock.now() + timedelta(seconds=deadline - loop.time())
        return await retry(
            attempt, f"remote {method} {path}", self._policy, self._clock, self._rng, until
        )

    async def close(self) -> None:
        """Close the HTTP session and stop the encoding thread."""
        if self._session is not None:
            await self._session.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _stale(symbol: str, candle_time: datetime) -> Rejection:
    return Rejection(
        "stale_history",
        f"{symbol}: the newest candle given is not the one of {candle_time.isoformat()}",
    )


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None and resp.content_length > MAX_RESPONSE_BYTES:
        raise InvalidResponseError(f"response of {resp.content_length} bytes is too large")
    data = bytearray()
    async for chunk in resp.content.iter_chunked(65536):
        data += chunk
        if len(data) > MAX_RESPONSE_BYTES:
            raise InvalidResponseError("response is too large")
    return bytes(data)


def _check_status(method: str, path: str, resp: aiohttp.ClientResponse, now: datetime) -> str:
    """ "ok" for 2xx, else the named error (the body is never quoted: it may echo headers)."""
    status = resp.status
    where = f"{method} {path}: HTTP {status}"
    if 200 <= status < 300:
        return "ok"
    if status in (401, 403):
        raise RemoteAuthError(f"{where}: the remote refused the token (BASIS_ML_API_TOKEN)", status)
    if status == 429:
        raise RemoteRateLimitedError(where, retry_after_s(resp.headers.get("Retry-After"), now))
    if status == 408:
        raise RemoteRetryableError(where, reason="http_408")
    if status >= 500:
        raise RemoteRetryableError(where, reason="http_5xx")
    raise RemoteHTTPError(where, reason=f"http_{status // 100}xx")
