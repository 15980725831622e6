"""The one place that wires concrete adapters by mode (paper | live) — nothing else does.

:func:`build` opens the store, connects ccxt (the real venue, or `tbotd sim` when
``exchange.base_url`` is set), anchors the daemon's clock to the venue's, and builds the feed,
the broker, the predictor chain and the cycle. :meth:`App.recover` is startup-as-recovery.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tbotd.config.settings import Settings
from tbotd.daemon.cycle import Cycle
from tbotd.daemon.cycle_ports import Predictor
from tbotd.daemon.monitor import ModelMonitor, rule_book
from tbotd.daemon.reload import fill_params
from tbotd.daemon.venue_wait import StartupWait, venue_time
from tbotd.domain.enums import TradingMode
from tbotd.domain.errors import (
    ConfigError,
    InvalidDataError,
    RejectedError,
    RetryableError,
    StorageUnavailableError,
)
from tbotd.domain.notices import EventRecord
from tbotd.domain.values import ms_to_datetime
from tbotd.execution.broker import Broker, FundingSource
from tbotd.execution.live import LiveBroker
from tbotd.execution.paper import PaperBroker
from tbotd.execution.venue import CcxtVenue, call
from tbotd.marketdata.feed import CandleFeed
from tbotd.ops.clock import Clock, ScaledClock
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import DAEMON_METRICS, DaemonMetrics
from tbotd.store import Store
from tbotd.store.lock import DatabaseLock
from tbotd.strategy.build import exit_params

log = get_logger(__name__)


def make_exchange(settings: Settings) -> Any:
    """A ccxt.pro client for the configured venue; order calls never retried by ccxt itself."""
    cfg = settings.exchange
    key = cfg.api_key.get_secret_value() if cfg.api_key else None
    secret = cfg.api_secret.get_secret_value() if cfg.api_secret else None
    timeout_ms = int(cfg.request_timeout_s * 1000)
    if cfg.base_url:
        from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET
        from tbotd.sim.client import make_ccxt

        return make_ccxt(
            cfg.id,
            cfg.base_url,
            key or DEMO_API_KEY,
            secret or DEMO_API_SECRET,
            pro=True,
            config={"timeout": timeout_ms},
        )
    import ccxt.pro

    options = {"maxRetriesOnFailure": 0, "fetchCurrencies": False}
    params: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms, "options": options}
    if key and secret:
        params.update(apiKey=key, secret=secret)
    return getattr(ccxt.pro, cfg.id)(params)


@dataclass
class App:
    """Everything one running instance is made of."""

    settings: Settings
    store: Store
    clock: Clock
    venue: CcxtVenue
    feed: CandleFeed
    broker: Broker
    predictor: Predictor
    cycle: Cycle
    lock: DatabaseLock | None = None

    async def recover(self) -> None:
        """Startup is recovery: broker state reconciled with the venue, history filled, and the
        local models warmed up on it (so the first cycle is not the slowest)."""
        await self.broker.start()
        await self.feed.warm_up()
        warm_up = getattr(self.predictor, "warm_up", None)
        if warm_up is not None:
            histories = {}
            for symbol in self.settings.exchange.symbols:
                last = self.feed.last_closed(symbol)
                if last is not None:
                    histories[symbol] = self.cycle.histories.upto(symbol, last)
            await warm_up(histories)

    async def resync_clock(self) -> None:
        """Re-anchor the daemon's clock on the venue's (no drift between the two).

        When the venue cannot say (a transient failure) the clock keeps its current anchor:
        the cycle must not be lost to one failed time request.
        """
        if isinstance(self.clock, ScaledClock):
            try:
                self.clock.anchor(await self.venue.server_time())
            except RetryableError as e:
                log.warning("venue time unavailable; keeping the clock's anchor", error=str(e))

    async def close(self) -> None:
        """Release connections and the database; protective orders stay on the venue."""
        close = getattr(self.predictor, "close", None)
        if close is not None:
            await close()
        await self.broker.stop()
        if not isinstance(self.broker, LiveBroker):  # the live broker closes the venue itself
            await self.venue.close()
        self.store.close()
        if self.lock is not None:
            self.lock.release()


async def build(
    settings: Settings,
    predictor: Predictor | None = None,
    holder: str = "",
    wait: StartupWait | None = None,
) -> App:
    """Wire an instance by its config (``predictor`` may be injected, e.g. by tests).

    The database is locked first (one daemon per database; ``holder`` says who we are to a
    second one), and the instance's client ids carry its database's identity. With ``wait``,
    an unreachable exchange is waited for (:mod:`tbotd.daemon.venue_wait`), else it raises.
    """
    lock = DatabaseLock(settings.store.path, holder or f"instance {settings.instance}")
    lock.acquire()
    try:
        return await _wire(settings, predictor, lock, wait)
    except BaseException:
        lock.release()
        raise


def report_unmanaged_positions(settings: Settings, store: Store, now: datetime) -> None:
    """An open position recorded on a symbol this config does not trade (removed from
    ``exchange.symbols``, or left out because the venue stopped trading it) is managed by no
    one: no decision, no reconciliation, no flatten; a live one keeps its exchange-side stop.
    Said loudly at every start (an ``alert``, which notifies), never a reason to stop managing
    the others."""
    for symbol in sorted(set(store.positions()) - set(settings.exchange.symbols)):
        message = (
            f"open position on {symbol} recorded, but this config does not trade {symbol}: it "
            "is not managed (no decisions, no reconciliation, no flatten; a live position keeps "
            "its exchange-side stop) — add the symbol back to manage or close it (once flat on "
            "the exchange the record is dropped), or close it on the exchange yourself"
        )
        log.error("unmanaged position", symbol=symbol)
        with contextlib.suppress(StorageUnavailableError):
            store.record_event(now, "alert", message, symbol)


async def _wire(
    settings: Settings, predictor: Predictor | None, lock: DatabaseLock, wait: StartupWait | None
) -> App:
    store = Store.open(settings.store.path)
    exchange = make_exchange(settings)
    venue = CcxtVenue(exchange, settings.exchange.market_type)
    url = settings.exchange.base_url or _public_url(exchange)
    try:
        server_ms = await venue_time(lambda: call(exchange.fetch_time), url, wait)
        refuse_future_history(settings, store, ms_to_datetime(int(server_ms)))
    except BaseException:
        await venue.close()
        store.close()
        raise
    clock = ScaledClock(ms_to_datetime(int(server_ms)), settings.daemon.time_scale)
    try:
        settings = await tradable_only(settings, exchange, store, clock.now())
        report_unmanaged_positions(settings, store, clock.now())
    except BaseException:
        await venue.close()
        store.close()
        raise
    symbols = list(settings.exchange.symbols)
    feed = CandleFeed(
        exchange,
        symbols,
        settings.exchange.timeframe,
        store,
        clock,
        grace_s=settings.daemon.confirm_after_s,
        warmup_bars=settings.daemon.history_bars,
        silent_after_s=settings.daemon.stream_silent_after_s,
    )
    broker = await _broker(settings, store, venue, feed, clock)
    if predictor is None:
        from tbotd.predictor.fallback import FallbackPredictor

        predictor = FallbackPredictor.from_settings(settings, events=store, clock=clock)
    store.add_event_listener(count_event)
    cycle = Cycle(settings, store, feed, broker, predictor, clock)
    rules = rule_book(settings.ml.models_dir, float(settings.execution.taker_fee_bps))
    cycle.monitor = ModelMonitor(
        store, settings.exchange.timeframe, rules, settings.ml.trade_when_degraded
    )
    return App(settings, store, clock, venue, feed, broker, predictor, cycle, lock)


def count_event(event: EventRecord, metrics: DaemonMetrics = DAEMON_METRICS) -> None:
    """``tbotd_events_total{kind}``: the alert rules see reconciliation differences and
    unprotected positions as they are recorded (or fail to be)."""
    metrics.events.labels(event.kind).inc()


def _public_url(exchange: Any) -> str:
    """The venue's public REST root as ccxt knows it (what the log names while waiting)."""
    api = exchange.urls.get("api", {})
    found = api.get("fapiPublic") or api.get("dapiPublic") if isinstance(api, dict) else api
    return str(found or exchange.urls.get("www", exchange.id))


