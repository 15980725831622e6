"""What the sim remembers: every order, conditional (algo) order, fill and funding payment.

These are the exchange's own records. They are kept for the whole life of the sim (nothing is
purged), so a test or a chaos harness can check after the fact exactly what the venue executed,
whatever the client believes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)


class OrderStatus(StrEnum):
    """Binance order statuses (regular orders)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"

    @property
    def is_open(self) -> bool:
        """Open orders may still fill and hold their client id."""
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class AlgoStatus(StrEnum):
    """Binance algo-order statuses (conditional orders)."""

    NEW = "NEW"
    CANCELED = "CANCELED"
    TRIGGERING = "TRIGGERING"
    TRIGGERED = "TRIGGERED"
    FINISHED = "FINISHED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        """Open algo orders wait for their trigger."""
        return self is AlgoStatus.NEW


STOP_TYPES = frozenset({"STOP_MARKET", "STOP"})
TAKE_PROFIT_TYPES = frozenset({"TAKE_PROFIT_MARKET", "TAKE_PROFIT"})
ALGO_TYPES = STOP_TYPES | TAKE_PROFIT_TYPES


@dataclass
class SimOrder:
    """A regular order (MARKET or LIMIT), including children of triggered algo orders."""

    order_id: int
    client_id: str
    account: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT
    qty: Decimal
    price: Decimal  # limit price, 0 for market orders
    time_ms: int
    time_in_force: str = "GTC"
    reduce_only: bool = False
    close_position: bool = False
    orig_type: str = ""
    stop_price: Decimal = ZERO
    status: OrderStatus = OrderStatus.NEW
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO  # Σ qty × price × contract size (linear: quote; inverse: USD)
    cum_base: Decimal = ZERO  # inverse: Σ qty × contract size / price (coins)
    avg_price: Decimal = ZERO
    update_ms: int = 0
    algo_id: int | None = None  # parent conditional order, when triggered from one
    reject_reason: str = ""

    def __post_init__(self) -> None:
        if not self.orig_type:
            self.orig_type = self.type
        if not self.update_ms:
            self.update_ms = self.time_ms

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.qty - self.executed_qty

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self.side == "BUY" else -1


@dataclass
class SimAlgoOrder:
    """A conditional order waiting for its trigger (STOP[_MARKET] / TAKE_PROFIT[_MARKET])."""

    algo_id: int
    client_algo_id: str
    account: str
    symbol: str
    side: str
    order_type: str
    trigger_price: Decimal
    qty: Decimal  # 0 with close_position
    time_ms: int
    price: Decimal = ZERO
    close_position: bool = False
    reduce_only: bool = False
    time_in_force: str = "GTC"
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    status: AlgoStatus = AlgoStatus.NEW
    update_ms: int = 0
    trigger_ms: int = 0
    actual_order_id: int | None = None
    executed_qty: Decimal = ZERO
    avg_price: Decimal = ZERO

    def __post_init__(self) -> None:
        if not self.update_ms:
            self.update_ms = self.time_ms

    @property
    def direction(self) -> str:
        """Which way the price must cross the trigger: ``up`` or ``down``."""
        rising = (self.order_type in STOP_TYPES) == (self.side == "BUY")
        return "up" if rising else "down"


@dataclass(frozen=True)
class SimFill:
    """One execution, charged exactly one fee (in the margin asset)."""

    trade_id: int
    order_id: int
    client_id: str
    account: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    realized_pnl: Decimal
    maker: bool
    time_ms: int
    liquidation: bool = False


@dataclass(frozen=True)
class SimFunding:
    """A funding settlement on one position (amount signed: negative = paid)."""

    account: str
    symbol: str
    time_ms: int
    rate: Decimal
    position_qty: Decimal
    mark_price: Decimal
    amount: Decimal
    asset: str


@dataclass
class Ledger:
    """Every record the exchange keeps, with id counters and indexes of what is open."""

    orders: dict[int, SimOrder] = field(default_factory=dict)
    algos: dict[int, SimAlgoOrder] = field(default_factory=dict)
    fills: list[SimFill] = field(default_factory=list)
    funding: list[SimFunding] = field(default_factory=list)
    next_order_id: int = 4_000_000_001
    next_algo_id: int = 1_000_000_001
    next_trade_id: int = 700_000_001
    _open_orders: dict[int, None] = field(default_factory=dict)
    _open_algos: dict[int, None] = field(default_factory=dict)
    _order_by_client: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _algo_by_client: dict[tuple[str, str], int] = field(default_factory=dict)

    def new_order_id(self) -> int:
        """A fresh regular order id."""
        self.next_order_id += 1
        return self.next_order_id - 1

    def new_algo_id(self) -> int:
        """A fresh algo order id."""
        self.next_algo_id += 1
        return self.next_algo_id - 1

    def new_trade_id(self) -> int:
        """A fresh trade id."""
        self.next_trade_id += 1
        return self.next_trade_id - 1

    def add_order(self, order: SimOrder) -> None:
        """Record a new regular order."""
        self.orders[order.order_id] = order
        self._order_by_client[(order.account, order.symbol, order.client_id)] = order.order_id
        self.touch_order(order)

    def add_algo(self, algo: SimAlgoOrder) -> None:
        """Record a new algo order."""
        self.algos[algo.algo_id] = algo
        self._algo_by_client[(algo.account, algo.client_algo_id)] = algo.algo_id
        self.touch_algo(algo)

    def touch_order(self, order: SimOrder) -> None:
        """Re-index an order after its status changed."""
        if order.status.is_open:
            self._open_orders[order.order_id] = None
        else:
            self._open_orders.pop(order.order_id, None)

    def touch_algo(self, algo: SimAlgoOrder) -> None:
        """Re-index an algo order after its status changed."""
        if algo.status.is_open:
            self._open_algos[algo.algo_id] = None
        else:
            self._open_algos.pop(algo.algo_id, None)

    def open_orders(self, account: str | None = None, symbol: str | None = None) -> list[SimOrder]:
        """Open regular orders (of one account / symbol when given), oldest first."""
        found = (self.orders[i] for i in self._open_orders)
        return [o for o in found if account in (None, o.account) and symbol in (None, o.symbol)]

    def open_algos(
        self, account: str | None = None, symbol: str | None = None
    ) -> list[SimAlgoOrder]:
        """Open algo orders (of one account / symbol when given), oldest first."""
        found = (self.algos[i] for i in self._open_algos)
        return [a for a in found if account in (None, a.account) and symbol in (None, a.symbol)]

    def find_order(
        self, account: str, symbol: str, order_id: int | None, client_id: str | None
    ) -> SimOrder | None:
        """An order by id, or the latest one with ``client_id``."""
        if order_id is None:
            order_id = self._order_by_client.get((account, symbol, client_id or ""))
        order = self.orders.get(order_id) if order_id is not None else None
        ok = order is not None and order.account == account and order.symbol == symbol
        return order if ok else None

    def find_algo(
        self, account: str, algo_id: int | None, client_id: str | None
    ) -> SimAlgoOrder | None:
        """An algo order by id, or the latest one with ``client_id``."""
        if algo_id is None:
            algo_id = self._algo_by_client.get((account, client_id or ""))
        algo = self.algos.get(algo_id) if algo_id is not None else None
        return algo if algo is not None and algo.account == account else None
