"""Scripted venues for the contract suite: the same candles for the paper and the live broker.

A scenario gives its candles up front. ``await h.next_candle()`` moves the venue's clock to the
next candle's open (market orders fill at its open); ``await h.finish()`` plays it to its close —
the live venue (``tbotd sim``) walks its intra-candle path and triggers resting orders — and hands
the closed candle to the broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from tbotd.domain import Candle, MarginMode, MarketSpec, MarketType
from tbotd.execution.broker import Broker, PriceRef
from tbotd.execution.live import LiveBroker
from tbotd.execution.paper import PaperBroker
from tbotd.execution.paper_model import FillParams
from tbotd.execution.venue import CcxtVenue
from tbotd.ops.clock import ManualClock
from tbotd.sim import SimConfig, SimExchange
from tbotd.sim.client import make_ccxt
from tbotd.store import Store
from tbotd.strategy.exits import ExitParams
from tests.simkit import CSV_START, FollowingClock, write_candles

T0 = CSV_START  # 07:00 UTC: an hour before a funding time
STEP = timedelta(minutes=5)
FEE_BPS = Decimal(5)
FUNDING_RATE = Decimal("0.0001")
EXITS = ExitParams(Decimal("1.5"), Decimal("2.0"), Decimal("1.0"), Decimal("2.0"))
Bar = tuple[str, str, str, str]


@dataclass(frozen=True)
class Venue:
    """One market of the contract: its symbol, rules and the wallet it starts with."""

    market: MarketSpec
    balance: Decimal
    exchange_id: str

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
        Decimal(100),
    ),
    Decimal(10000),
    "binanceusdm",
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
    "binancecoinm",
)


class Harness(Protocol):
    """What every scenario needs from a venue."""

    venue: Venue
    broker: Broker
    store: Store
    candle_time: datetime  # open time of the candle being played

    async def next_candle(self) -> None:
        """Move to the next scripted candle's open."""
        ...

    async def finish(self) -> Candle:
        """Play the current candle to its close and give it to the broker."""
        ...

    async def restart(self) -> None:
        """A new broker (new process) on the same database and venue."""
        ...

    async def resting_protection(self) -> dict[str, Decimal]:
        """Trigger prices of the protective orders resting on the venue, by role."""
        ...

    async def close(self) -> None:
        """Tear down."""
        ...


class _Script:
    """Shared bookkeeping: the scripted candles, the clock, the store."""

    def __init__(self, venue: Venue, bars: Sequence[Bar], db: Path) -> None:
        self.venue, self.db = venue, db
        self.bars = [
            Candle(venue.symbol, "5m", T0 + i * STEP, *b, "20") for i, b in enumerate(bars)
        ]
        self.clock = ManualClock(T0 - STEP)
        self.index = -1
        self.store = Store.open(db)

    @property
    def candle(self) -> Candle:
        return self.bars[self.index]

    @property
    def candle_time(self) -> datetime:
        return T0 + self.index * STEP

    def price(self, _symbol: str) -> PriceRef:
        return PriceRef(self.candle.open, self.candle.open_time)


class PaperHarness(_Script):
    """The paper broker fed with the scripted candles."""

    def __init__(self, venue: Venue, bars: Sequence[Bar], db: Path) -> None:
        super().__init__(venue, bars, db)
        self.broker: PaperBroker = self._broker()

    def _broker(self) -> PaperBroker:
        return PaperBroker(
            store=self.store,
            markets={self.venue.symbol: self.venue.market},
            params=FillParams(slippage_bps=Decimal(0), taker_fee_bps=FEE_BPS),
            currency=self.venue.market.settle,
            initial_balance=self.venue.balance,
            instance="contract",
            clock=self.clock,
            prices=self.price,
            funding=self._funding,
            fallback_exits=EXITS,
        )

    async def _funding(self, _symbol: str, _at: datetime) -> Decimal | None:
        return FUNDING_RATE

    async def start(self) -> None:
        await self.broker.start()

    async def next_candle(self) -> None:
        self.index += 1
        await self.clock.set(self.candle_time)

    async def finish(self) -> Candle:
        await self.clock.set(self.candle.close_time)
        await self.broker.on_closed_candle(self.candle)
        return self.candle

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


class LiveHarness(_Script):
    """The live broker, through ccxt's real client, against `tbotd sim` playing the script."""

    def __init__(self, venue: Venue, bars: Sequence[Bar], db: Path) -> None:
        super().__init__(venue, bars, db)
        flat = Decimal(bars[0][0])
        csv = write_candles(db.with_suffix(".csv"), bars, history=40, after=400, flat=flat)
        self.sim = SimExchange(
            SimConfig(
                data=csv,
                start=T0 - STEP,
                manual_clock=True,
                slippage_bps=Decimal(0),
                taker_fee=FEE_BPS / 10_000,
                funding_rate=FUNDING_RATE,
                balances={"USDT": Decimal(10000), "BTC": Decimal(1)},
            )
        )
        self.broker: LiveBroker
        self._viewer: Any = None
        self.clock = FollowingClock(self.sim)  # type: ignore[assignment]

    def _broker(self) -> LiveBroker:
        exchange = make_ccxt(self.venue.exchange_id, self.sim.url, config={"timeout": 5000})
        return LiveBroker(
            store=self.store,
            venue=CcxtVenue(exchange, self.venue.market.market_type),
            symbols=[self.venue.symbol],
            currency=self.venue.market.settle,
            instance=f"contract|{self.store.owner()}",  # as daemon/app.py keys it
            clock=self.clock,
            prices=self.price,
            leverage=1,
            margin_mode=MarginMode.ISOLATED,
            fallback_exits=EXITS,
        )

    async def start(self) -> None:
        await self.sim.start("127.0.0.1", 0)
        self._viewer = make_ccxt(self.venue.exchange_id, self.sim.url, pro=False)
        await self._viewer.load_markets()
        self.broker = self._broker()
        await self.broker.start()

    async def next_candle(self) -> None:
        self.index += 1
        await self.sim.advance_to(self.candle_time)

    async def finish(self) -> Candle:
        await self.sim.advance_to(self.candle.close_time, step_s=15)
        await self.broker.on_closed_candle(self.candle)
        await self.broker.checked(self.venue.symbol)  # the close's protection check, done
        return self.candle

    async def restart(self) -> None:
        await self.broker.stop()
        self.store.close()
        self.store = Store.open(self.db)
        self.broker = self._broker()
        await self.broker.start()

    async def resting_protection(self) -> dict[str, Decimal]:
        orders = await self._viewer.fetch_open_orders(self.venue.symbol, params={"trigger": True})
        roles = {"STOP_MARKET": "stop_loss", "TAKE_PROFIT_MARKET": "take_profit"}
        return {roles[o["info"]["orderType"]]: Decimal(o["info"]["triggerPrice"]) for o in orders}

    async def close(self) -> None:
        await self.broker.stop()
        if self._viewer is not None:
            await self._viewer.close()
        await self.sim.stop()
        self.store.close()
