"""The daemon's own :class:`tbotd.daemon.cycle.Cycle` (risk guard, equity split, order of
settling and deciding) over several symbols' candles, with a paper broker and an in-memory feed
and predictor: what the portfolio backtest must equal trade for trade (with the model monitor
grading predictions after every cycle, as in the daemon)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd

from tbotd.config.settings import Settings
from tbotd.daemon.cycle import Cycle
from tbotd.daemon.monitor import ModelMonitor, rule_book
from tbotd.domain import Candle, MarketSpec, Prediction
from tbotd.domain.values import datetime_to_ms
from tbotd.execution.broker import PriceRef
from tbotd.execution.paper import PaperBroker
from tbotd.execution.paper_model import FillParams
from tbotd.ops.clock import ManualClock
from tbotd.store import Store, Trade
from tbotd.strategy.build import exit_params
from tests.unit.backtest_support import to_candles


@dataclass(frozen=True)
class Made:
    """What the predictor returns for one symbol."""

    prediction: Prediction
    latency_ms: float = 0.0


class Feed:
    """Closed candles and next-open prices from in-memory histories."""

    def __init__(self, bars: Mapping[str, list[Candle]]) -> None:
        self.bars, self.i = bars, 0

    async def wait_closed(self, open_time: datetime, timeout_s: float) -> dict[str, Candle]:
        del timeout_s  # every candle is there at once
        return {s: b[self.i] for s, b in self.bars.items() if b[self.i].open_time == open_time}

    def price(self, symbol: str) -> PriceRef:
        bars = self.bars[symbol]
        nxt = bars[min(self.i + 1, len(bars) - 1)]
        if self.i + 1 >= len(bars):
            return PriceRef(nxt.close, nxt.close_time)
        return PriceRef(nxt.open, nxt.open_time)


class Predictor:
    """The predictions given per symbol and candle open time (ms); none where none is given."""

    def __init__(self, table: Mapping[str, Mapping[int, Prediction | None]]) -> None:
        self.table = table

    async def predict(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime
    ) -> dict[str, Made]:
        key = datetime_to_ms(candle_time)
        out = {}
        for symbol in histories:
            made = self.table.get(symbol, {}).get(key)
            if made is not None:
                out[symbol] = Made(made)
        return out


async def daemon_cycles(
    frames: Mapping[str, pd.DataFrame],
    predict: Mapping[str, Mapping[int, Prediction | None]],
    config: Settings,
    markets: Mapping[str, MarketSpec],
    funding: Mapping[str, Mapping[int, Decimal]],
    db: Path,
) -> tuple[list[Trade], Decimal, list[tuple[str, int, str | None]]]:
    """``Cycle.run`` for every candle but the last, whose exits then settle; what is still open
    is closed at the last close. Its trades, final balance and risk events (kind, ms, symbol)."""
    bars = {s: to_candles(f, s) for s, f in frames.items()}
    first = next(iter(bars.values()))
    clock = ManualClock(first[0].open_time)
    feed = Feed(bars)

    async def rate(symbol: str, at: datetime) -> Decimal | None:
        return funding.get(symbol, {}).get(datetime_to_ms(at))

    ex = config.execution
    store = Store.open(db)
    broker = PaperBroker(
        store=store,
        markets=markets,
        params=FillParams(ex.slippage_bps, ex.taker_fee_bps, Decimal(ex.leverage)),
        currency=config.strategy.share_class,
        initial_balance=config.strategy.initial_capital,
        instance="parity",
        clock=clock,
        prices=feed.price,
        funding=rate,
        fallback_exits=exit_params(config),
    )
    await broker.start()
    cycle = Cycle(config, store, feed, broker, Predictor(predict), clock)
    rules = rule_book(config.ml.models_dir, float(ex.taker_fee_bps))  # as the app wires it
    cycle.monitor = ModelMonitor(store, config.exchange.timeframe, rules)
    for i, candle in enumerate(first):
        feed.i = i
        await clock.set(candle.close_time)
        store.record_candles([b[i] for b in bars.values()])
        if i + 1 == len(first):
            for b in bars.values():
                await broker.on_closed_candle(b[i])
            break
        await cycle.run(candle.open_time)
    for symbol in sorted(bars):
        await broker.close_position(symbol, "end of data", first[-1].open_time)
    balance = (await broker.equity()).balance
    trades = store.trades()
    events = [
        (str(r["kind"]), int(r["time"]), r["symbol"])
        for r in store.query("SELECT * FROM events WHERE kind LIKE 'risk-%' ORDER BY id")
    ]
    store.close()
    return trades, balance, events
