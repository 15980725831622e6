"""The contracts the local exchange lists, and how they appear in ``exchangeInfo``.

Linear (USDⓈ-M, ``/fapi``) and inverse (COIN-M, ``/dapi``) perpetuals differ only in a few
numbers: what a contract is worth (1 coin vs. 100 USD), which asset margins and settles it, and
tick/step sizes. Everything else in the sim is shared, so those numbers live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tbotd.domain.enums import MarketType
from tbotd.domain.positions import notional

# Far in the future, as Binance reports for perpetuals (2100-12-25).
PERPETUAL_DELIVERY_MS = 4133404800000
ONBOARD_MS = 1569398400000
ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"]
TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX"]


@dataclass(frozen=True, slots=True)
class Instrument:
    """One perpetual contract. ``asset`` names the price series it trades on (``BTC``)."""

    symbol: str
    market_type: MarketType
    base: str
    quote: str
    margin_asset: str
    asset: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    contract_size: Decimal
    maint_margin_ratio: Decimal = Decimal("0.004")
    max_leverage: int = 125
    _price_quantum: Decimal = field(init=False, repr=False, compare=False)
    _qty_quantum: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_price_quantum", Decimal(1).scaleb(-self.price_precision))
        object.__setattr__(self, "_qty_quantum", Decimal(1).scaleb(-self.quantity_precision))

    @property
    def pair(self) -> str:
        """The underlying pair (``BTCUSD`` for ``BTCUSD_PERP``)."""
        return self.symbol.removesuffix("_PERP")

    @property
    def price_precision(self) -> int:
        """Decimal places of a price."""
        return max(0, -self.tick_size.normalize().as_tuple().exponent)  # type: ignore[operator]

    @property
    def quantity_precision(self) -> int:
        """Decimal places of a quantity."""
        return max(0, -self.step_size.normalize().as_tuple().exponent)  # type: ignore[operator]

    def price_str(self, price: Decimal) -> str:
        """A price as the exchange prints it: quantized to the tick's decimals."""
        return str(price.quantize(self._price_quantum))

    def qty_str(self, qty: Decimal) -> str:
        """A quantity as the exchange prints it."""
        return str(qty.quantize(self._qty_quantum))

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        """Value of ``qty`` contracts at ``price`` in the margin asset (always ≥ 0)."""
        return notional(self.market_type, abs(qty), self.contract_size, price)

    def exchange_info(self) -> dict[str, Any]:
        """This contract's entry in ``exchangeInfo.symbols``."""
        filters: list[dict[str, Any]] = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": str(self.tick_size),
                "maxPrice": "1000000",
                "tickSize": str(self.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": str(self.min_qty),
                "maxQty": str(self.max_qty),
                "stepSize": str(self.step_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": str(self.min_qty),
                "maxQty": str(self.max_qty),
                "stepSize": str(self.step_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ]
        entry: dict[str, Any] = {
            "symbol": self.symbol,
            "pair": self.pair,
            "contractType": "PERPETUAL",
            "deliveryDate": PERPETUAL_DELIVERY_MS,
            "onboardDate": ONBOARD_MS,
            "baseAsset": self.base,
            "quoteAsset": self.quote,
            "marginAsset": self.margin_asset,
            "pricePrecision": self.price_precision,
            "quantityPrecision": self.quantity_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": filters,
            "orderTypes": ORDER_TYPES,
            "timeInForce": TIME_IN_FORCE,
        }
        if self.market_type is MarketType.LINEAR:
            entry["status"] = "TRADING"
            entry["settlePlan"] = 0
            entry["requiredMarginPercent"] = "5.0000"
            entry["maintMarginPercent"] = "2.5000"
            filters.append({"filterType": "MIN_NOTIONAL", "notional": str(self.min_notional)})
        else:
            entry["contractStatus"] = "TRADING"
            entry["contractSize"] = int(self.contract_size)
            entry["equalQtyPrecision"] = 4
        return entry

    def leverage_bracket(self) -> dict[str, Any]:
        """One bracket covering every size: the sim uses a single maintenance margin ratio."""
        bracket: dict[str, Any] = {
            "bracket": 1,
            "initialLeverage": self.max_leverage,
            "maintMarginRatio": float(self.maint_margin_ratio),
            "cum": 0.0,
        }
        if self.market_type is MarketType.LINEAR:
            bracket.update(notionalCap=1_000_000_000, notionalFloor=0)
            return {"symbol": self.symbol, "brackets": [bracket]}
        bracket.update(qtyCap=1_000_000, qtyFloor=0)
        return {"symbol": self.symbol, "pair": self.pair, "brackets": [bracket]}


def _linear(base: str, tick: str, step: str, min_notional: str) -> Instrument:
    return Instrument(
        symbol=f"{base}USDT",
        market_type=MarketType.LINEAR,
        base=base,
        quote="USDT",
        margin_asset="USDT",
        asset=base,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(step),
        max_qty=Decimal(1000),
        min_notional=Decimal(min_notional),
        contract_size=Decimal(1),
    )


def _inverse(base: str, tick: str, contract_size: int) -> Instrument:
    return Instrument(
        symbol=f"{base}USD_PERP",
        market_type=MarketType.INVERSE,
        base=base,
        quote="USD",
        margin_asset=base,
        asset=base,
        tick_size=Decimal(tick),
        step_size=Decimal(1),
        min_qty=Decimal(1),
        max_qty=Decimal(1_000_000),
        min_notional=Decimal(0),
        contract_size=Decimal(contract_size),
    )


# BTC trades on the CSV when one is given; every other asset comes from the seeded generator.
DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    _linear("BTC", "0.10", "0.001", "100"),
    _linear("ETH", "0.01", "0.001", "20"),
    _inverse("BTC", "0.1", 100),
    _inverse("ETH", "0.01", 10),
)

# Starting price and generator tick of each asset's seeded series.
ASSET_PRICE_TICKS: dict[str, tuple[Decimal, Decimal]] = {
    "BTC": (Decimal(42000), Decimal("0.1")),
    "ETH": (Decimal(2300), Decimal("0.01")),
}
