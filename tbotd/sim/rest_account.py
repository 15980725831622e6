"""Private account routes: account/balance, positions, leverage and margin settings, listen keys,
trade and income history."""

from __future__ import annotations

from typing import Any

from tbotd.domain.enums import MarketType
from tbotd.sim.accounts import ZERO, MarginType, collateral_for, liquidation_price, unrealized
from tbotd.sim.auth import SimError
from tbotd.sim.instruments import Instrument
from tbotd.sim.render import fmt, trade_json
from tbotd.sim.rest_common import Ctx, Route, Venue

SUCCESS = {"code": 200, "msg": "success"}
TRADES_SPAN_MS = 7 * 86_400_000  # the longest span one userTrades request covers


def _asset_row(ctx: Ctx, asset: str) -> dict[str, Any]:
    s = ctx.sim.engine.summary(ctx.acct, asset)
    return {
        "asset": asset,
        "walletBalance": fmt(s.wallet),
        "unrealizedProfit": fmt(s.unrealized),
        "marginBalance": fmt(s.margin_balance),
        "maintMargin": fmt(s.maint_margin),
        "initialMargin": fmt(s.initial_margin),
        "positionInitialMargin": fmt(s.position_initial_margin),
        "openOrderInitialMargin": fmt(s.open_order_initial_margin),
        "crossWalletBalance": fmt(s.cross_wallet),
        "crossUnPnl": fmt(s.cross_unrealized),
        "availableBalance": fmt(s.available),
        "maxWithdrawAmount": fmt(max(s.available, ZERO)),
        "marginAvailable": True,
        "updateTime": ctx.acct.update_ms or ctx.sim.engine.now_ms,
    }


def _position_row(ctx: Ctx, inst: Instrument) -> dict[str, Any]:
    engine, account = ctx.sim.engine, ctx.acct
    pos = account.position(inst.symbol)
    mark = engine.mark(inst.symbol)
    exposure = engine.exposure(account)
    summary = engine.summary(account, inst.margin_asset)
    liq = liquidation_price(inst, pos, collateral_for(account, inst, exposure, summary))
    lev = account.leverage_of(inst.symbol)
    signed_notional = inst.notional(pos.qty, mark) * (1 if pos.qty >= 0 else -1)
    isolated = account.margin_type_of(inst.symbol) is MarginType.ISOLATED
    upnl = unrealized(inst, pos, mark)
    row: dict[str, Any] = {
        "symbol": inst.symbol,
        "positionSide": "BOTH",
        "positionAmt": inst.qty_str(pos.qty),
        "entryPrice": fmt(pos.entry),
        "breakEvenPrice": fmt(pos.entry),
        "markPrice": fmt(mark),
        "unRealizedProfit": fmt(upnl),
        "liquidationPrice": fmt(liq),
        "isolatedMargin": fmt(pos.isolated_wallet + upnl if isolated and pos.qty else ZERO),
        "isolatedWallet": fmt(pos.isolated_wallet),
        "marginAsset": inst.margin_asset,
        "updateTime": pos.update_ms,
    }
    im = inst.notional(pos.qty, mark) / lev
    if ctx.venue.market_type is MarketType.LINEAR:
        row.update(
            notional=fmt(signed_notional),
            initialMargin=fmt(im),
            maintMargin=fmt(inst.notional(pos.qty, mark) * inst.maint_margin_ratio),
            positionInitialMargin=fmt(im),
            openOrderInitialMargin="0",
            adl=0,
            bidNotional="0",
            askNotional="0",
        )
        if ctx.params.get("_v2"):
            row.update(leverage=str(lev), marginType=account.margin_type_of(inst.symbol).short)
    else:
        row.update(
            notionalValue=fmt(signed_notional),
            leverage=str(lev),
            marginType=account.margin_type_of(inst.symbol).short,
            maxQty=str(inst.max_qty),
            isAutoAddMargin="false",
        )
    return row