async def tradable_only(settings: Settings, exchange: Any, store: Store, now: datetime) -> Settings:
    """The settings with only the symbols the venue lists and trades: one delisted or halted
    symbol is reported (log line and ``symbol-unavailable`` event) and left out, so the others
    are still managed; none left is the operator's to fix (exit 2)."""
    loaded = await call(exchange.load_markets)
    keep = []
    for symbol in settings.exchange.symbols:
        market = loaded.get(symbol)
        if market is not None and market.get("active") is not False:
            keep.append(symbol)
            continue
        why = "not listed" if market is None else "not trading (halted or delisted)"
        message = f"{symbol} is {why} on {exchange.id}: left out, the other symbols trade"
        log.error("symbol left out", symbol=symbol, reason=why)
        with contextlib.suppress(StorageUnavailableError):
            store.record_event(now, "symbol-unavailable", message, symbol)
    if not keep:
        raise ConfigError(
            f"none of exchange.symbols ({', '.join(settings.exchange.symbols)}) is listed and "
            f"trading on {exchange.id}"
        )
    if len(keep) == len(settings.exchange.symbols):
        return settings
    narrowed = settings.exchange.model_copy(update={"symbols": tuple(keep)})
    return settings.model_copy(update={"exchange": narrowed})


def refuse_future_history(settings: Settings, store: Store, venue_now: datetime) -> None:
    """A database whose newest candle closes after the venue's "now" belongs to another market
    (a restarted ``tbotd sim``, another replay): continuing would decide nothing while reporting
    ready, and show positions whose story the venue never had. Refuse, saying what to do."""
    for symbol in settings.exchange.symbols:
        newest = store.last_candle_time(symbol, settings.exchange.timeframe)
        if newest is not None and newest > venue_now:  # a candle still forming at most: never
            raise ConfigError(
                f"{settings.store.path}: its newest {symbol} candle ({newest.isoformat()}) is "
                f"later than the exchange's clock ({venue_now.isoformat()}): the database belongs "
                "to another run of the market (a restarted `tbotd sim`?); point store.path at a "
                "new file or remove this one"
            )


