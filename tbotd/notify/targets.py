"""The adapter to apprise: one target per URL, sent to off the event loop, errors without secrets.

apprise speaks ~100 services (Telegram, Discord, Slack, e-mail, ntfy, JSON webhooks, …) so tbotd
writes no client of its own. What this module adds:

* apprise logs full URLs (tokens included) at every level; its logger never reaches tbotd's
  output. While a send runs, its WARNING/ERROR lines are captured for that send's thread only
  and become the failure's detail, scrubbed of every secret part of the URL.
* Each send runs in a daemon thread with the configured socket timeouts, awaited with a
  deadline: a hanging service delays nothing but its own target's next message, and a process
  that exits never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from tbotd.config.notify import TargetURL, secret_parts
from tbotd.domain.notices import Severity
from tbotd.ops.logs import REDACTOR, register_secrets

_LOGGER = "apprise"
_DETAIL_MAX = 300


@dataclass(frozen=True, slots=True)
class Message:
    """What is handed to a service: a title, a plain-text body, and its severity."""

    title: str
    body: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class SendResult:
    """One attempt: ok, or why not (already scrubbed of secrets), and how long it took."""

    ok: bool
    detail: str = ""
    seconds: float = 0.0

    @classmethod
    def failed(cls, detail: str, seconds: float = 0.0) -> SendResult:
        """An attempt that did not deliver."""
        return cls(ok=False, detail=detail, seconds=seconds)


class _Capture(logging.Handler):
    """apprise's records, kept per sending thread (each send has its own thread)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            lines = self.lines.get(threading.get_ident())
            if lines is not None:
                lines.append(record.getMessage())

    def start(self) -> None:
        with self._lock:
            self.lines[threading.get_ident()] = []

    def stop(self) -> list[str]:
        with self._lock:
            return self.lines.pop(threading.get_ident(), [])


@cache
def _capture() -> _Capture:
    """Silence apprise's own logging (it quotes URLs) and capture it per thread instead."""
    logger = logging.getLogger(_LOGGER)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    handler = _Capture()
    logger.addHandler(handler)
    return handler


def _apprise() -> Any:
    _capture()
    import apprise

    return apprise


def url_problem(url: str) -> str | None:
    """Why apprise cannot use ``url`` (None: it can). Never quotes the URL."""
    apprise = _apprise()
    capture = _capture()
    capture.start()
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    finally:
        capture.stop()  # apprise's own complaint quotes the URL: not repeated
    if plugin is not None:
        return None
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _schemes(show_disabled=True):
        return f"apprise knows no scheme {scheme!r} (see https://github.com/caronc/apprise/wiki)"
    if scheme not in _schemes(show_disabled=False):
        return f"apprise's {scheme!r} service needs a package or platform this machine lacks"
    return f"a {scheme!r} URL with a missing or malformed part (the URL is not shown)"


@cache
def _schemes(show_disabled: bool) -> frozenset[str]:
    details = _apprise().Apprise().details(show_disabled=show_disabled)
    found: set[str] = set()
    for schema in details["schemas"]:
        for key in ("protocols", "secure_protocols"):
            value = schema.get(key) or []
            found.update([value] if isinstance(value, str) else value)
    return frozenset(s.lower() for s in found)


def register_target_secrets(targets: list[TargetURL]) -> None:
    """Teach the log redactor every piece of every URL that may be a token: what tbotd parses
    itself, and what apprise masks when it prints the URL in privacy mode."""
    apprise = _apprise()
    values: set[str] = set()
    for target in targets:
        values |= secret_parts(target.url)
        plugin = apprise.Apprise.instantiate(target.url, suppress_exceptions=True)
        if plugin is not None:
            values |= _masked_by_apprise(plugin)
    register_secrets(values)


def _masked_by_apprise(plugin: Any) -> set[str]:
    def pieces(url: str) -> set[str]:
        return set(re.split(r"[/:@?&=,#]", url))

    try:
        shown, private = plugin.url(privacy=True), plugin.url(privacy=False)
    except Exception:  # noqa: BLE001 - a plugin that cannot print itself hides nothing
        return set()
    return {p for p in pieces(private) - pieces(shown) if len(p) >= 3}


class AppriseTarget:
    """One configured service. ``send`` is awaited on the event loop; the work is a thread's."""

    def __init__(self, target: TargetURL, timeout_s: float) -> None:
        self.name, self.scheme = target.name, target.scheme
        self._secrets = sorted(secret_parts(target.url), key=len, reverse=True)
        apprise = _apprise()
        plugin = apprise.Apprise.instantiate(target.url, suppress_exceptions=True)
        if plugin is None:  # the config validator said it parses: only a changed apprise
            raise ValueError(f"target {target}: apprise cannot use its URL")
        plugin.socket_connect_timeout = min(timeout_s, 10.0)
        plugin.socket_read_timeout = timeout_s
        self._plugin = plugin
        self._types = {
            Severity.INFO: apprise.NotifyType.INFO,
            Severity.WARNING: apprise.NotifyType.WARNING,
            Severity.CRITICAL: apprise.NotifyType.FAILURE,
        }
        self._text = apprise.NotifyFormat.TEXT
        self._running: asyncio.Future[SendResult] | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.scheme})"

    async def send(self, message: Message, timeout_s: float) -> SendResult:
        """One attempt, within ``timeout_s`` (a send still hanging from before is waited for
        first, within the same time: one thread per target at most)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._running is not None and not self._running.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._running), timeout_s)
            except TimeoutError:
                return SendResult.failed("the previous message is still being sent (hanging)")
        future: asyncio.Future[SendResult] = loop.create_future()
        self._running = future

        def work() -> None:
            result = self._send_now(message)
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result)

        threading.Thread(target=work, name=f"notify-{self.name}", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - loop.time()))
        except TimeoutError:
            return SendResult.failed(f"no answer within {timeout_s:g} s", timeout_s)

    def _send_now(self, message: Message) -> SendResult:
        capture = _capture()
        capture.start()
        started = time.perf_counter()
        try:
            ok = bool(
                self._plugin.notify(
                    body=message.body,
                    title=message.title,
                    notify_type=self._types[message.severity],
                    body_format=self._text,
                )
            )
            error = ""
        except Exception as e:  # noqa: BLE001 - a plugin's bug is this target's failure only
            ok, error = False, f"{type(e).__name__}: {e}"
        finally:
            lines = capture.stop()
        seconds = time.perf_counter() - started
        if ok:
            return SendResult(ok=True, seconds=seconds)
        detail = " ".join([*lines, error]).strip() or "the service refused the message"
        return SendResult.failed(self._scrub(detail), seconds)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = REDACTOR.scrub_text(text)
        return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 3] + "..."


def _settle(future: asyncio.Future[SendResult], result: SendResult) -> None:
    if not future.done():
        future.set_result(result)
