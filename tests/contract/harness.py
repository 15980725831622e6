"""A venue the contract scenarios can script: candle by candle, for the paper and live brokers.

A scenario declares the next candle (``await h.next_candle(o, h, l, c)``): the venue's clock then
stands at that candle's open, so market orders fill at ``o``. ``await h.finish()`` plays the
candle to its close (the live venue walks its price path, triggering resting orders) and hands
the closed candle to the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from tbotd.domain import Candle, MarketSpec, MarketType
from tbotd.execution.broker import Broker, PriceRef
from tbotd.execution.paper import PaperBroker
from tbotd.execution.paper_model import FillParams
from tbotd.ops.clock import ManualClock
from tbotd.store import Store
from tbotd.strategy.exits import ExitParams

T0 = datetime(2024, 3, 4, 7, 0, tzinfo=UTC)  # an hour before a funding time
STEP = timedelta(minutes=5)
FEE_BPS = Decimal(5)
FUNDING_RATE = Decimal("0.0001")
EXITS = ExitParams(Decimal("1.5"), Decimal("2.0"), Decimal("1.0"), Decimal("2.0"))


@dataclass(frozen=True)
class Venue:
    """One market of the contract: its symbol, rules and the wallet it starts with."""

    market: MarketSpec
    balance: Decimal

    @property
    def symbol(self) -> str:
        """The unified symbol."""
        return self.market.symbol


LINEAR = Venue(
    MarketSpec(
        "BTC/USDT:USDT",
        MarketType.LINEAR,
        "USDT",
        Decimal("0.1"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal(5),
    ),
    Decimal(10000),
)
INVERSE = Venue(
    MarketSpec(
        "BTC/USD:BTC",
        MarketType.INVERSE,
        "BTC",
        Decimal("0.1"),
        Decimal(1),
        Decimal(1),
        contract_size=Decimal(100),
    ),
    Decimal(1),
)


class Harness(Protocol):
    """What every scenario needs from a venue."""

    venue: Venue
    broker: Broker
    store: Store
    candle_time: datetime  # open time of the candle being played

    async def next_candle(self, o: str, h: str, low: str, c: str) -> None:
        """Declare the next candle; the venue's clock stands at its open."""
        ...

    async def finish(self) -> Candle:
        """Play the declared candle to its close and give it to the broker."""
        ...

    async def restart(self) -> None:
        """A new broker process on the same database (and venue)."""
        ...

    async def resting_protection(self) -> dict[str, Decimal]:
        """Trigger prices of the protective orders resting on the venue, by role."""
        ...

    async def close(self) -> None:
        """Tear down."""
        ...


class PaperHarness:
    """The paper broker fed with scripted candles."""

    def __init__(self, venue: Venue, db: Path) -> None:
        self.venue, self.db = venue, db
        self.clock = ManualClock(T0)
        self.candle_time = T0 - STEP
        self._pending: Candle | None = None
        self.store = Store.open(db)
        self.broker = self._broker()

    def _broker(self) -> PaperBroker:
        return PaperBroker(
            store=self.store,
            markets={self.venue.symbol: self.venue.market},
            params=FillParams(slippage_bps=Decimal(0), taker_fee_bps=FEE_BPS),
            currency=self.venue.market.settle,
            initial_balance=self.venue.balance,
            instance="contract",
            clock=self.clock,
            prices=self._price,
            funding=self._funding,
            fallback_exits=EXITS,
        )

    def _price(self, _symbol: str) -> PriceRef:
        assert self._pending is not None, "declare the candle first"
        return PriceRef(self._pending.open, self._pending.open_time)

    async def _funding(self, _symbol: str, _at: datetime) -> Decimal | None:
        return FUNDING_RATE

    async def start(self) -> None:
        await self.broker.start()

    async def next_candle(self, o: str, h: str, low: str, c: str) -> None:
        self.candle_time += STEP
        self._pending = Candle(self.venue.symbol, "5m", self.candle_time, o, h, low, c, "1")
        await self.clock.set(self.candle_time)

    async def finish(self) -> Candle:
        assert self._pending is not None
        candle = self._pending
        await self.clock.set(candle.close_time)
        await self.broker.on_closed_candle(candle)
        return candle

    async def restart(self) -> None:
        await self.broker.stop()
        self.store.close()
        self.store = Store.open(self.db)
        self.broker = self._broker()
        await self.broker.start()

    async def resting_protection(self) -> dict[str, Decimal]:
        return {
            o.role.value: o.trigger_price
            for o in self.store.live_orders(self.venue.symbol)
            if o.trigger_price is not None
        }

    async def close(self) -> None:
        await self.broker.stop()
        self.store.close()
