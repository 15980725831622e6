"""The ccxt boundary of the live broker: unified ccxt calls in, domain values and named errors out.

Everything ccxt-specific lives here: which params make Binance place a conditional ("algo")
order, how a client order id is looked up, how floats from ccxt become exact Decimals (from the
venue's raw strings in ``info`` whenever they exist), and how ccxt's exceptions translate into
tbotd's errors. A write whose answer was lost (timeout, 5xx, dropped connection) becomes
:class:`OutcomeUnknownError` — never "failed" — so the broker looks it up by client id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import ccxt.async_support as ccxt

from tbotd.domain.enums import MarginMode, MarketType, OrderSide, OrderType, Side
from tbotd.domain.errors import (
    AuthError,
    InsufficientMarginError,
    OrderNotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    RetryableError,
)
from tbotd.domain.market import MarketSpec
from tbotd.domain.orders import Fill
from tbotd.domain.positions import FundingPayment
from tbotd.domain.values import datetime_to_ms, ms_to_datetime, to_decimal
from tbotd.execution.protection import VenueOrder, VenuePosition
from tbotd.execution.venue_answers import (
    SymbolSettings,
    VenueOrderState,
    answer_decimal,
    fill_of,
    order_id_of,
    order_state,
    settings_of,
    venue_order,
)

T = TypeVar("T")
TRADES_WINDOW_MS = 7 * 86_400_000  # the longest span one userTrades request may cover
TRADES_PAGE = 1000  # the most fills one userTrades request answers


class ImmediateTriggerError(RejectedError):
    """A stop or target whose trigger the price has already passed (Binance -2021)."""


class ClockSkewError(RetryableError):
    """The venue refused the request's timestamp (Binance -1021): nothing ran, and nothing will
    until this machine's clock agrees with the exchange's (the message says so)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            "the exchange refused the request time; is this machine's clock synchronised "
            f"(NTP: chrony, systemd-timesyncd)? {message}"
        )


class ReduceOnlyRejectedError(RejectedError):
    """A reduce-only order with nothing to reduce (Binance -2022): the position is gone."""


_TRANSLATIONS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], type[Exception]], ...] = (
    ((ccxt.DDoSProtection, ccxt.RateLimitExceeded), RateLimitedError),
    (ccxt.InvalidNonce, ClockSkewError),  # our clock is outside the recvWindow: nothing ran
    (ccxt.AuthenticationError, AuthError),
    (ccxt.InsufficientFunds, InsufficientMarginError),
    (ccxt.OrderNotFound, OrderNotFoundError),
    (ccxt.OrderImmediatelyFillable, ImmediateTriggerError),
)


def translate(error: Exception, write: bool) -> Exception:
    """The tbotd error for a ccxt exception; ``write`` marks requests that change state."""
    for kinds, named in _TRANSLATIONS:
        if isinstance(error, kinds):
            return named(str(error))
    if isinstance(error, ccxt.OperationFailed):  # network, timeouts, 5xx, bad responses
        return OutcomeUnknownError(str(error)) if write else RetryableError(str(error))
    if "-2022" in str(error) or "ReduceOnly Order is rejected" in str(error):
        return ReduceOnlyRejectedError(str(error))
    if isinstance(error, ccxt.BaseError):
        return RejectedError(str(error))
    return error


async def call(request: Callable[[], Awaitable[T]], write: bool = False) -> T:
    """Await a ccxt request, translating its exception at the boundary."""
    try:
        return await request()
    except ccxt.BaseError as e:
        raise translate(e, write) from e