async def account_info(ctx: Ctx) -> Any:
    """GET account: per-asset balances and the positions."""
    rows = [_asset_row(ctx, a) for a in ctx.venue.assets]
    positions = [
        _position_row(ctx, i)
        for i in ctx.venue.instruments.values()
        if ctx.acct.position(i.symbol).qty != 0
    ]
    body: dict[str, Any] = {"assets": rows, "positions": positions, "canTrade": True}
    if ctx.venue.market_type is MarketType.LINEAR:
        usdt = next(r for r in rows if r["asset"] == "USDT")
        body.update(
            totalInitialMargin=usdt["initialMargin"],
            totalMaintMargin=usdt["maintMargin"],
            totalWalletBalance=usdt["walletBalance"],
            totalUnrealizedProfit=usdt["unrealizedProfit"],
            totalMarginBalance=usdt["marginBalance"],
            totalPositionInitialMargin=usdt["positionInitialMargin"],
            totalOpenOrderInitialMargin=usdt["openOrderInitialMargin"],
            totalCrossWalletBalance=usdt["crossWalletBalance"],
            totalCrossUnPnl=usdt["crossUnPnl"],
            availableBalance=usdt["availableBalance"],
            maxWithdrawAmount=usdt["maxWithdrawAmount"],
        )
    else:
        body.update(canDeposit=True, canWithdraw=True, feeTier=0, updateTime=0)
    return body


