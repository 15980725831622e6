"""The notifier at run time: events in, policy applied, messages out — never in the cycle's way.

    store.record_event ─► offer ─► classify ─► intake ─► dispatcher (policy: dedupe, cool-down,
    daemon lifecycle ─► notify ─────────────────┘         filters, hourly budget)
                                                             ─► one queue + worker per target
                                                                 ─► apprise, in a thread

``offer`` and ``notify`` never block and never raise: they classify (microseconds) and put the
notice in a bounded queue. The dispatcher and one worker per target are tracked tasks of the
notifier's own supervisor (they outlive the daemon's tasks, to say "stopped"). A target that
fails is retried, then counted, logged and recorded as one ``notify-failed`` event (and
``notify-recovered`` when it works again); the others are not affected. Events reach the
notifier even when the database refuses to record them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from tbotd.config.notify import NotifyConfig
from tbotd.config.settings import Settings
from tbotd.domain.errors import StorageUnavailableError
from tbotd.domain.notices import EventRecord, Notice, Severity
from tbotd.notify import policy
from tbotd.notify.classify import notice_for
from tbotd.notify.enrich import enrich
from tbotd.notify.queue import SeverityQueue
from tbotd.notify.render import render
from tbotd.notify.summary import (
    DailyFigures,
    figures,
    figures_from_file,
    next_summary_at,
    summary_notice,
)
from tbotd.notify.targets import Message, SendResult
from tbotd.ops.clock import Clock, SystemClock
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import NOTIFY_METRICS, NotifyMetrics
from tbotd.ops.retry import Backoff
from tbotd.ops.tasks import TaskSupervisor

log = get_logger(__name__)


class Sender(Protocol):
    """One target's transport (:class:`tbotd.notify.targets.AppriseTarget` is one)."""

    name: str
    scheme: str

    async def send(self, message: Message, timeout_s: float) -> SendResult:
        """One attempt within ``timeout_s``; never raises."""
        ...


class Records(Protocol):
    """What the notifier needs of the store: reads, and its own two event kinds."""

    def query(
        self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()
    ) -> list[dict[str, Any]]:
        """Rows of a read query."""
        ...

    def record_event(
        self, at: datetime, kind: str, message: str, symbol: str | None = None, **data: Any
    ) -> None:
        """Append an audit event."""
        ...


@dataclass
class _Target:
    sender: Sender
    queue: SeverityQueue[policy.Delivery]
    up: bool = True
    sent: int = 0
    failed: int = 0
    last_error: str = ""
    last_sent: datetime | None = field(default=None)