def instance_key(settings: Settings, store: Store) -> str:
    """What client ids are derived from: the instance's name and its database's identity, so
    two databases (two daemons, or a lost and a new one) never derive the same ids."""
    return f"{settings.instance}|{store.owner()}"


async def _broker(
    settings: Settings, store: Store, venue: CcxtVenue, feed: CandleFeed, clock: Clock
) -> Broker:
    execution, strategy = settings.execution, settings.strategy
    exits = exit_params(settings)
    if execution.mode is TradingMode.LIVE:
        return LiveBroker(
            store=store,
            venue=venue,
            symbols=list(settings.exchange.symbols),
            currency=strategy.share_class,
            instance=instance_key(settings, store),
            clock=clock,
            prices=feed.price,
            leverage=execution.leverage,
            margin_mode=execution.margin_mode,
            fallback_exits=exits,
        )
    markets = await venue.markets(settings.exchange.symbols)

    funding = paper_funding(venue, store, clock)
    return PaperBroker(
        store=store,
        markets=markets,
        params=fill_params(settings),
        currency=strategy.share_class,
        initial_balance=strategy.initial_capital,
        instance=instance_key(settings, store),
        clock=clock,
        prices=feed.price,
        funding=funding,
        fallback_exits=exits,
    )


def paper_funding(venue: CcxtVenue, store: Store, clock: Clock) -> FundingSource:
    """The funding rates paper mode charges, from the venue. A rate it cannot have — the venue
    unreachable, refusing, or answering garbage — is skipped for that funding time and said
    (``funding-unknown``), never an error: paper settles missed candles again until they pass,
    so an error here would stop every later cycle at the same candle."""

    async def funding(symbol: str, at: datetime) -> Decimal | None:
        try:
            return await venue.funding_rate_at(symbol, at)
        except (RetryableError, RejectedError, InvalidDataError) as e:
            store.record_event(clock.now(), "funding-unknown", f"rate unavailable: {e}", symbol)
            return None

    return funding
