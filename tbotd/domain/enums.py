"""Enumerations shared by every layer; string-valued so they store and log as themselves."""

from __future__ import annotations

from enum import StrEnum


class Signal(StrEnum):
    """What a model says about the next move."""

    LONG = "long"
    SHORT = "short"
    NEUTRAL = "neutral"


class Side(StrEnum):
    """Direction of a position."""

    LONG = "long"
    SHORT = "short"

    @property
    def opposite(self) -> Side:
        """The other side: what a flip turns this position into."""
        return Side.SHORT if self is Side.LONG else Side.LONG

    @property
    def entry_order_side(self) -> OrderSide:
        """The order side that opens (or adds to) a position on this side."""
        return OrderSide.BUY if self is Side.LONG else OrderSide.SELL

    @property
    def exit_order_side(self) -> OrderSide:
        """The order side that reduces or closes a position on this side."""
        return OrderSide.SELL if self is Side.LONG else OrderSide.BUY

    @property
    def sign(self) -> int:
        """+1 for long, -1 for short: PnL is ``sign * (exit - entry)`` for linear contracts."""
        return 1 if self is Side.LONG else -1


class OrderSide(StrEnum):
    """Buy or sell, as the exchange sees an order."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """Order types tbotd places. Stops and take-profits are conditional ("algo") orders."""

    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    TAKE_PROFIT_MARKET = "take_profit_market"

    @property
    def is_conditional(self) -> bool:
        """Conditional orders live in Binance's separate algo-order book."""
        return self in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)


class OrderRole(StrEnum):
    """Why an order exists; part of its deterministic client id."""

    ENTRY = "entry"
    EXIT = "exit"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"

    @property
    def code(self) -> str:
        """One letter used inside client order ids."""
        return {"entry": "E", "exit": "X", "stop_loss": "S", "take_profit": "T"}[self.value]


class PredictionSource(StrEnum):
    """Where a prediction came from; recorded with every prediction and counted in metrics."""

    REMOTE = "remote"
    LOCAL_GPU = "local-gpu"
    LOCAL_CPU = "local-cpu"
    NEUTRAL = "neutral"


class Regime(StrEnum):
    """Market regimes the regime detector assigns probabilities to."""

    TREND_UP = "trend_up"
    SIDEWAYS = "sideways"
    TREND_DOWN = "trend_down"


class MarketType(StrEnum):
    """Linear (USDT-margined) or inverse (coin-margined) perpetual contracts."""

    LINEAR = "linear"
    INVERSE = "inverse"


class TradingMode(StrEnum):
    """Paper (simulated fills and wallet on real data) or live (real orders)."""

    PAPER = "paper"
    LIVE = "live"


class MarginMode(StrEnum):
    """Isolated or cross margin, as set on the exchange at start-up."""

    ISOLATED = "isolated"
    CROSS = "cross"
