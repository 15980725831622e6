"""Configuration of the local exchange, and parsers for its command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tbotd.sim.faults import FaultConfig
from tbotd.sim.instruments import DEFAULT_INSTRUMENTS, Instrument

# The documented demo credentials every sim accepts unless --account replaces them.
DEMO_API_KEY = "tbotd-sim-demo-key"
DEMO_API_SECRET = "tbotd-sim-demo-secret"  # noqa: S105 - a public, documented demo secret
DEFAULT_ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 30


def _default_balances() -> dict[str, Decimal]:
    return {"USDT": Decimal(10000), "BTC": Decimal(1)}


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a sim run. The market at a given market time depends only on
    ``data`` (or ``seed`` and ``origin``) and that time.

    ``start`` defaults to 30 days after the first candle (CSV) or after ``origin``
    (generator), so there is history before "now" for klines. Generated series begin at
    ``origin``, or at the CSV's first UTC midnight when ``data`` is given.
    """

    data: Path | None = None
    funding_data: Path | None = None
    seed: int = 1
    origin: datetime = DEFAULT_ORIGIN
    start: datetime | None = None
    speed: float = 1.0
    manual_clock: bool = False
    accounts: tuple[tuple[str, str], ...] = ((DEMO_API_KEY, DEMO_API_SECRET),)
    balances: dict[str, Decimal] = field(default_factory=_default_balances)
    funding_rate: Decimal = Decimal("0.0001")
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    slippage_bps: Decimal = Decimal(1)
    faults: FaultConfig = field(default_factory=FaultConfig)
    admin: bool = False
    tick_s: float = 0.25
    ws_ping_s: float = 180.0
    instruments: tuple[Instrument, ...] = DEFAULT_INSTRUMENTS

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if self.tick_s <= 0 or self.ws_ping_s <= 0:
            raise ValueError("tick_s and ws_ping_s must be positive")
        if not self.accounts:
            raise ValueError("the sim needs at least one account")
        for name in ("maker_fee", "taker_fee", "slippage_bps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


def parse_account(spec: str) -> tuple[str, str]:
    """``KEY:SECRET`` → (key, secret)."""
    key, sep, secret = spec.partition(":")
    if not sep or not key or not secret:
        raise ValueError(f"account {spec!r} is not KEY:SECRET")
    return key, secret


def parse_balances(spec: str) -> dict[str, Decimal]:
    """``USDT=10000,BTC=1`` → {"USDT": 10000, "BTC": 1}."""
    out: dict[str, Decimal] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        asset, sep, amount = item.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation as e:
            raise ValueError(f"balance {item!r}: {amount!r} is not a number") from e
        if not sep or not asset.isalnum() or not value.is_finite() or value < 0:
            raise ValueError(f"balance {item!r} is not ASSET=AMOUNT with AMOUNT >= 0")
        out[asset.upper()] = value
    return out


def parse_start(text: str) -> datetime:
    """An ISO date/time (UTC when no zone is given) or epoch milliseconds."""
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    value = datetime.fromisoformat(text)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
