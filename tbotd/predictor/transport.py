"""HTTP for the remote ML client: one session, the token, timeouts, retries, status mapping.

Every request has explicit timeouts (connect and total; never aiohttp's 300 s default), each
capped by the time left before the caller's deadline; it is retried (at most ``ml.remote_retries``
times, full-jitter backoff, :func:`tbotd.ops.retry.retry`) only for connection errors, 5xx, 408
and 429 — ``Retry-After`` is honoured when it fits the deadline. Redirects are not followed, so
the token never travels to another host, and no message ever quotes headers or bodies. Each
attempt is counted in ``tbotd_remote_requests_total{outcome}``.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import ssl
from datetime import UTC, datetime, timedelta

import aiohttp

from tbotd.config.settings import MLConfig, sends_secrets_safely
from tbotd.domain.errors import ConfigError, RetryableError
from tbotd.domain.prediction import PREDICTION_SCHEMA_VERSION
from tbotd.ops.clock import Clock, SystemClock
from tbotd.ops.logs import register_secrets
from tbotd.ops.metrics import PredictorMetrics
from tbotd.ops.retry import Backoff, retry
from tbotd.predictor.errors import (
    InvalidResponseError,
    RemoteAuthError,
    RemoteError,
    RemoteHTTPError,
    RemoteRateLimitedError,
    RemoteRetryableError,
    RemoteTimeoutError,
)
from tbotd.predictor.jsonapi import SCHEMA_HEADER

MAX_RESPONSE_BYTES = 16 * 1024 * 1024


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


class Transport:
    """The HTTP side of one remote endpoint (see the module docstring)."""

    def __init__(
        self,
        config: MLConfig,
        metrics: PredictorMetrics,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
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
        self._session: aiohttp.ClientSession | None = None
        # the retryable failure a call was retrying when its deadline came (None while an
        # attempt is in flight): a service refusing connections until the deadline is down
        # ("connect"), which an operator must not read as merely slow ("timeout")
        self.cut_short: RemoteError | None = None

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

    async def call(self, method: str, path: str, body: bytes | None, deadline: float) -> bytes:
        """One request with retries; returns the 2xx body or raises a :class:`RemoteError`."""
        session = await self._session_for()
        loop = asyncio.get_running_loop()
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
            headers[SCHEMA_HEADER] = str(PREDICTION_SCHEMA_VERSION)

        self.cut_short = None

        async def attempt() -> bytes:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if self.cut_short is not None:
                    raise self.cut_short
                raise RemoteTimeoutError(f"{method} {path}: no time left before the deadline")
            self.cut_short = None
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
                if isinstance(e, RetryableError):
                    self.cut_short = e
                raise
            except asyncio.CancelledError:
                outcome = "deadline"
                raise
            except aiohttp.ConnectionTimeoutError as e:
                outcome = "connect"
                self.cut_short = RemoteRetryableError(f"{method} {path}: connect timeout")
                raise self.cut_short from e
            except TimeoutError as e:
                outcome = "timeout"
                raise RemoteTimeoutError(f"{method} {path}: no response in time") from e
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
                outcome = "connect"
                self.cut_short = RemoteRetryableError(f"{method} {path}: {type(e).__name__}")
                raise self.cut_short from e
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
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


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
