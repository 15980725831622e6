"""The local exchange: a Binance futures venue that ccxt trades against unchanged (README: Local
exchange).

One aiohttp server speaks Binance USDⓈ-M (``/fapi``, ``BTCUSDT``) and COIN-M (``/dapi``,
``BTCUSD_PERP``, 100 USD contracts settled in BTC) REST and websocket protocols, well enough for
ccxt's own ``binanceusdm`` / ``binancecoinm`` classes with only ``urls`` overridden
(:func:`ccxt_urls`, or :func:`tbotd.sim.client.make_ccxt`).

Modules: ``server`` (:class:`SimExchange`), ``clock`` (market vs. wall clock), ``sources`` and
``market`` (candles, the intra-candle price path), ``instruments``, ``accounts`` (margin
arithmetic), ``matching``/``trading``/``triggers`` (orders, fills, funding, liquidation),
``auth`` (signatures, errors), ``rest_*`` and ``ws`` (the protocol), ``faults``, ``admin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tbotd.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from tbotd.sim.faults import FaultConfig
from tbotd.sim.urls import ccxt_urls

if TYPE_CHECKING:
    from tbotd.sim.server import SimExchange


def __getattr__(name: str) -> Any:
    """The server on first use: a daemon that only talks to the sim (its ccxt client and demo
    account) does not load the venue itself, nor the CSV readers' pandas."""
    if name == "SimExchange":
        from tbotd.sim.server import SimExchange

        return SimExchange
    raise AttributeError(name)


__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "FaultConfig",
    "SimConfig",
    "SimExchange",
    "ccxt_urls",
]
