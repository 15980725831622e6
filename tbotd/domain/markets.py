"""Trading rules of the perpetual markets tbotd knows without asking an exchange.

The daemon loads the real rules from the exchange at start-up; the backtest (and tests) have no
exchange to ask, so they use this bundled table of Binance's published filters (tick, step and
minimum quantity, minimum notional, contract size) for its most traded perpetuals, or a table
``tbotd markets --refresh`` wrote from the exchange itself (``tbotd backtest --markets FILE``).
A symbol in neither is an error naming it — never BTC's rules assumed — unless its rules are
given explicitly (``tbotd backtest --tick-size ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from tbotd.domain.enums import MarketType
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import MarketSpec

BTCUSDT_PERP = MarketSpec(
    symbol="BTC/USDT:USDT",
    market_type=MarketType.LINEAR,
    settle="USDT",
    tick_size=Decimal("0.1"),
    step_size=Decimal("0.001"),
    min_qty=Decimal("0.001"),
    min_notional=Decimal(100),
    contract_size=Decimal(1),
    exchange_id="binanceusdm",
)
"""Binance USDⓈ-M BTCUSDT: tick 0.1 USDT, step and minimum 0.001 BTC, minimum notional 100 USDT
(as the exchange and `tbotd sim` list it)."""

BTCUSD_PERP = MarketSpec(
    symbol="BTC/USD:BTC",
    market_type=MarketType.INVERSE,
    settle="BTC",
    tick_size=Decimal("0.1"),
    step_size=Decimal(1),
    min_qty=Decimal(1),
    min_notional=Decimal(0),
    contract_size=Decimal(100),
    exchange_id="binancecoinm",
)
"""Binance COIN-M BTCUSD_PERP: tick 0.1 USD, whole contracts of 100 USD each."""


def _usdm(base: str, tick: str, step: str, min_notional: str) -> MarketSpec:
    """A Binance USDⓈ-M perpetual (linear, settled in USDT, contract size 1)."""
    return MarketSpec(
        symbol=f"{base}/USDT:USDT",
        market_type=MarketType.LINEAR,
        settle="USDT",
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(step),
        min_notional=Decimal(min_notional),
        contract_size=Decimal(1),
        exchange_id="binanceusdm",
    )


def _coinm(base: str, tick: str, contract_usd: int) -> MarketSpec:
    """A Binance COIN-M perpetual (inverse, settled in the coin, whole contracts)."""
    return MarketSpec(
        symbol=f"{base}/USD:{base}",
        market_type=MarketType.INVERSE,
        settle=base,
        tick_size=Decimal(tick),
        step_size=Decimal(1),
        min_qty=Decimal(1),
        min_notional=Decimal(0),
        contract_size=Decimal(contract_usd),
        exchange_id="binancecoinm",
    )


BUNDLED: tuple[MarketSpec, ...] = (
    BTCUSDT_PERP,
    BTCUSD_PERP,
    _usdm("ETH", "0.01", "0.001", "20"),
    _usdm("BNB", "0.01", "0.01", "5"),
    _usdm("SOL", "0.01", "1", "5"),
    _usdm("XRP", "0.0001", "0.1", "5"),
    _usdm("DOGE", "0.00001", "1", "5"),
    _usdm("ADA", "0.0001", "1", "5"),
    _coinm("ETH", "0.01", 10),
)
"""The bundled table, as Binance listed these filters when it was written (the ETH figures are
also what ``tbotd sim`` lists). Venues change them: refresh with ``tbotd markets --refresh``."""

KNOWN_MARKETS: dict[str, MarketSpec] = {m.symbol: m for m in BUNDLED}


def market_spec(
    symbol: str,
    market_type: MarketType,
    *,
    table: Mapping[str, MarketSpec] | None = None,
    tick_size: Decimal | None = None,
    step_size: Decimal | None = None,
    min_qty: Decimal | None = None,
    min_notional: Decimal | None = None,
    contract_size: Decimal | None = None,
) -> MarketSpec:
    """The rules of ``symbol``: a known market with optional overrides, or one built from them.

    An unknown symbol needs at least ``tick_size`` and ``step_size`` (the minimum quantity then
    defaults to one step, the minimum notional to 0 and the contract size to 1). A known symbol
    whose type differs from ``market_type`` is refused: sizing and PnL would be wrong.
    """
    overrides: dict[str, Any] = {
        k: v
        for k, v in (
            ("tick_size", tick_size),
            ("step_size", step_size),
            ("min_qty", min_qty),
            ("min_notional", min_notional),
            ("contract_size", contract_size),
        )
        if v is not None
    }
    known = (table or {}).get(symbol) or KNOWN_MARKETS.get(symbol)
    if known is not None:
        if known.market_type is not market_type:
            raise InvalidDataError(
                f"{symbol} is a {known.market_type} perp, but the config says {market_type}"
            )
        return replace(known, **overrides)
    if tick_size is None or step_size is None:
        raise InvalidDataError(
            f"no trading rules for {symbol} (bundled: {', '.join(KNOWN_MARKETS)}); refresh the "
            "table from the exchange with `tbotd markets --refresh` and pass it as --markets, "
            "or give at least the tick size and the step size"
        )
    settle = symbol.rsplit(":", 1)[-1]
    return MarketSpec(
        symbol=symbol,
        market_type=market_type,
        settle=settle,
        tick_size=tick_size,
        step_size=step_size,
        min_qty=step_size if min_qty is None else min_qty,
        min_notional=Decimal(0) if min_notional is None else min_notional,
        contract_size=Decimal(1) if contract_size is None else contract_size,
    )


def markets_data(specs: Mapping[str, MarketSpec], source: str) -> dict[str, Any]:
    """A table of market rules as JSON-ready data (exact decimals as text)."""
    return {
        "source": source,
        "markets": {
            s: {
                "type": str(m.market_type),
                "settle": m.settle,
                "tick_size": str(m.tick_size),
                "step_size": str(m.step_size),
                "min_qty": str(m.min_qty),
                "min_notional": str(m.min_notional),
                "contract_size": str(m.contract_size),
                "exchange_id": m.exchange_id,
            }
            for s, m in sorted(specs.items())
        },
    }


def markets_from(data: Mapping[str, Any], origin: str) -> dict[str, MarketSpec]:
    """The table :func:`markets_data` wrote; a malformed entry is an error naming it."""
    out: dict[str, MarketSpec] = {}
    for symbol, m in (data.get("markets") or {}).items():
        try:
            out[symbol] = MarketSpec(
                symbol=symbol,
                market_type=MarketType(m["type"]),
                settle=m["settle"],
                tick_size=Decimal(m["tick_size"]),
                step_size=Decimal(m["step_size"]),
                min_qty=Decimal(m["min_qty"]),
                min_notional=Decimal(m["min_notional"]),
                contract_size=Decimal(m["contract_size"]),
                exchange_id=m.get("exchange_id") or "",
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as e:
            raise InvalidDataError(f"{origin}: market {symbol}: {e!r}") from e
    if not out:
        raise InvalidDataError(f"{origin}: no markets in the table")
    return out
