"""Market data: candles and the trading rules of a market.

Constructors validate, so a Candle or MarketSpec that exists is one the strategy may trust; bad
rows from an exchange or a CSV fail here with a message saying what is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tbotd.domain.enums import MarketType
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import (
    datetime_to_ms,
    ms_to_datetime,
    require_utc,
    timeframe_delta,
    timeframe_ms,
    to_decimal,
)


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV candle of ``timeframe`` that opened at ``open_time`` (UTC).

    Prices and volume are Decimals parsed from the exchange's strings. ``open_time`` must be
    aligned to the timeframe; high must bound open and close from above, low from below.
    """

    symbol: str
    timeframe: str
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    def __post_init__(self) -> None:
        where = f"candle {self.symbol} {self.timeframe}"
        if not self.symbol:
            raise InvalidDataError(f"{where}: symbol is empty")
        step = timeframe_ms(self.timeframe)
        object.__setattr__(self, "open_time", require_utc(self.open_time, f"{where} open_time"))
        ms = datetime_to_ms(self.open_time)
        if ms % step:
            raise InvalidDataError(
                f"{where}: open_time {self.open_time.isoformat()} "
                f"is not aligned to {self.timeframe}"
            )
        where = f"{where} at {self.open_time.isoformat()}"
        for name in ("open", "high", "low", "close", "volume"):
            object.__setattr__(self, name, to_decimal(getattr(self, name), f"{where} {name}"))
        if self.low <= 0:
            raise InvalidDataError(f"{where}: low {self.low} is not a positive price")
        if self.high < self.low:
            raise InvalidDataError(f"{where}: high {self.high} is below low {self.low}")
        for name in ("open", "close"):
            price = getattr(self, name)
            if not self.low <= price <= self.high:
                raise InvalidDataError(
                    f"{where}: {name} {price} is outside [low {self.low}, high {self.high}]"
                )
        if self.volume < 0:
            raise InvalidDataError(f"{where}: volume {self.volume} is negative")

    @property
    def close_time(self) -> datetime:
        """The instant the candle closes (the next candle's open time)."""
        return self.open_time + timeframe_delta(self.timeframe)

    @property
    def open_time_ms(self) -> int:
        """Open time in epoch milliseconds, as exchanges and the store key candles."""
        return datetime_to_ms(self.open_time)

    @classmethod
    def from_row(
        cls, symbol: str, timeframe: str, row: list[object] | tuple[object, ...]
    ) -> Candle:
        """Build from a ccxt OHLCV row ``[ms, o, h, l, c, v]``, copying (ccxt mutates its rows)."""
        if len(row) < 6:
            raise InvalidDataError(f"candle {symbol}: row {row!r} has fewer than 6 fields")
        ms = row[0]
        if (
            isinstance(ms, bool)
            or not isinstance(ms, int | float)
            or not math.isfinite(ms)
            or ms != int(ms)
        ):
            raise InvalidDataError(f"candle {symbol}: timestamp {ms!r} is not integer milliseconds")
        try:
            open_time = ms_to_datetime(int(ms))
        except InvalidDataError as e:
            raise InvalidDataError(f"candle {symbol}: {e}") from e
        return cls(
            symbol,
            timeframe,
            open_time,
            *(to_decimal(v, f"candle {symbol} field {i}") for i, v in enumerate(row[1:6], 1)),
        )


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Trading rules of one perpetual market, as the exchange publishes them.

    ``contract_size`` is in base currency for linear markets (1 = one BTC per contract on
    Binance USDⓈ-M) and in quote currency for inverse ones (100 USD per contract on COIN-M).
    """

    symbol: str
    market_type: MarketType
    settle: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal = Decimal(0)
    contract_size: Decimal = Decimal(1)
    exchange_id: str = field(default="")

    def __post_init__(self) -> None:
        for name in ("tick_size", "step_size", "contract_size"):
            value = to_decimal(getattr(self, name), f"market {self.symbol} {name}")
            if value <= 0:
                raise InvalidDataError(f"market {self.symbol}: {name} must be positive")
            object.__setattr__(self, name, value)
        for name in ("min_qty", "min_notional"):
            value = to_decimal(getattr(self, name), f"market {self.symbol} {name}")
            if value < 0:
                raise InvalidDataError(f"market {self.symbol}: {name} must not be negative")
            object.__setattr__(self, name, value)
