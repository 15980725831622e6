"""Where ccxt should send a sim's requests: the ``urls`` override for its constructor."""

from __future__ import annotations

from typing import Any

# Every REST base URL of ccxt's binance classes, mapped to the same path on the sim. The sim
# serves the futures ones; the rest are pointed at it too, so nothing can leak to the internet
# (a call the sim does not serve gets a JSON 404 instead).
_REST_PATHS = {
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
    "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1",
    "papi": "/papi/v1",
    "papiV2": "/papi/v2",
}
MARKETS = ("linear", "inverse")


def ccxt_urls(base_url: str, market: str = "linear") -> dict[str, Any]:
    """The ``urls`` override that points ccxt's ``binanceusdm`` / ``binancecoinm`` at a sim.

    ``base_url`` is what :meth:`SimExchange.start` returned (``http://127.0.0.1:PORT``).
    ``market`` is ``"linear"`` (``binanceusdm``) or ``"inverse"`` (``binancecoinm``); both
    venues' REST and websocket URLs are always included, so one override serves either class::

        ccxt.pro.binanceusdm({"apiKey": KEY, "secret": SECRET,
                              "urls": ccxt_urls(url), "options": {"fetchCurrencies": False}})
    """
    if market not in MARKETS:
        raise ValueError(f"market must be 'linear' or 'inverse', got {market!r}")
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be http(s)://host:port, got {base_url!r}")
    ws_base = "ws" + base[len("http") :]
    api: dict[str, Any] = {name: base + path for name, path in _REST_PATHS.items()}
    api["ws"] = {
        "linear": ws_base + "/fstream/ws",
        "inverse": ws_base + "/dstream/ws",
        "ws-api": {
            "linear": ws_base + "/ws-fapi/v1",
            "inverse": ws_base + "/ws-dapi/v1",
        },
    }
    return {"api": api}