class CcxtVenue:
    """One ccxt exchange (``binanceusdm`` or ``binancecoinm``) as the live broker needs it."""

    def __init__(self, exchange: Any, market_type: MarketType) -> None:
        self.exchange = exchange
        self.market_type = market_type

    async def close(self) -> None:
        """Close ccxt's sessions and sockets."""
        await self.exchange.close()

    async def markets(self, symbols: Iterable[str]) -> dict[str, MarketSpec]:
        """Trading rules of ``symbols`` from the venue's exchangeInfo."""
        loaded = await call(self.exchange.load_markets)
        specs = {}
        for symbol in symbols:
            if symbol not in loaded:
                raise RejectedError(f"{symbol} is not listed on {self.exchange.id}")
            m = loaded[symbol]
            limits = m.get("limits") or {}
            specs[symbol] = MarketSpec(
                symbol=symbol,
                market_type=self.market_type,
                settle=m["settle"],
                tick_size=to_decimal(m["precision"]["price"], "tick"),
                step_size=to_decimal(m["precision"]["amount"], "step"),
                min_qty=to_decimal((limits.get("amount") or {}).get("min") or 0, "min qty"),
                min_notional=to_decimal((limits.get("cost") or {}).get("min") or 0, "min cost"),
                contract_size=to_decimal(m.get("contractSize") or 1, "contract size"),
                exchange_id=m["id"],
            )
        return specs

    async def server_time(self) -> datetime:
        """The venue's clock."""
        return ms_to_datetime(int(await call(self.exchange.fetch_time)))

    async def setup(self, symbol: str, leverage: int, margin: MarginMode) -> list[str]:
        """Leverage, margin mode and one-way mode, idempotently ("no change needed" is fine).

        Each call sets a value, so repeating it is harmless: a lost answer is retryable.
        """
        notes = []
        await call(lambda: self.exchange.set_leverage(leverage, symbol))
        for request, what in (
            (lambda: self.exchange.set_margin_mode(margin.value, symbol), "margin mode"),
            (
                lambda: self.exchange.set_position_mode(hedged=False, symbol=symbol),
                "one-way position mode",
            ),
        ):
            try:
                await call(request)
            except RejectedError as e:
                if "-4046" not in str(e) and "-4059" not in str(e) and "No need" not in str(e):
                    raise
                notes.append(f"{what} already set")
        return notes

    async def market_order(
        self, symbol: str, side: OrderSide, qty: Decimal, client_id: str, reduce_only: bool
    ) -> VenueOrderState:
        """A market order; its answer (FILLED, with the average price) or OutcomeUnknownError."""
        params: dict[str, Any] = {"clientOrderId": client_id}
        if reduce_only:
            params["reduceOnly"] = True
        order = await call(
            lambda: self.exchange.create_order(symbol, "market", side.value, qty, None, params),
            write=True,
        )
        return order_state(order)

    async def conditional_order(
        self,
        symbol: str,
        side: OrderSide,
        kind: OrderType,
        trigger: Decimal,
        qty: Decimal,
        client_id: str,
    ) -> VenueOrderState:
        """A reduce-only stop-market or take-profit-market (a Binance algo order)."""
        key = "stopLossPrice" if kind is OrderType.STOP_MARKET else "takeProfitPrice"
        params = {key: str(trigger), "reduceOnly": True, "clientOrderId": client_id}
        order = await call(
            lambda: self.exchange.create_order(symbol, "market", side.value, qty, None, params),
            write=True,
        )
        return order_state(order)

    async def find_order(
        self, symbol: str, client_id: str, conditional: bool
    ) -> VenueOrderState | None:
        """The order with ``client_id``, or None when the venue has never seen it."""
        params: dict[str, Any] = {"clientOrderId": client_id}
        if conditional:
            params["trigger"] = True
        try:
            order = await call(lambda: self.exchange.fetch_order(None, symbol, params))
        except OrderNotFoundError:
            return None
        return order_state(order)

    async def cancel(self, symbol: str, client_id: str, conditional: bool) -> bool:
        """Cancel by client id; False when it was no longer open (filled, gone).

        Cancelling twice is harmless, so a lost answer is a :class:`RetryableError` (ask again),
        not an unknown outcome.
        """
        params: dict[str, Any] = {"clientOrderId": client_id}
        if conditional:
            params["trigger"] = True
        try:
            await call(lambda: self.exchange.cancel_order(None, symbol, params))
        except (OrderNotFoundError, RejectedError):
            return False
        return True

    async def open_orders(self, symbols: Iterable[str]) -> list[VenueOrder]:
        """Every open regular and conditional order on ``symbols``."""
        result = []
        for symbol in symbols:
            for conditional in (False, True):
                orders = await self._open_orders(symbol, conditional)
                result += [venue_order(o, conditional=conditional) for o in orders]
        return result

    async def open_conditional(self, symbols: Iterable[str]) -> list[VenueOrder]:
        """Every open conditional order on ``symbols``, in one request."""
        wanted = set(symbols)
        options = self.exchange.options.setdefault("fetchOpenOrders", {})
        options["warnWithoutSymbol"] = False  # one weight-40 call instead of one per symbol
        orders = await call(
            lambda: self.exchange.fetch_open_orders(None, None, None, {"trigger": True})
        )
        return [venue_order(o, conditional=True) for o in orders if o.get("symbol") in wanted]

    async def _open_orders(self, symbol: str, conditional: bool) -> list[dict[str, Any]]:
        params = {"trigger": True} if conditional else {}
        orders: list[dict[str, Any]] = await call(
            lambda: self.exchange.fetch_open_orders(symbol, None, None, params)
        )
        return orders

    async def positions(self, symbols: Iterable[str]) -> dict[str, VenuePosition]:
        """Non-zero positions on ``symbols`` (signed amounts from the venue's strings)."""
        return (await self.account(symbols))[0]

    async def account(
        self, symbols: Iterable[str]
    ) -> tuple[dict[str, VenuePosition], dict[str, SymbolSettings]]:
        """Non-zero positions, and every symbol's leverage and margin mode, in one request.

        Binance's positionRisk lists flat symbols too (with their leverage and margin mode) on
        USDⓈ-M v2 and COIN-M v1 — v3 dropped both — but ccxt's ``fetch_positions`` drops flat
        rows, so the raw endpoint is asked and its rows parsed here.
        """
        wanted = set(symbols)
        if self.market_type is MarketType.LINEAR:  # one symbol: one row, not every listing
            one = {"symbol": self.exchange.market_id(min(wanted))} if len(wanted) == 1 else {}
            raw = await call(lambda: self.exchange.fapiPrivateV2GetPositionRisk(one))
        else:
            raw = await call(lambda: self.exchange.dapiPrivateGetPositionRisk({}))
        positions, settings = {}, {}
        for info in raw:
            market = self.exchange.safe_market(info.get("symbol"), None, None, "swap")
            symbol = market.get("symbol")
            if symbol not in wanted:
                continue
            settings[symbol] = settings_of(info, {})
            amount = answer_decimal(info, "positionAmt", 0) or Decimal(0)
            if amount == 0:
                continue
            liquidation = answer_decimal(info, "liquidationPrice", None)
            positions[symbol] = VenuePosition(
                symbol,
                Side.LONG if amount > 0 else Side.SHORT,
                abs(amount),
                answer_decimal(info, "entryPrice", 0) or Decimal(0),
                liquidation or None,
                settings[symbol].leverage,
                settings[symbol].margin_mode,
            )
        return positions, settings

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set ``symbol``'s leverage (idempotent)."""
        await call(lambda: self.exchange.set_leverage(leverage, symbol))

    async def set_margin_mode(self, symbol: str, margin: MarginMode) -> None:
        """Set ``symbol``'s margin mode (only possible while flat without open orders)."""
        try:
            await call(lambda: self.exchange.set_margin_mode(margin.value, symbol))
        except RejectedError as e:
            if "-4046" not in str(e) and "No need" not in str(e):
                raise

    async def balance(self, currency: str) -> tuple[Decimal, Decimal]:
        """(wallet balance, unrealised PnL) of ``currency``."""
        raw = await call(self.exchange.fetch_balance)
        info = raw.get("info") or {}
        for asset in info.get("assets", []) or info.get("balances", []) or []:
            if asset.get("asset") == currency:
                wallet = to_decimal(asset.get("walletBalance", "0"), "walletBalance")
                unrealized = to_decimal(asset.get("unrealizedProfit", "0"), "unrealizedProfit")
                return wallet, unrealized
        total = (raw.get("total") or {}).get(currency) or 0
        return to_decimal(total, "total"), Decimal(0)

    async def fills_of(
        self, symbol: str, exchange_order_id: str, client_id: str, since: datetime, until: datetime
    ) -> list[Fill]:
        """The venue's executions of one order (with commission and realised PnL)."""
        return [
            fill_of(t, symbol, client_id)
            for t in await self._trades(symbol, since, until)
            if order_id_of(t) == exchange_order_id
        ]

    async def fills_since(
        self, symbol: str, since: datetime, until: datetime
    ) -> list[tuple[str, Fill]]:
        """Every execution on ``symbol`` from ``since`` to ``until`` — ours, a person's, anyone's —
        with the exchange order id it belongs to (its fill's ``client_order_id`` is
        ``venue:<id>``)."""
        return [
            (order_id_of(t), fill_of(t, symbol, f"venue:{order_id_of(t)}"))
            for t in await self._trades(symbol, since, until)
        ]

    async def _trades(self, symbol: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The account's fills on ``symbol`` from a minute before ``since`` to ``until``.

        Binance answers at most 7 days of fills per request (ccxt asks for exactly 7 days when
        ``since`` is older) and at most 1,000 at a time: a stop that rested for weeks, or a busy
        account, needs several requests — one 7-day window after the other, and more pages in
        a window that came back full.
        """
        start, end = datetime_to_ms(since) - 60_000, datetime_to_ms(until) + 60_000
        found: dict[str, dict[str, Any]] = {}
        while start <= end:
            stop = min(start + TRADES_WINDOW_MS - 1, end)
            page: list[dict[str, Any]] = await call(
                partial(self.exchange.fetch_my_trades, symbol, start, TRADES_PAGE, {"until": stop})
            )
            found.update((str(t["id"]), t) for t in page)
            newest = max((int(t["timestamp"]) for t in page), default=start)
            full = len(page) >= TRADES_PAGE and newest > start  # more in this window
            start = newest if full else stop + 1
        return sorted(found.values(), key=lambda t: (int(t["timestamp"]), _numeric(t["id"])))

    async def funding_since(
        self, symbol: str, since: datetime, currency: str
    ) -> list[FundingPayment]:
        """Funding settled on ``symbol`` since ``since`` (the venue's income history)."""
        since_ms = int(since.timestamp() * 1000)
        rows = await call(lambda: self.exchange.fetch_funding_history(symbol, since_ms, 1000))
        payments = []
        for row in rows:
            info = row.get("info") or {}
            amount = answer_decimal(info, "income", row.get("amount")) or Decimal(0)
            at = ms_to_datetime(int(row["timestamp"]))
            payments.append(FundingPayment(symbol, at, None, None, None, amount, currency))
        return payments

    async def funding_rate_at(self, symbol: str, at: datetime) -> Decimal | None:
        """The funding rate the venue settled at ``at`` (a funding time), if it published one."""
        since = int(at.timestamp() * 1000) - 60_000
        rows = await call(lambda: self.exchange.fetch_funding_rate_history(symbol, since, 3))
        for row in rows:
            if abs(int(row["timestamp"]) - int(at.timestamp() * 1000)) <= 60_000:
                info = row.get("info") or {}
                return answer_decimal(info, "fundingRate", row.get("fundingRate"))
        return None

    async def watch_orders(self) -> list[tuple[str, VenueOrderState]]:
        """Order updates from the user-data stream (ccxt.pro), each with its symbol; raises
        RetryableError on a drop."""
        orders = await call(self.exchange.watch_orders)
        return [(str(o.get("symbol") or ""), order_state(o)) for o in orders]


def _numeric(trade_id: object) -> tuple[int, str]:
    """Sort key of a trade id: by number where it is one (``"999"`` before ``"1000"``)."""
    text = str(trade_id)
    return (int(text), text) if text.isdigit() else (-1, text)
