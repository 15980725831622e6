"""Binance-style errors and request authentication (HMAC-SHA256, API key, recvWindow).

The signature is checked over the exact bytes the client sent — the raw query string and body,
``signature`` removed — never over re-encoded parameters, as Binance does. Timestamps are checked
against the **wall** clock (see :mod:`tbotd.sim.clock`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
AHEAD_TOLERANCE_MS = 1000


class SimError(Exception):
    """A Binance error answer: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        """The JSON body Binance sends."""
        return {"code": self.code, "msg": self.msg}


def missing(name: str) -> SimError:
    """-1102: a mandatory parameter is absent."""
    return SimError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str, value: str) -> SimError:
    """-1100: a parameter has characters it may not have."""
    return SimError(-1100, f"Illegal characters found in parameter '{name}'; value '{value}'.")


def not_required(name: str) -> SimError:
    """-1106: a parameter was sent that this request does not take."""
    return SimError(-1106, f"Parameter '{name}' sent when not required.")


def invalid_symbol() -> SimError:
    """-1121: unknown symbol."""
    return SimError(-1121, "Invalid symbol.")


def unknown_order() -> SimError:
    """-2013: no such order."""
    return SimError(-2013, "Order does not exist.")


def cancel_rejected() -> SimError:
    """-2011: cancelling an order that is not open (or unknown)."""
    return SimError(-2011, "Unknown order sent.")


def insufficient_margin() -> SimError:
    """-2019: not enough available balance for the initial margin and fee."""
    return SimError(-2019, "Margin is insufficient.")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What authentication learned: the account key and the merged parameters."""

    api_key: str
    params: dict[str, str]


def parse_params(query: str, body: str) -> dict[str, str]:
    """Merge raw query and form body parameters (body wins), keeping blank values."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    params.update(parse_qsl(body, keep_blank_values=True))
    return params


def _strip_signature(raw: str) -> tuple[str, str | None]:
    parts = raw.split("&") if raw else []
    signature = None
    kept = []
    for part in parts:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def require_key(api_key: str | None, secrets: dict[str, str]) -> str:
    """The account key from ``X-MBX-APIKEY``; -2014 when absent, -2015 when unknown."""
    if not api_key:
        raise SimError(-2014, "API-key format invalid.", status=401)
    if api_key not in secrets:
        raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
    return api_key


def authenticate(
    *,
    api_key: str | None,
    raw_query: str,
    raw_body: str,
    secrets: dict[str, str],
    wall_now_ms: int,
) -> SignedRequest:
    """Check key, signature and timestamp of a signed (``USER_DATA``/``TRADE``) request."""
    key = require_key(api_key, secrets)
    query, query_sig = _strip_signature(raw_query)
    body, body_sig = _strip_signature(raw_body)
    signature = body_sig or query_sig
    params = parse_params(query, body)
    if "timestamp" not in params:
        raise missing("timestamp")
    if not signature:
        raise missing("signature")
    expected = hmac.new(secrets[key].encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise SimError(-1022, "Signature for this request is not valid.")
    check_timestamp(params, wall_now_ms)
    return SignedRequest(key, params)


def check_timestamp(params: dict[str, str], wall_now_ms: int) -> None:
    """-1021 when the request is from the future (> 1 s) or older than its recvWindow."""
    try:
        timestamp = int(params["timestamp"])
        window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except ValueError as e:
        raise illegal("timestamp", params.get("timestamp", "")) from e
    if window <= 0 or window > MAX_RECV_WINDOW_MS:
        raise SimError(-1131, "recvWindow must be less than 60000")
    if timestamp > wall_now_ms + AHEAD_TOLERANCE_MS:
        raise SimError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if wall_now_ms - timestamp > window:
        raise SimError(-1021, "Timestamp for this request is outside of the recvWindow.")
