"""ccxt's answers in domain terms: orders, fills, positions' settings — exact Decimals from the
venue's own strings (``info``) wherever they exist, ccxt's floats only as the fallback.

The parsing half of the venue adapter (:mod:`tbotd.execution.venue` makes the requests).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tbotd.domain.enums import MarginMode, OrderSide, OrderType
from tbotd.domain.orders import Fill, OrderState
from tbotd.domain.values import ms_to_datetime, to_decimal
from tbotd.execution.protection import VenueOrder


@dataclass(frozen=True, slots=True)
class VenueOrderState:
    """An order as the venue reports it, in domain terms."""

    client_id: str
    exchange_id: str
    state: OrderState
    filled_qty: Decimal
    avg_price: Decimal | None
    child_order_id: str | None  # the market order a triggered conditional order became


@dataclass(frozen=True, slots=True)
class SymbolSettings:
    """A symbol's leverage and margin mode on the venue (None where it did not say)."""

    leverage: int | None
    margin_mode: MarginMode | None


def _state(order: dict[str, Any]) -> OrderState:
    status = order.get("status")
    filled = order.get("filled") or 0
    if status == "open":
        return OrderState.PARTIALLY_FILLED if filled else OrderState.OPEN
    return {
        "closed": OrderState.FILLED,
        "canceled": OrderState.CANCELED,
        "expired": OrderState.EXPIRED,
        "rejected": OrderState.REJECTED,
    }.get(str(status), OrderState.OPEN)


def answer_decimal(info: dict[str, Any], key: str, fallback: object) -> Decimal | None:
    raw = info.get(key)
    if raw not in (None, ""):
        return to_decimal(raw, key)
    return None if fallback is None else to_decimal(fallback, key)


def settings_of(info: dict[str, Any], position: dict[str, Any]) -> SymbolSettings:
    leverage = info.get("leverage") or position.get("leverage")
    mode = str(info.get("marginType") or position.get("marginMode") or "").lower()
    margin = {"isolated": MarginMode.ISOLATED, "cross": MarginMode.CROSS}.get(
        "cross" if mode.startswith("cross") else mode
    )
    return SymbolSettings(int(float(leverage)) if leverage else None, margin)


_KINDS = {"STOP_MARKET": OrderType.STOP_MARKET, "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET}


def venue_order(order: dict[str, Any], *, conditional: bool) -> VenueOrder:
    """A ccxt open-order dict in domain terms (algo orders keep their kind in ``orderType``)."""
    info = order.get("info") or {}
    raw_type = str(info.get("orderType") or info.get("type") or order.get("type") or "").upper()
    kind = _KINDS.get(raw_type) or (OrderType.LIMIT if raw_type == "LIMIT" else OrderType.MARKET)
    side = str(order.get("side") or info.get("side") or "").lower()
    trigger = info.get("triggerPrice") or info.get("stopPrice") or order.get("triggerPrice")
    return VenueOrder(
        str(order.get("symbol") or ""),
        str(order.get("clientOrderId") or ""),
        str(order.get("id") or ""),
        conditional,
        bool(order.get("reduceOnly") or info.get("reduceOnly") in (True, "true")),
        OrderSide(side) if side in ("buy", "sell") else None,
        kind,
        answer_decimal(info, "quantity", order.get("amount") or info.get("origQty") or 0)
        or Decimal(0),
        to_decimal(trigger, "trigger") if trigger not in (None, "", "0", 0) else None,
        info.get("closePosition") in (True, "true"),
        int(order["timestamp"]) if order.get("timestamp") else None,
    )


def order_id_of(trade: dict[str, Any]) -> str:
    info = trade.get("info") or {}
    return str(info.get("orderId", trade.get("order")))


def fill_of(trade: dict[str, Any], symbol: str, client_id: str) -> Fill:
    info = trade.get("info") or {}
    fee = trade.get("fee") or {}
    return Fill(
        trade_id=str(trade["id"]),
        client_order_id=client_id,
        symbol=symbol,
        side=OrderSide(trade["side"]),
        qty=answer_decimal(info, "qty", trade.get("amount")) or Decimal(0),
        price=answer_decimal(info, "price", trade.get("price")) or Decimal(0),
        fee=answer_decimal(info, "commission", fee.get("cost") or 0) or Decimal(0),
        fee_currency=str(info.get("commissionAsset") or fee.get("currency") or ""),
        time=ms_to_datetime(int(trade["timestamp"])),
        realized_pnl=answer_decimal(info, "realizedPnl", 0) or Decimal(0),
    )


def order_state(order: dict[str, Any]) -> VenueOrderState:
    """A ccxt order dict in domain terms, amounts from the venue's own strings."""
    info = order.get("info") or {}
    avg = answer_decimal(info, "avgPrice", order.get("average"))
    child = info.get("actualOrderId") or info.get("ai") or None
    return VenueOrderState(
        client_id=str(order.get("clientOrderId") or ""),
        exchange_id=str(order.get("id") or ""),
        state=_state(order),
        filled_qty=answer_decimal(info, "executedQty", order.get("filled") or 0) or Decimal(0),
        avg_price=avg or None,
        child_order_id=str(child) if child else None,
    )
