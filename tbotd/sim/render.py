"""How the sim's records look on the wire: REST JSON objects and user-data stream events.

Field names and string-typed numbers follow Binance's USDⓈ-M / COIN-M documentation; the COIN-M
variants differ only where the venue does (``cumBase`` instead of ``cumQuote``, a ``pair``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tbotd.domain.enums import MarketType
from tbotd.sim.accounts import Account, AssetSummary, PositionState
from tbotd.sim.instruments import Instrument
from tbotd.sim.records import SimAlgoOrder, SimFill, SimOrder

_MONEY = Decimal("0.00000001")


def fmt(value: Decimal, places: int = 8) -> str:
    """A number as Binance prints money: fixed point, at most ``places`` decimals."""
    quantum = _MONEY if places == 8 else Decimal(1).scaleb(-places)
    text = format(value.quantize(quantum), "f")
    return "0" if text.strip("-0.") == "" else text


def money(value: Decimal) -> Decimal:
    """Round an amount of money (fee, PnL, funding) to 8 decimals, as the venue books it."""
    return value.quantize(_MONEY)


def order_json(order: SimOrder, inst: Instrument) -> dict[str, Any]:
    """A regular order as ``/order`` and ``/openOrders`` return it."""
    body: dict[str, Any] = {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "status": order.status.value,
        "clientOrderId": order.client_id,
        "price": inst.price_str(order.price),
        "avgPrice": fmt(order.avg_price),
        "origQty": inst.qty_str(order.qty),
        "executedQty": inst.qty_str(order.executed_qty),
        "cumQty": inst.qty_str(order.executed_qty),
        "timeInForce": order.time_in_force,
        "type": order.type,
        "reduceOnly": order.reduce_only,
        "closePosition": order.close_position,
        "side": order.side,
        "positionSide": "BOTH",
        "stopPrice": inst.price_str(order.stop_price),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.orig_type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": order.time_ms,
        "updateTime": order.update_ms,
    }
    if inst.market_type is MarketType.LINEAR:
        body["cumQuote"] = fmt(order.cum_quote)
    else:
        body["cumBase"] = fmt(order.cum_base)
        body["pair"] = inst.pair
    return body


def algo_json(algo: SimAlgoOrder, inst: Instrument) -> dict[str, Any]:
    """A conditional order as ``/algoOrder`` and ``/openAlgoOrders`` return it.

    It carries no ``orderId`` key: ccxt takes the first of orderId/algoId as the order's id.
    """
    return {
        "algoId": algo.algo_id,
        "clientAlgoId": algo.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": algo.order_type,
        "symbol": algo.symbol,
        "side": algo.side,
        "positionSide": "BOTH",
        "timeInForce": algo.time_in_force,
        "quantity": inst.qty_str(algo.qty),
        "algoStatus": algo.status.value,
        "actualOrderId": str(algo.actual_order_id or ""),
        "actualPrice": fmt(algo.avg_price),
        "executedQty": inst.qty_str(algo.executed_qty),
        "avgPrice": fmt(algo.avg_price),
        "triggerPrice": inst.price_str(algo.trigger_price),
        "price": inst.price_str(algo.price),
        "icebergQuantity": None,
        "workingType": algo.working_type,
        "priceMatch": "NONE",
        "closePosition": algo.close_position,
        "priceProtect": algo.price_protect,
        "reduceOnly": algo.reduce_only,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "createTime": algo.time_ms,
        "updateTime": algo.update_ms,
        "triggerTime": algo.trigger_ms,
        "goodTillDate": 0,
    }


def trade_json(fill: SimFill, inst: Instrument) -> dict[str, Any]:
    """A fill as ``/userTrades`` returns it."""
    quote = inst.notional(fill.qty, fill.price)
    body: dict[str, Any] = {
        "symbol": fill.symbol,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "side": fill.side,
        "price": inst.price_str(fill.price),
        "qty": inst.qty_str(fill.qty),
        "realizedPnl": fmt(fill.realized_pnl),
        "commission": fmt(fill.fee),
        "commissionAsset": fill.fee_asset,
        "time": fill.time_ms,
        "positionSide": "BOTH",
        "buyer": fill.side == "BUY",
        "maker": fill.maker,
    }
    if inst.market_type is MarketType.LINEAR:
        body["quoteQty"] = fmt(quote)
        body["marginAsset"] = inst.margin_asset
    else:
        body["baseQty"] = fmt(quote)
        body["marginAsset"] = inst.margin_asset
        body["pair"] = inst.pair
    return body


def order_event(
    order: SimOrder, inst: Instrument, event_ms: int, execution: str, fill: SimFill | None = None
) -> dict[str, Any]:
    """An ``ORDER_TRADE_UPDATE`` user-data event."""
    o: dict[str, Any] = {
        "s": order.symbol,
        "c": order.client_id,
        "S": order.side,
        "o": order.type,
        "f": order.time_in_force,
        "q": inst.qty_str(order.qty),
        "p": inst.price_str(order.price),
        "ap": fmt(order.avg_price),
        "sp": inst.price_str(order.stop_price),
        "x": execution,
        "X": order.status.value,
        "i": order.order_id,
        "l": inst.qty_str(fill.qty if fill else Decimal(0)),
        "z": inst.qty_str(order.executed_qty),
        "L": inst.price_str(fill.price if fill else Decimal(0)),
        "N": inst.margin_asset,
        "n": fmt(fill.fee if fill else Decimal(0)),
        "T": event_ms,
        "t": fill.trade_id if fill else 0,
        "b": "0",
        "a": "0",
        "m": bool(fill and fill.maker),
        "R": order.reduce_only,
        "wt": "CONTRACT_PRICE",
        "ot": order.orig_type,
        "ps": "BOTH",
        "cp": order.close_position,
        "rp": fmt(fill.realized_pnl if fill else Decimal(0)),
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": "EXPIRE_MAKER",
        "pm": "NONE",
        "gtd": 0,
    }
    if inst.market_type is MarketType.LINEAR:
        o["Z"] = fmt(order.cum_quote)
    else:
        o["ma"] = inst.margin_asset
        o["Z"] = fmt(order.cum_base)
    return {"e": "ORDER_TRADE_UPDATE", "E": event_ms, "T": event_ms, "o": o}


def algo_event(algo: SimAlgoOrder, inst: Instrument, event_ms: int) -> dict[str, Any]:
    """An ``ALGO_UPDATE`` user-data event."""
    o = {
        "caid": algo.client_algo_id,
        "aid": algo.algo_id,
        "at": "CONDITIONAL",
        "o": algo.order_type,
        "s": algo.symbol,
        "S": algo.side,
        "ps": "BOTH",
        "f": algo.time_in_force,
        "q": inst.qty_str(algo.qty),
        "X": algo.status.value,
        "ai": str(algo.actual_order_id or ""),
        "ap": fmt(algo.avg_price),
        "aq": inst.qty_str(algo.executed_qty),
        "act": "MARKET" if algo.order_type.endswith("_MARKET") else "LIMIT",
        "tp": inst.price_str(algo.trigger_price),
        "p": inst.price_str(algo.price),
        "V": "EXPIRE_MAKER",
        "wt": algo.working_type,
        "pm": "NONE",
        "cp": algo.close_position,
        "pP": algo.price_protect,
        "R": algo.reduce_only,
        "tt": algo.trigger_ms,
        "gtd": 0,
    }
    return {"e": "ALGO_UPDATE", "T": event_ms, "E": event_ms, "o": o}


def account_event(
    account: Account,
    summary: AssetSummary,
    positions: list[tuple[Instrument, PositionState, Decimal]],
    event_ms: int,
    reason: str,
) -> dict[str, Any]:
    """An ``ACCOUNT_UPDATE`` event: one asset's balance and the given positions."""
    balances = [
        {
            "a": summary.asset,
            "wb": fmt(summary.wallet),
            "cw": fmt(summary.cross_wallet),
            "bc": "0",
        }
    ]
    rows = [
        {
            "s": inst.symbol,
            "pa": inst.qty_str(pos.qty),
            "ep": fmt(pos.entry),
            "bep": fmt(pos.entry),
            "cr": "0",
            "up": fmt(upnl),
            "mt": account.margin_type_of(inst.symbol).short,
            "iw": fmt(pos.isolated_wallet),
            "ps": "BOTH",
        }
        for inst, pos, upnl in positions
    ]
    return {
        "e": "ACCOUNT_UPDATE",
        "E": event_ms,
        "T": event_ms,
        "a": {"m": reason, "B": balances, "P": rows},
    }
