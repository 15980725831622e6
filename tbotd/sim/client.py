"""ccxt pointed at a sim: the real ``binanceusdm`` / ``binancecoinm`` classes, one fix applied.

The only change to ccxt's behaviour is the error map. ccxt picks Binance's linear- or
inverse-specific error codes by the URL's host name (``fapi.binance.com``), so against
``127.0.0.1`` it would fall back to the common map and raise a bare ``ExchangeError`` for -2019
"Margin is insufficient" instead of ``InsufficientFunds`` (likewise -2022, -4116, -4164, ...).
The subclass selects the map by the URL's path (``/fapi/`` → linear, ``/dapi/`` → inverse).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tbotd.sim.config import DEMO_API_KEY, DEMO_API_SECRET
from tbotd.sim.urls import ccxt_urls

EXCHANGES = {"binanceusdm": "linear", "binancecoinm": "inverse"}


@cache
def _localhost_class(exchange_id: str, pro: bool) -> type[Any]:
    if pro:
        import ccxt.pro as module
    else:
        import ccxt.async_support as module
    base: type[Any] = getattr(module, exchange_id)

    def get_exceptions_by_url(self: Any, url: str | None, exact_or_broad: str) -> Any:
        kind = None
        if url is not None:
            kind = "linear" if "/fapi/" in url else "inverse" if "/dapi/" in url else None
        if kind is None:
            return base.get_exceptions_by_url(self, url, exact_or_broad)
        return self.safe_dict(self.safe_dict(self.exceptions, kind, {}), exact_or_broad, {})

    return type(exchange_id, (base,), {"get_exceptions_by_url": get_exceptions_by_url})


def make_ccxt(
    exchange_id: str,
    base_url: str,
    api_key: str = DEMO_API_KEY,
    secret: str = DEMO_API_SECRET,
    pro: bool = True,
    config: dict[str, Any] | None = None,
    **options: Any,
) -> Any:
    """An async ccxt client (``ccxt.pro`` when ``pro``) for the sim at ``base_url``.

    ``options`` go into ccxt's ``options`` (on top of ``fetchCurrencies=False``,
    ``adjustForTimeDifference=False`` — signing with market time would fail the sim's wall-clock
    recvWindow check — and ``maxRetriesOnFailure=0``); ``config`` adds top-level constructor
    settings such as ``{"timeout": 2000}``. Client-side rate limiting is off by default: the
    sim is local, and its own 429 fault exercises backoff. Close the client with
    ``await exchange.close()``.
    """
    if exchange_id not in EXCHANGES:
        raise ValueError(f"exchange_id must be one of {sorted(EXCHANGES)}, got {exchange_id!r}")
    settings: dict[str, Any] = {
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": False,
        "timeout_on_exit": 0,  # ccxt sleeps 250 ms in close() for TLS; plain http needs none
        "urls": ccxt_urls(base_url, EXCHANGES[exchange_id]),
        "options": {
            "fetchCurrencies": False,
            "adjustForTimeDifference": False,
            "maxRetriesOnFailure": 0,
            **options,
        },
    }
    settings.update(config or {})
    return _localhost_class(exchange_id, pro)(settings)
