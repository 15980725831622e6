"""Position sizing (README: Strategies): fraction × equity × leverage, in contracts, rounded down.

Sizing never rounds up: an order is at most what the budget allows, and a size below the market's
minimum is refused with a reason instead of being bumped up to the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

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
    budget = _budget(equity, fraction, leverage, cost_rate)
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


_LOOSE = 1e-9  # relative; far above float64's rounding, far below any step or minimum


def _budget(equity: Decimal, fraction: Decimal, leverage: Decimal, cost_rate: Decimal) -> Decimal:
    """The notional (linear: quote currency; inverse: coin) that sizing may spend."""
    return fraction * equity * leverage / (1 + leverage * cost_rate)


def may_size(
    market: MarketSpec,
    equity: Decimal,
    fraction: Decimal,
    leverage: Decimal,
    cost_rate: Decimal,
    marks: NDArray[np.float64] | np.float64,
) -> NDArray[np.bool_]:
    """For each mark price, whether :func:`position_size` **may** give an order (a superset);
    one mark as a NumPy scalar is answered as a 0-d array (a fraction of the cost of an array).

    Each step is loosened by a relative 1e-9 towards "sizable", so float rounding can only add
    candidates; where this says False, the exact Decimal sizing certainly refuses. The backtest
    uses it to skip the refusals of an account too small to trade at most prices.
    """
    budget = _budget(equity, fraction, leverage, cost_rate)
    if budget <= 0:
        return np.zeros(np.shape(marks), dtype=np.bool_)
    up = 1.0 + _LOOSE
    size, step = float(market.contract_size), float(market.step_size)
    if market.market_type is MarketType.LINEAR:
        raw = float(budget) * up / (size * marks)
    else:
        raw = float(budget) * up * marks / size
    qty = np.floor(raw / step * up) * step * up
    notional = qty * size * (marks if market.market_type is MarketType.LINEAR else 1.0)
    ok = (qty > 0) & (qty >= float(market.min_qty) / up) & (marks > 0)
    return np.asarray(ok & (notional * up >= float(market.min_notional)), dtype=np.bool_)
