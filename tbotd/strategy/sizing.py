"""Position sizing (README: Strategies): fraction × equity × leverage, in contracts, rounded down.

Sizing never rounds up: an order is at most what the budget allows, and a size below the market's
minimum is refused with a reason instead of being bumped up to the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tbotd.domain.enums import MarketType
from tbotd.domain.market import MarketSpec
from tbotd.domain.positions import contracts_for
from tbotd.domain.values import round_down


@dataclass(frozen=True, slots=True)
class Size:
    """How many contracts to trade, or why none (``qty`` is 0 and ``refusal`` says why)."""

    qty: Decimal
    refusal: str = ""

    @property
    def ok(self) -> bool:
        """True when there is something to trade."""
        return self.qty > 0


def quote_notional(market: MarketSpec, qty: Decimal, price: Decimal) -> Decimal:
    """Order value in the quote currency (USDT or USD), as exchanges check minimum notionals."""
    if market.market_type is MarketType.LINEAR:
        return qty * market.contract_size * price
    return qty * market.contract_size


def position_size(
    market: MarketSpec,
    equity: Decimal,
    fraction: Decimal,
    leverage: Decimal,
    mark_price: Decimal,
    cost_rate: Decimal = Decimal(0),
) -> Size:
    """Contracts worth ``fraction × equity × leverage`` at ``mark_price``, rounded down to the step.

    ``equity`` is in the settlement currency (USDT for linear, the coin for inverse).
    ``cost_rate`` (taker fee + slippage + safety buffer, as a fraction of notional) shrinks the
    notional just enough that margin plus costs fit in ``fraction × equity``: with
    ``position_fraction = 1`` an order sized without it would be refused for margin every time.
    """
    if mark_price <= 0:
        return Size(Decimal(0), f"mark price {mark_price} is not positive")
    budget = fraction * equity * leverage / (1 + leverage * cost_rate)
    if budget <= 0:
        return Size(Decimal(0), f"no equity to size with (equity {equity})")
    raw = contracts_for(market.market_type, budget, market.contract_size, mark_price)
    qty = round_down(raw, market.step_size)
    if qty < market.min_qty or qty <= 0:
        return Size(
            Decimal(0),
            f"size {qty} (from {raw:.8f}) is below the market minimum {market.min_qty} contracts",
        )
    notional = quote_notional(market, qty, mark_price)
    if notional < market.min_notional:
        return Size(
            Decimal(0),
            f"notional {notional} is below the market minimum {market.min_notional}",
        )
    return Size(qty)
