"""Request authentication of the sim: HMAC over the exact bytes, keys, recvWindow."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tbotd.sim.auth import SimError, authenticate

SECRETS = {"key": "secret"}
NOW = 1_700_000_000_000


def _sign(payload: str, secret: str = SECRETS["key"]) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _check(
    query: str = "", body: str = "", key: str | None = "key", now: int = NOW
) -> dict[str, str]:
    return authenticate(
        api_key=key, raw_query=query, raw_body=body, secrets=SECRETS, wall_now_ms=now
    ).params


def _code(**kwargs: object) -> int:
    with pytest.raises(SimError) as info:
        _check(**kwargs)  # type: ignore[arg-type]
    return info.value.code


def test_signature_over_the_exact_query_is_accepted() -> None:
    """A request signed over its exact query string passes, with its parameters parsed."""
    query = f"timestamp={NOW}&symbol=BTCUSDT&recvWindow=10000"
    params = _check(query=f"{query}&signature={_sign(query)}")
    assert params["symbol"] == "BTCUSDT"


def test_reordered_parameters_break_the_signature() -> None:
    """The same parameters in another order are different bytes: -1022, as on Binance."""
    signed = f"timestamp={NOW}&symbol=BTCUSDT"
    assert _code(query=f"symbol=BTCUSDT&timestamp={NOW}&signature={_sign(signed)}") == -1022


def test_query_and_body_are_signed_together() -> None:
    """For a POST the signature covers the query string followed by the body."""
    query, body = "symbol=BTCUSDT", f"side=BUY&timestamp={NOW}"
    params = _check(query=query, body=f"{body}&signature={_sign(query + body)}")
    assert params["side"] == "BUY"


def test_wrong_secret_missing_signature_and_keys() -> None:
    """Wrong secret → -1022; no signature → -1102; no key → -2014; unknown key → -2015."""
    query = f"timestamp={NOW}"
    assert _code(query=f"{query}&signature={_sign(query, 'other')}") == -1022
    assert _code(query=query) == -1102
    assert _code(query=query, key=None) == -2014
    assert _code(query=query, key="stranger") == -2015


@pytest.mark.parametrize(
    ("timestamp", "window", "ok"),
    [
        (NOW - 4000, None, True),
        (NOW - 6000, None, False),
        (NOW - 6000, 10000, True),
        (NOW + 900, None, True),
        (NOW + 1500, None, False),
    ],
)
def test_timestamp_must_be_inside_recv_window(timestamp: int, window: int | None, ok: bool) -> None:
    """Requests older than recvWindow (default 5 s) or more than 1 s ahead fail with -1021."""
    query = f"timestamp={timestamp}" + (f"&recvWindow={window}" if window else "")
    signed = f"{query}&signature={_sign(query)}"
    if ok:
        _check(query=signed)
    else:
        assert _code(query=signed) == -1021