class Notifications:
    """Tells the operator what they must know (see the module docstring)."""

    def __init__(
        self,
        config: NotifyConfig,
        instance: str,
        senders: Sequence[Sender],
        currency: str = "",
        clock: Clock | None = None,
        metrics: NotifyMetrics = NOTIFY_METRICS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config, self.instance, self.currency = config, instance, currency
        self._clock: Clock = clock or SystemClock()
        self._metrics, self._sleep = metrics, sleep
        self._targets = {
            s.name: _Target(s, SeverityQueue(config.queue_size, _severity)) for s in senders
        }
        rules = []
        for name in self._targets:
            f = config.filter_for(name)
            rules.append(
                policy.TargetRule(
                    name, f.min_severity, frozenset(f.kinds), frozenset(f.exclude_kinds)
                )
            )
        self._policy = policy.PolicyConfig(
            tuple(rules),
            timedelta(seconds=config.cooldown_s),
            timedelta(seconds=config.dedupe_window_s),
            config.max_per_hour,
        )
        self._state = policy.PolicyState()
        self._intake: SeverityQueue[Notice] = SeverityQueue(max(config.queue_size, 100), _sev)
        self._backoff = Backoff(attempts=config.retries + 1, base_s=config.retry_backoff_s)
        self._tasks = TaskSupervisor()
        self._records: Records | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        for name in self._targets:
            metrics.target_up.labels(name).set(1)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> Notifications:
        """The notifier ``settings.notify`` describes (blocking: apprise loads its plugins)."""
        cfg = settings.notify
        urls = cfg.target_urls()
        senders: list[Sender] = []
        if urls:
            from tbotd.notify.targets import AppriseTarget, register_target_secrets

            register_target_secrets(urls)
            senders = [AppriseTarget(u, cfg.timeout_s) for u in urls]
        return cls(cfg, settings.instance, senders, settings.strategy.share_class, clock)

    @property
    def enabled(self) -> bool:
        """At least one target is configured."""
        return bool(self._targets)

    # -- wiring ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and the target workers (in the running event loop)."""
        if not self.enabled or self._loop is not None:
            return
        self._loop, self._thread = asyncio.get_running_loop(), threading.get_ident()
        self._tasks.spawn(self._dispatch(), "notify dispatcher")
        for target in self._targets.values():
            self._tasks.spawn(self._work(target), f"notify {target.sender.name}")

    def attach(self, records: Records, clock: Clock) -> None:
        """Use the daemon's store (enrichment, summary, own events) and clock from now on."""
        self._records, self._clock = records, clock
        if self.enabled and self._loop is not None and self.config.daily_summary_utc:
            self._tasks.spawn(self._daily(), "notify daily summary")

    def offer(self, event: EventRecord) -> None:
        """A store event: notified if it matters. Any thread; never blocks, never raises."""
        if not self._targets:
            return
        try:
            notice = notice_for(event)
        except Exception:  # a malformed event must not break the recording of the next
            log.exception("could not classify an event for notification", kind=event.kind)
            return
        if notice is not None:
            self.notify(notice)

    def notify(self, notice: Notice) -> None:
        """Queue ``notice`` for the policy. Any thread; never blocks, never raises."""
        if not self._targets:
            return
        loop = self._loop
        if loop is not None and threading.get_ident() != self._thread:
            with contextlib.suppress(RuntimeError):  # a loop already closed: nothing to tell
                loop.call_soon_threadsafe(self.notify, notice)
            return
        dropped = self._intake.put(notice)
        if dropped is not None:
            self._count_drop("queue_full", dropped)

    async def close(self, flush_s: float | None = None) -> None:
        """Send what is queued (and any state held by a cool-down) within ``flush_s``, then
        stop. Whatever is still unsent is logged as lost."""
        if self._loop is None:
            return
        limit = self.config.stop_flush_s if flush_s is None else flush_s
        try:
            await asyncio.wait_for(self._flush_all(), limit)
        except TimeoutError:
            left = sum(len(t.queue) for t in self._targets.values()) + len(self._intake)
            log.warning("notifications not sent before the stop", queued=left, within_s=limit)
        await self._tasks.close(timeout_s=1.0)
        self._loop = None

    async def _flush_all(self) -> None:
        await self._intake.drained()
        horizon = self._clock.now() + self._policy.cooldown
        self._apply(policy.flush(self._state, horizon, self._policy))
        for target in self._targets.values():
            await target.queue.drained()

    # -- the dispatcher ----------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            await self._wait(policy.next_flush(self._state, self._policy))
            while (notice := self._intake.pop()) is not None:
                try:
                    self._admit(notice)
                except Exception:  # one bad notice must not stop the others
                    log.exception("could not route a notification", kind=str(notice.kind))
            self._intake.done()
            self._apply(policy.flush(self._state, self._clock.now(), self._policy))

    async def _wait(self, due: datetime | None) -> None:
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._intake.wait())]
        if due is not None:
            delay = (due - self._clock.now()).total_seconds()
            if delay <= 0:
                waits[0].cancel()
                return
            waits.append(asyncio.ensure_future(self._clock.sleep(delay)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _admit(self, notice: Notice) -> None:
        if self._records is not None:
            try:
                notice = enrich(notice, self._records)
            except Exception as e:  # noqa: BLE001 - the notice goes out without provenance
                log.warning("could not read an entry's provenance", error=str(e))
        self._apply(policy.admit(self._state, notice, self._clock.now(), self._policy))

    def _apply(self, verdict: policy.Verdict) -> None:
        self._state = verdict.state
        for reason, notice in verdict.dropped:
            self._count_drop(reason, notice)
        for delivery in verdict.deliveries:
            target = self._targets[delivery.target]
            dropped = target.queue.put(delivery)
            if dropped is not None:
                self._count_drop("queue_full", dropped.notice)
            self._metrics.queued.labels(delivery.target).set(len(target.queue))

    def _count_drop(self, reason: str, notice: Notice | policy.Delivery) -> None:
        if isinstance(notice, policy.Delivery):
            notice = notice.notice
        self._metrics.dropped.labels(reason, str(notice.severity)).inc()
        if reason == "queue_full":
            log.warning("notification dropped: queue full", kind=str(notice.kind))

    # -- the workers -------------------------------------------------------------------------

    async def _work(self, target: _Target) -> None:
        name = target.sender.name
        while True:
            await target.queue.wait()
            delivery = target.queue.pop()
            self._metrics.queued.labels(name).set(len(target.queue))
            if delivery is None:
                continue
            try:
                await self._deliver(target, delivery)
            finally:
                target.queue.done()

    async def _deliver(self, target: _Target, delivery: policy.Delivery) -> None:
        sender, name = target.sender, target.sender.name
        message = render(delivery.notice, self.instance, delivery.suppressed)
        result = SendResult.failed("not attempted")
        for attempt in range(self._backoff.attempts):
            if attempt:
                await self._sleep(self._backoff.delay(attempt - 1))
            try:
                result = await sender.send(message, self.config.timeout_s)
            except Exception as e:  # noqa: BLE001 - a sender's bug is this target's failure
                result = SendResult.failed(f"{type(e).__name__}: {e}")
            self._metrics.seconds.labels(name).observe(result.seconds)
            if result.ok:
                target.sent += 1
                target.last_sent = self._clock.now()
                self._metrics.sent.labels(name, "sent").inc()
                self._target_up(target)
                return
        target.failed += 1
        target.last_error = result.detail
        self._metrics.sent.labels(name, "failed").inc()
        log.warning(
            "notification not delivered",
            target=name,
            kind=str(delivery.notice.kind),
            attempts=self._backoff.attempts,
            error=result.detail,
        )
        self._target_down(target, result.detail)

    def _target_up(self, target: _Target) -> None:
        self._metrics.target_up.labels(target.sender.name).set(1)
        if not target.up:
            target.up = True
            self._event("notify-recovered", f"target {_label(target)} works again", target)

    def _target_down(self, target: _Target, why: str) -> None:
        self._metrics.target_up.labels(target.sender.name).set(0)
        if target.up:
            target.up = False
            self._event("notify-failed", f"target {_label(target)} failed: {why}", target)

    def _event(self, kind: str, message: str, target: _Target) -> None:
        if self._records is None:
            return
        with contextlib.suppress(StorageUnavailableError):
            self._records.record_event(self._clock.now(), kind, message, target=target.sender.name)

    # -- the daily summary -------------------------------------------------------------------

    async def _daily(self) -> None:
        while True:
            now = self._clock.now()
            due = next_summary_at(now, self.config.daily_summary_utc)
            await self._clock.sleep((due - now).total_seconds())
            if self._records is None:
                continue
            try:
                numbers = await self._figures(self._records, due)
            except Exception:  # a summary that cannot be read is skipped, not fatal
                log.exception("daily summary: could not read the records")
                continue
            self.notify(summary_notice(numbers))

    async def _figures(self, records: Records, due: datetime) -> DailyFigures:
        path = getattr(records, "path", None)
        if isinstance(path, Path):  # a day of rows: scanned off the event loop
            return await asyncio.to_thread(figures_from_file, path, due, self.currency)
        return figures(records, due, self.currency)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Per target: name, scheme, up, counts, queue, last error — never a URL."""
        return {
            "targets": [
                {
                    "name": t.sender.name,
                    "scheme": t.sender.scheme,
                    "up": t.up,
                    "sent": t.sent,
                    "failed": t.failed,
                    "queued": len(t.queue),
                    "last_error": t.last_error or None,
                    "last_sent": None if t.last_sent is None else t.last_sent.isoformat(),
                }
                for t in self._targets.values()
            ],
            "daily_summary_utc": self.config.daily_summary_utc or None,
        }


def _severity(delivery: policy.Delivery) -> Severity:
    return delivery.notice.severity


def _sev(notice: Notice) -> Severity:
    return notice.severity


def _label(target: _Target) -> str:
    return f"{target.sender.name} ({target.sender.scheme})"
