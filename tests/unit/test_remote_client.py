"""The remote client's rules that need no server: auth header, the https/loopback rule, the
circuit breaker, Retry-After and the retry helper's deadline."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from tbotd.config.settings import MLConfig
from tbotd.domain.errors import ConfigError, RateLimitedError, RetryableError
from tbotd.ops.clock import ManualClock
from tbotd.ops.retry import Backoff, retry
from tbotd.predictor import jsonapi
from tbotd.predictor.breaker import BreakerState, CircuitBreaker
from tbotd.predictor.remote import RemotePredictor, auth_headers, retry_after_s
from tests.synthetic import random_walk, to_candles

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TOKEN = "PLANTED-unit-token-31d7"


def ml(url: str, **extra: object) -> MLConfig:
    return MLConfig.model_construct(
        **{**MLConfig().model_dump(), "remote_url": url, "token": SecretStr(TOKEN), **extra}
    )


def test_bearer_header_name_and_scheme_are_configurable() -> None:
    """Default `Authorization: Bearer <token>`; another header and an empty scheme work too."""
    assert auth_headers(ml("https://ml.example.com")) == {"Authorization": f"Bearer {TOKEN}"}
    custom = ml("https://ml.example.com", auth_header="X-Api-Key", auth_scheme="")
    assert auth_headers(custom) == {"X-Api-Key": TOKEN}
    no_token = MLConfig(remote_url="http://10.0.0.5:8000")
    assert auth_headers(no_token) == {}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8600", "http://localhost:8600", "http://[::1]:8600", "https://x.io"]
)
def test_token_travels_over_https_or_to_loopback(url: str) -> None:
    """Loopback http and any https are allowed."""
    assert auth_headers(ml(url))


@pytest.mark.parametrize("url", ["http://10.0.0.5:8600", "http://ml.example.com", "http://0.0.0.0"])
def test_token_is_refused_over_plain_http_to_other_hosts(url: str) -> None:
    """Config validation refuses it, and so does the client (defence in depth)."""
    with pytest.raises(ValidationError, match="plain http"):
        MLConfig(remote_url=url, token=SecretStr(TOKEN))
    with pytest.raises(ConfigError, match="https"):
        RemotePredictor(ml(url))
    with pytest.raises(ConfigError, match="https") as caught:
        auth_headers(ml(url))
    assert TOKEN not in str(caught.value)


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    """3 failures open it; it refuses calls during the cooldown, then lets one probe through."""
    now = [0.0]
    breaker = CircuitBreaker("x", failure_threshold=3, cooldown_s=60, monotonic=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        assert not breaker.record_failure("http_5xx")
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        breaker.record_failure("http_5xx")
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    now[0] = 59.0
    assert not breaker.allow()
    now[0] = 60.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time
    breaker.record_failure("timeout")  # failed probe: open for another cooldown
    assert breaker.state is BreakerState.OPEN
    now[0] = 120.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_breaker_trips_at_once_on_auth_and_replaces_a_lost_probe() -> None:
    """trip() opens without counting; a probe that never reports is replaced after a cooldown."""
    now = [0.0]
    breaker = CircuitBreaker("x", failure_threshold=5, cooldown_s=10, monotonic=lambda: now[0])
    breaker.trip("auth")
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.allow()
    now[0] = 15.0
    assert not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()


def test_retry_after_in_seconds_or_as_a_date() -> None:
    """Both forms of Retry-After are understood; garbage is ignored."""
    assert retry_after_s("7", T0) == 7.0
    assert retry_after_s("Mon, 01 Jan 2024 00:00:30 GMT", T0) == 30.0
    assert retry_after_s("soon", T0) is None
    assert retry_after_s(None, T0) is None


async def test_retry_does_not_sleep_past_its_deadline() -> None:
    """A Retry-After longer than the time left ends the loop at once with the error."""
    clock = ManualClock(T0)
    calls = 0

    async def limited() -> None:
        nonlocal calls
        calls += 1
        raise RateLimitedError("429", retry_after_s=30)

    with pytest.raises(RateLimitedError):
        await retry(
            limited, "t", Backoff(attempts=3), clock, random.Random(1), T0 + timedelta(seconds=5)
        )
    assert calls == 1
    assert clock.now() == T0


async def test_retry_within_the_deadline_still_retries() -> None:
    """Backoffs that fit before the deadline are slept as usual."""
    clock = ManualClock(T0)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError("503")
        return "ok"

    task = asyncio.create_task(
        retry(
            flaky,
            "t",
            Backoff(attempts=3, base_s=1, cap_s=1),
            clock,
            random.Random(1),
            T0 + timedelta(seconds=10),
        )
    )
    for _ in range(5):
        await clock.advance(1)
    assert await task == "ok"
    assert calls == 3


def test_cached_candle_rows_encode_exactly_like_a_fresh_encoding() -> None:
    """The per-cycle text cache gives the same request as encoding everything anew."""
    candles = to_candles(random_walk(40, seed=3))
    cache = jsonapi.CandleRowsCache()
    for end in (30, 31, 33, 40):  # successive cycles, one or more new candles each
        window = candles[end - 20 : end]
        t = window[-1].open_time
        text = cache.rows_json("BTC/USDT:USDT", window)
        assert json.loads(text) == jsonapi.candle_rows(window)
        for n in (1, 2):
            fresh = [jsonapi.request_for(f"S{i}", t, jsonapi.candle_rows(window)) for i in range(n)]
            cached = [(f"S{i}", t, text) for i in range(n)]
            path, body = jsonapi.encode_request_texts(cached)
            want_path, want_body = jsonapi.encode_requests(fresh)
            assert path == want_path
            assert json.loads(body) == json.loads(want_body)
