"""Domain types: pure data with validating constructors, shared by every layer.

Nothing here does I/O. Money and quantities are Decimal; times are tz-aware UTC.
"""

from tbotd.domain.actions import (
    Action,
    ClosePosition,
    ExitPlan,
    ExitSource,
    Hold,
    MoveProtection,
    OpenPosition,
)
from tbotd.domain.enums import (
    MarginMode,
    MarketType,
    OrderRole,
    OrderSide,
    OrderType,
    PredictionSource,
    Regime,
    Side,
    Signal,
    TradingMode,
)
from tbotd.domain.market import Candle, MarketSpec
from tbotd.domain.orders import Fill, Order, OrderState, client_order_id
from tbotd.domain.positions import FundingPayment, Position
from tbotd.domain.prediction import Prediction, parse_prediction

__all__ = [
    "Action",
    "Candle",
    "ClosePosition",
    "ExitPlan",
    "ExitSource",
    "Fill",
    "FundingPayment",
    "Hold",
    "MarginMode",
    "MarketSpec",
    "MarketType",
    "MoveProtection",
    "OpenPosition",
    "Order",
    "OrderRole",
    "OrderSide",
    "OrderState",
    "OrderType",
    "Position",
    "Prediction",
    "PredictionSource",
    "Regime",
    "Side",
    "Signal",
    "TradingMode",
    "client_order_id",
    "parse_prediction",
]