async def balance(ctx: Ctx) -> Any:
    """GET balance: one row per margin asset."""
    out = []
    for asset in ctx.venue.assets:
        row = _asset_row(ctx, asset)
        out.append(
            {
                "accountAlias": "SimAccount",
                "asset": asset,
                "balance": row["walletBalance"],
                "withdrawAvailable": row["availableBalance"],
                **{k: row[k] for k in ("crossWalletBalance", "crossUnPnl", "availableBalance")},
                "maxWithdrawAmount": row["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": row["updateTime"],
            }
        )
    return out


async def position_risk(ctx: Ctx) -> Any:
    """GET positionRisk: v3 lists held positions only; v2 and COIN-M list every symbol."""
    inst = ctx.instrument(required=False)
    pair = ctx.params.get("pair")
    chosen = [inst] if inst else list(ctx.venue.instruments.values())
    if pair:
        chosen = [i for i in chosen if i.pair == pair]
    if ctx.params.get("_v3"):
        chosen = [i for i in chosen if ctx.acct.position(i.symbol).qty != 0]
    return [_position_row(ctx, i) for i in chosen]


async def leverage_bracket(ctx: Ctx) -> Any:
    """GET leverageBracket."""
    inst = ctx.instrument(required=False)
    chosen = [inst] if inst else list(ctx.venue.instruments.values())
    brackets = [i.leverage_bracket() for i in chosen]
    return brackets[0] if inst and ctx.venue.market_type is MarketType.LINEAR else brackets


async def set_leverage(ctx: Ctx) -> Any:
    """POST leverage."""
    inst = ctx.inst()
    lev = ctx.integer("leverage")
    if lev is None:
        raise SimError(
            -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed."
        )
    if not 1 <= lev <= inst.max_leverage:
        raise SimError(-4028, f"Leverage {lev} is not valid")
    ctx.acct.leverage[inst.symbol] = lev
    if ctx.venue.market_type is MarketType.LINEAR:
        return {"leverage": lev, "maxNotionalValue": "1000000000", "symbol": inst.symbol}
    return {"leverage": lev, "maxQty": str(inst.max_qty), "symbol": inst.symbol}


async def set_margin_type(ctx: Ctx) -> Any:
    """POST marginType: ISOLATED or CROSSED, only while flat and without open orders."""
    inst = ctx.inst()
    wanted = MarginType(ctx.choice("marginType", ("ISOLATED", "CROSSED")))
    account = ctx.acct
    if account.margin_type_of(inst.symbol) is wanted:
        raise SimError(-4046, "No need to change margin type.")
    if account.position(inst.symbol).qty != 0:
        raise SimError(-4048, "Margin type cannot be changed if there exists position.")
    engine = ctx.sim.engine
    if engine.ledger.open_orders(account.api_key, inst.symbol):
        raise SimError(-4047, "Margin type cannot be changed if there exists open orders.")
    account.margin_type[inst.symbol] = wanted
    return SUCCESS


async def get_dual(ctx: Ctx) -> Any:
    """GET positionSide/dual."""
    return {"dualSidePosition": ctx.acct.dual_side}


async def set_dual(ctx: Ctx) -> Any:
    """POST positionSide/dual. The sim records hedge mode but trades one-way positions only."""
    wanted = ctx.flag("dualSidePosition") if "dualSidePosition" in ctx.params else None
    if wanted is None:
        raise SimError(
            -1102,
            "Mandatory parameter 'dualSidePosition' was not sent, was empty/null, or malformed.",
        )
    account = ctx.acct
    if account.dual_side == wanted:
        raise SimError(-4059, "No need to change position side.")
    engine = ctx.sim.engine
    if any(p.qty != 0 for p in account.positions.values()):
        raise SimError(-4068, "Position side cannot be changed if there exists position.")
    if engine.ledger.open_orders(account.api_key) or engine.ledger.open_algos(account.api_key):
        raise SimError(-4067, "Position side cannot be changed if there exists open orders.")
    account.dual_side = wanted
    return SUCCESS


async def user_trades(ctx: Ctx) -> Any:
    """GET userTrades: this account's fills in one symbol, oldest first.

    As Binance: one request covers at most 7 days (a ``startTime`` alone, the 7 days from it;
    a longer span is refused, -1127), and at most ``limit`` (≤ 1,000) fills.
    """
    inst = ctx.inst()
    limit = min(ctx.integer("limit", 500) or 500, 1000)
    start, end, from_id = ctx.integer("startTime"), ctx.integer("endTime"), ctx.integer("fromId")
    if start is not None and end is None:
        end = start + TRADES_SPAN_MS
    if start is not None and end is not None and end - start > TRADES_SPAN_MS:
        raise SimError(-1127, "More than 7 days between startTime and endTime.")
    fills = [
        f
        for f in ctx.sim.engine.ledger.fills
        if f.account == ctx.acct.api_key
        and f.symbol == inst.symbol
        and (start is None or f.time_ms >= start)
        and (end is None or f.time_ms <= end)
        and (from_id is None or f.trade_id >= from_id)
    ]
    fills = fills[:limit] if start is not None or from_id is not None else fills[-limit:]
    return [trade_json(f, inst) for f in fills]


async def commission_rate(ctx: Ctx) -> Any:
    """GET commissionRate."""
    inst = ctx.inst()
    config = ctx.sim.engine.config
    return {
        "symbol": inst.symbol,
        "makerCommissionRate": str(config.maker_fee),
        "takerCommissionRate": str(config.taker_fee),
    }


async def income(ctx: Ctx) -> Any:
    """GET income: funding fees, commissions and realized PnL, oldest first."""
    inst = ctx.instrument(required=False)
    kind = ctx.params.get("incomeType")
    start, end = ctx.integer("startTime"), ctx.integer("endTime")
    limit = min(ctx.integer("limit", 100) or 100, 1000)
    ledger, key = ctx.sim.engine.ledger, ctx.acct.api_key
    venue_symbols = ctx.venue.instruments

    def wanted(record: Any, income_type: str) -> bool:
        """Filtered before rows are built: the ledger only grows, and this is asked often."""
        return (
            record.account == key
            and record.symbol in venue_symbols
            and (inst is None or record.symbol == inst.symbol)
            and (kind is None or kind == income_type)
            and (start is None or record.time_ms >= start)
            and (end is None or record.time_ms <= end)
        )

    rows = [
        _income(f.symbol, "FUNDING_FEE", f.amount, f.asset, f.time_ms, 0)
        for f in ledger.funding
        if wanted(f, "FUNDING_FEE")
    ]
    for t in ledger.fills:
        if wanted(t, "COMMISSION"):
            rows.append(_income(t.symbol, "COMMISSION", -t.fee, t.fee_asset, t.time_ms, t.trade_id))
        if t.realized_pnl and wanted(t, "REALIZED_PNL"):
            pnl = t.realized_pnl
            rows.append(_income(t.symbol, "REALIZED_PNL", pnl, t.fee_asset, t.time_ms, t.trade_id))
    rows.sort(key=lambda r: r["time"])
    for n, row in enumerate(rows, 1):
        row["tranId"] = n
    return rows[:limit] if start is not None else rows[-limit:]


def _income(symbol: str, kind: str, amount: Any, asset: str, t: int, trade: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "incomeType": kind,
        "income": fmt(amount),
        "asset": asset,
        "info": kind,
        "time": t,
        "tranId": 0,
        "tradeId": str(trade) if trade else "",
    }


async def new_listen_key(ctx: Ctx) -> Any:
    """POST listenKey: the account's active key, or a new one."""
    return {"listenKey": ctx.sim.hub.listen_key_for(ctx.acct.api_key, ctx.venue.name)}


async def keepalive_listen_key(ctx: Ctx) -> Any:
    """PUT listenKey: extend the active key's life by 60 minutes."""
    return {"listenKey": ctx.sim.hub.keepalive(ctx.acct.api_key, ctx.venue.name)}


async def close_listen_key(ctx: Ctx) -> Any:
    """DELETE listenKey: close the user-data stream."""
    await ctx.sim.hub.close_listen_key(ctx.acct.api_key, ctx.venue.name)
    return {}


def _tag(handler: Any, **flags: str) -> Any:
    async def tagged(ctx: Ctx) -> Any:
        ctx.params.update(flags)
        return await handler(ctx)

    return tagged


def routes(venue: Venue) -> list[Route]:
    """The private account routes of ``venue``."""
    p = venue.prefix
    common: list[Route] = [
        ("GET", f"{p}/v1/leverageBracket", leverage_bracket, "signed"),
        ("POST", f"{p}/v1/leverage", set_leverage, "signed"),
        ("POST", f"{p}/v1/marginType", set_margin_type, "signed"),
        ("GET", f"{p}/v1/positionSide/dual", get_dual, "signed"),
        ("POST", f"{p}/v1/positionSide/dual", set_dual, "signed"),
        ("GET", f"{p}/v1/userTrades", user_trades, "signed"),
        ("GET", f"{p}/v1/income", income, "signed"),
        ("GET", f"{p}/v1/commissionRate", commission_rate, "signed"),
        ("POST", f"{p}/v1/listenKey", new_listen_key, "key"),
        ("PUT", f"{p}/v1/listenKey", keepalive_listen_key, "key"),
        ("DELETE", f"{p}/v1/listenKey", close_listen_key, "key"),
    ]
    if venue.market_type is MarketType.LINEAR:
        return [
            *common,
            ("GET", f"{p}/v2/account", _tag(account_info, _v2="1"), "signed"),
            ("GET", f"{p}/v3/account", account_info, "signed"),
            ("GET", f"{p}/v2/balance", balance, "signed"),
            ("GET", f"{p}/v3/balance", balance, "signed"),
            ("GET", f"{p}/v2/positionRisk", _tag(position_risk, _v2="1"), "signed"),
            ("GET", f"{p}/v3/positionRisk", _tag(position_risk, _v3="1"), "signed"),
        ]
    return [
        *common,
        ("GET", f"{p}/v2/leverageBracket", leverage_bracket, "signed"),
        ("GET", f"{p}/v1/account", account_info, "signed"),
        ("GET", f"{p}/v1/balance", balance, "signed"),
        ("GET", f"{p}/v1/positionRisk", position_risk, "signed"),
    ]
