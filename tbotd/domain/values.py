"""Exact money, tz-aware time and timeframes: the value rules every domain object relies on.

Money and quantities are :class:`~decimal.Decimal`, parsed from the exchange's strings, never
binary floats. Times are tz-aware UTC datetimes in the core and integer milliseconds at the edges
(exchange, SQLite), converted only here.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

from tbotd.domain.errors import InvalidDataError

_TIMEFRAME = re.compile(r"^(\d+)([mhdw])$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def to_decimal(value: object, name: str = "value") -> Decimal:
    """Parse an exchange string, int, float or Decimal into a finite Decimal.

    Floats go through their shortest ``repr`` so 0.1 becomes ``Decimal("0.1")``, not the binary
    expansion. NaN, infinities, booleans and anything unparsable are rejected with a message that
    names the field.
    """
    if isinstance(value, bool):
        raise InvalidDataError(f"{name}: expected a number, got a boolean {value!r}")
    try:
        if isinstance(value, Decimal):
            result = value
        elif isinstance(value, int):
            result = Decimal(value)
        elif isinstance(value, float):
            result = Decimal(repr(value))
        elif isinstance(value, str):
            result = Decimal(value.strip())
        else:
            raise InvalidDataError(f"{name}: expected a number, got {type(value).__name__}")
    except InvalidOperation as e:
        raise InvalidDataError(f"{name}: {value!r} is not a number") from e
    if not result.is_finite():
        raise InvalidDataError(f"{name}: {value!r} is not a finite number")
    return result


def require_finite(value: float, name: str) -> float:
    """Return ``value`` if it is a finite float (model outputs), else raise with the field name."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidDataError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidDataError(f"{name}: {value!r} is not a finite number")
    return float(value)


MONEY_QUANTUM = Decimal("0.00000001")


def book(value: Decimal) -> Decimal:
    """An amount of money (fee, PnL, funding) as a venue books it: 8 decimals, half-even.

    Binance settles to 1e-8; booking the same way in paper mode keeps paper and live accounts
    comparable to the last unit.
    """
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down (towards zero) to a multiple of ``step``: order sizes never round up."""
    if step <= 0:
        raise InvalidDataError(f"step must be positive, got {step}")
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    """Round a price to the nearest tick (half-even), as exchanges accept trigger prices."""
    if tick <= 0:
        raise InvalidDataError(f"tick must be positive, got {tick}")
    return (value / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


def require_utc(value: datetime, name: str = "time") -> datetime:
    """Return ``value`` converted to UTC; naive datetimes are rejected, never guessed."""
    if value.tzinfo is UTC:  # already UTC (what tbotd makes): as astimezone(UTC) would return
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidDataError(f"{name}: {value.isoformat()} has no time zone; tbotd uses UTC")
    return value.astimezone(UTC)


def ms_to_datetime(ms: int) -> datetime:
    """Exchange/SQLite milliseconds since the epoch to a tz-aware UTC datetime.

    A timestamp outside what a datetime can hold (years 1-9999) is bad data, not a crash.
    """
    try:
        return EPOCH + timedelta(milliseconds=ms)
    except OverflowError as e:
        raise InvalidDataError(f"timestamp {ms} ms is out of range") from e


def datetime_to_ms(value: datetime) -> int:
    """A tz-aware datetime to integer milliseconds since the epoch (exact, no float rounding)."""
    delta = require_utc(value) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def timeframe_ms(timeframe: str) -> int:
    """``"5m"`` → 300000. Only minute, hour, day and week frames are valid."""
    match = _TIMEFRAME.match(timeframe)
    if match is None or int(match.group(1)) == 0:
        raise InvalidDataError(f"timeframe {timeframe!r} is not like '1m', '5m', '1h', '1d'")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def timeframe_delta(timeframe: str) -> timedelta:
    """The timeframe as a timedelta."""
    return timedelta(milliseconds=timeframe_ms(timeframe))


def floor_time(value: datetime, timeframe: str) -> datetime:
    """The open time of the candle of ``timeframe`` that contains ``value``."""
    step = timeframe_ms(timeframe)
    ms = datetime_to_ms(value)
    return ms_to_datetime(ms - ms % step)
