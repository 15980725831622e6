"""The exact per-candle step of the paper cycle.

:class:`Simulator.step` does for one closed candle what the daemon does in paper mode, with the
daemon's own code: exits inside the candle (:func:`~tbotd.execution.paper_model.candle_exit`,
stop/liquidation before take-profit, gaps at the open), funding at 00/08/16 UTC
(:func:`~tbotd.execution.paper_model.charge_funding`), then the strategy's decision at the close
(:meth:`~tbotd.strategy.strategy.Strategy.decide` on that bar's signal) filled at the next
candle's open (:func:`~tbotd.execution.paper_model.open_position` / ``close_position`` /
:func:`~tbotd.execution.broker.protection_after_fill`). Money is Decimal throughout.

:mod:`tbotd.backtest.drive` runs it for every bar (the reference) or only where something can
happen (the fast path); both leave identical trades, balances and per-bar records.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from tbotd.backtest.bars import BarRecord, BarState
from tbotd.backtest.state import Book, Candles, Decided, Decider, Deferred, dec
from tbotd.config.settings import Settings
from tbotd.domain.actions import (
    Action,
    ClosePosition,
    Hold,
    HoldKind,
    MoveProtection,
    OpenPosition,
)
from tbotd.domain.enums import MarketType, Side
from tbotd.domain.errors import BelowMinimumError, InsufficientMarginError, InvalidDataError
from tbotd.domain.market import Candle, MarketSpec
from tbotd.domain.values import ms_to_datetime
from tbotd.execution import paper_model as pm
from tbotd.execution.broker import bounded_prices, order_qty, protection_after_fill
from tbotd.store.wallet import Trade
from tbotd.strategy.exits import Protection
from tbotd.strategy.rules import ENTRY_WINDOW
from tbotd.strategy.signal import SignalSeries
from tbotd.strategy.strategy import Strategy

END_OF_DATA = "end_of_data"
FUNDING_PERIOD_MS = 8 * 3_600_000  # 00:00, 08:00, 16:00 UTC (is_funding_time), in epoch ms
ENTRY_WINDOW_MS = int(ENTRY_WINDOW.total_seconds() * 1000)
Progress = Callable[[int, int], None]
Decides = Callable[[Side | None, int], bool]
Gate = Callable[["Simulator", list[Action], Decimal], list[Action]]  # the risk guard's say


def fill_params(settings: Settings) -> pm.FillParams:
    """The paper venue's costs from the config's execution section (as the daemon builds them)."""
    ex = settings.execution
    return pm.FillParams(
        slippage_bps=ex.slippage_bps,
        taker_fee_bps=ex.taker_fee_bps,
        leverage=Decimal(ex.leverage),
    )


class Simulator:
    """The wallet, the position and the per-bar record of one symbol's backtest.

    ``series`` is the strategy's signal for every bar; ``protect=False`` leaves positions
    without TP/SL (the buy-and-hold arm of ``--compare``: held until the end, or liquidated).
    """

    def __init__(
        self,
        candles: Candles,
        series: SignalSeries,
        strategy: Strategy,
        settings: Settings,
        market: MarketSpec,
        funding: Mapping[int, Decimal],
        *,
        protect: bool = True,
        book: Book | None = None,
    ) -> None:
        self.c, self.series, self.strategy, self.market = candles, series, strategy, market
        self.symbol, self.n = market.symbol, len(candles)
        self.close_ms = candles.close_ms
        self.cfg = strategy.rules
        self.decider = Decider(strategy, series, market, candles.open)
        self.protect = protect
        self.params = fill_params(settings)
        self.funding_rates = funding
        self.initial = settings.strategy.initial_capital
        self.book = (
            Book(pm.Wallet(settings.strategy.share_class, self.initial)) if book is None else book
        )
        self.own_wallet = book is None  # else a share of one portfolio's wallet
        self.cash = Decimal(0)  # what this symbol added to the wallet: PnL, fees, funding
        self.gate: Gate | None = None
        self.trades: list[Trade] = []
        self.fees = self.funding = self.entry_fee = self.funding_open = Decimal(0)
        self.opened_ms = 0
        self.funding_payments = self.funding_missing = self.exits_fallback = 0
        self.exact_steps = 0
        self.entries: deque[int] = deque()  # candle open times (ms) of the decided entries
        self.skipped: Counter[str] = Counter()
        self.decided: list[Decided | Deferred] = []
        self._known: tuple[object, BarState] | None = None
        self._at: tuple[int, datetime] | None = None
        self.refused_for_size: object = None  # the wallet the last size refusal was made for
        self.per_bar = BarRecord(self.n)

    @property
    def wallet(self) -> pm.Wallet:
        """The wallet this symbol trades from (its own, or the portfolio's)."""
        return self.book.wallet

    @wallet.setter
    def wallet(self, wallet: pm.Wallet) -> None:
        self.cash += wallet.balance - self.book.wallet.balance
        self.book.wallet = wallet

    # -- the exact step ----------------------------------------------------------------------

    def position(self) -> pm.PaperPosition | None:
        """The open position, if any."""
        return self.book.wallet.positions.get(self.symbol)

    def step(self, i: int, may_exit: bool = True, decides: Decides | None = None) -> None:
        """Candle ``i`` closed: exits inside it, funding at its close, the decision at its close.

        ``may_exit=False`` is the fast path's word that candle ``i`` cannot reach any resting
        level (see :func:`~tbotd.backtest.events.first_crossing`), so the exit test is skipped;
        ``decides(side, i)`` its word on whether the rules could act at ``i`` with the position
        left after the exits (where they could not, they would hold, changing nothing).
        """
        self.settle(i, may_exit)
        self.record(i, i + 1)
        if i + 1 < self.n:
            position = self.position()
            if decides is None or decides(None if position is None else position.side, i):
                self.decide_after(i)

    def settle(self, i: int, may_exit: bool = True) -> None:
        """What happens inside candle ``i``: its exits (stop or liquidation before target), then
        funding at its close."""
        self.exact_steps += 1
        position = self.position()
        if may_exit and position is not None and self.opened_ms < self.close_ms.item(i):
            hit = pm.candle_exit(position, self.candle(i))
            if hit is not None:
                reason, price = hit
                slip = reason is not pm.ExitReason.LIQUIDATION
                self.close(price, self.c.open_ms.item(i), reason, slip=slip, label=str(reason))
        if self.close_ms.item(i) % FUNDING_PERIOD_MS == 0 and self.position() is not None:
            self.settle_funding(i)

    def candle(self, i: int) -> Candle:
        """Candle ``i`` as the daemon's Candle (exact decimals).

        Built without re-running ``Candle``'s checks: every row passed them (as a CSV row) when
        the candles were loaded, and a stop or target touched is the commonest event there is.
        """
        c = self.c
        candle = object.__new__(Candle)
        for name, value in (
            ("symbol", self.symbol),
            ("timeframe", c.timeframe),
            ("open_time", ms_to_datetime(self.c.open_ms.item(i))),
            ("open", dec(self.c.open.item(i))),
            ("high", dec(c.high[i])),
            ("low", dec(c.low[i])),
            ("close", dec(self.c.close.item(i))),
            ("volume", dec(c.volume[i])),
        ):
            object.__setattr__(candle, name, value)
        return candle

    def settle_funding(self, i: int) -> None:
        """Charge the funding rate of candle ``i``'s close time; no rate known, no charge."""
        rate = self.funding_rates.get(self.close_ms.item(i))
        if rate is None:
            self.funding_missing += 1
            return
        self.wallet, amount = pm.charge_funding(
            self.wallet, self.market, rate, dec(self.c.close.item(i))
        )
        self.funding_open += amount
        self.funding += amount
        self.funding_payments += 1

    def mark(self, i: int) -> Decimal:
        """The price a decision at candle ``i``'s close fills near: the next candle's open."""
        return self.decider.mark(i)

    def decide_after(self, i: int, equity: Decimal | None = None) -> None:
        """The strategy's decision at candle ``i``'s close, filled at candle ``i + 1``'s open;
        sized from ``equity`` (default: this wallet's at the mark), passed through ``gate``."""
        mark = self.mark(i)
        at_ms = self.c.open_ms.item(i + 1)
        if equity is None:
            wallet = self.book.wallet
            equity = wallet.balance
            if wallet.positions:
                marks = {self.symbol: mark}
                equity += pm.unrealized(wallet, {self.symbol: self.market}, marks)
        decided_ms = self.c.open_ms.item(i)
        while self.entries and self.entries[0] <= decided_ms - ENTRY_WINDOW_MS:
            self.entries.popleft()
        inp = self.decider.decision_input(i, equity, self.position(), len(self.entries), mark)
        actions = self.strategy.decide(inp, self.series.vote(i))
        if self.gate is not None:
            actions = self.gate(self, actions, mark)
        for action in actions:
            if isinstance(action, OpenPosition):
                self.entries.append(decided_ms)
        hold = actions[0] if len(actions) == 1 and isinstance(actions[0], Hold) else None
        if hold is None or hold.kind.refusal:
            self.decided.append(Decided(i, tuple(actions)))
        if hold is not None and hold.kind is HoldKind.SIZE_REFUSED:
            self.refused_for_size = self.wallet
        self.carry_out(actions, mark, at_ms)

    def carry_out(self, actions: list[Action], mark: Decimal, at_ms: int) -> None:
        """The decided actions, filled at ``mark`` (the next candle's open) at ``at_ms``."""
        for action in actions:
            if isinstance(action, ClosePosition):
                if self.position() is not None:
                    self.close(mark, at_ms, pm.ExitReason.DECISION, slip=True, label="decision")
            elif isinstance(action, OpenPosition):
                self.open(action, mark, at_ms)
            elif isinstance(action, MoveProtection):
                self.wallet = pm.protect(
                    self.wallet, self.symbol, action.stop_loss, action.take_profit
                )
            elif action.kind.refusal:
                self.skipped["manager_refused"] += 1

    def _state(self) -> BarState:
        """What the per-bar record keeps (balance, side, quantity, entry), converted once per
        change of the wallet (the same object while it does not change)."""
        known = self._known
        wallet = self.book.wallet
        if known is not None and known[0] is wallet:
            return known[1]
        p = wallet.positions.get(self.symbol)
        balance = float(wallet.balance if self.own_wallet else self.cash)
        if p is None:
            state = BarState(balance)
        else:
            state = BarState(balance, p.side.sign, float(p.qty), float(p.entry_price))
        self._known = (wallet, state)
        return state

    def open(self, action: OpenPosition, mark: Decimal, at_ms: int) -> None:
        """Fill an entry at ``mark`` and protect it, or count why it could not be."""
        try:
            qty = order_qty(self.market, action.qty, mark)
        except BelowMinimumError:
            self.skipped["below_minimum"] += 1
            return
        fallback = False

        def levels(price: Decimal) -> tuple[Decimal | None, Decimal | None]:
            nonlocal fallback  # asked by the fill once the margin is there, as the broker does
            protection, fallback = self.protection(action, price)
            return (None, None) if protection is None else protection.levels

        try:
            self.wallet, execution = pm.open_position(
                self.wallet,
                self.market,
                action.side,
                qty,
                mark,
                self.params,
                self.time(at_ms),
                levels=levels,
            )
        except InsufficientMarginError:
            self.skipped["insufficient_margin"] += 1
            return
        self.exits_fallback += fallback
        self.entry_fee, self.funding_open, self.opened_ms = execution.fee, Decimal(0), at_ms
        self.fees += execution.fee

    def protection(self, action: OpenPosition, price: Decimal) -> tuple[Protection | None, bool]:
        """The TP/SL an entry filled at ``price`` rests with (None unprotected: buy-and-hold), and
        whether they are the broker's own fallback (the fixed exits)."""
        if not self.protect:
            return None, False
        exits = self.cfg.exits
        try:
            return bounded_prices(action.exits, action.side, price, self.market, exits), False
        except InvalidDataError:
            return protection_after_fill(action.exits, action.side, price, self.market, exits), True

    def time(self, at_ms: int) -> datetime:
        """``at_ms`` as a datetime (a flip's close and entry share theirs: converted once)."""
        if self._at is None or self._at[0] != at_ms:
            self._at = (at_ms, ms_to_datetime(at_ms))
        return self._at[1]

    def close(
        self, price: Decimal, at_ms: int, reason: pm.ExitReason, *, slip: bool, label: str
    ) -> None:
        """Close the whole position and record the trade (PnL before fees and funding)."""
        position = self.wallet.positions[self.symbol]
        at = self.time(at_ms)
        self.wallet, execution = pm.close_position(
            self.wallet, self.market, price, self.params, at, reason, slip=slip
        )
        self.fees += execution.fee
        self.trades.append(
            Trade(
                self.symbol,
                position.side,
                position.qty,
                position.opened_at,
                at,
                position.entry_price,
                execution.price,
                label,
                execution.realized_pnl,
                self.entry_fee + execution.fee,
                self.funding_open,
                self.wallet.currency,
                position.stop_loss,
                position.take_profit,
            )
        )

    # -- the per-bar record --------------------------------------------------------------------

    def record(self, start: int, stop: int) -> None:
        """Bars ``[start, stop)`` end with the current balance and position (after their exits)."""
        if stop > start:
            self.per_bar.write(start, stop, self._state())

    @property
    def balance(self) -> NDArray[np.float64]:
        """The balance after each bar."""
        return self.per_bar.arrays()[0]

    @property
    def sign(self) -> NDArray[np.int8]:
        """The position's side after each bar (+1 long, -1 short, 0 none)."""
        return self.per_bar.arrays()[1]

    @property
    def qty(self) -> NDArray[np.float64]:
        """The position's quantity (contracts) after each bar."""
        return self.per_bar.arrays()[2]

    def finish(self) -> None:
        """Close what is still open at the last close (``end_of_data``), slipped and charged."""
        if self.position() is not None:
            last = self.n - 1
            self.close(
                dec(self.c.close[last]),
                int(self.close_ms[last]),
                pm.ExitReason.DECISION,
                slip=True,
                label=END_OF_DATA,
            )
            self.record(last, self.n)

    def equity(self) -> NDArray[np.float64]:
        """Balance plus unrealised PnL at each close (float64: for curves and ratios only)."""
        balance, sign, qty, entry = self.per_bar.arrays()
        size = sign * qty * float(self.market.contract_size)
        if self.market.market_type is MarketType.LINEAR:
            upnl = size * (self.c.close - entry)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                upnl = np.where(sign != 0, size * (1 / entry - 1 / self.c.close), 0.0)
        return np.asarray(balance + upnl, dtype=np.float64)
