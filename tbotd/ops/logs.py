"""Structured logging with secrets redacted from every line (README: Operations).

JSON lines when stdout is not a terminal (journald and log shippers read them), readable console
output when it is. Everything — tbotd's own structlog events, ccxt/aiohttp stdlib records and
rendered exceptions — passes through :class:`Redactor` last, which replaces every registered secret
value and every field named like a credential with ``***``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

from tbotd.config import Settings, secret_values

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"(?i)(api_?key|secret|token|passw(or)?d|authori[sz]ation|signature|credential|cookie"
    r"|listen_?key|^key$|_key$)"
)
_SECRET_IN_TEXT = re.compile(
    r"(?i)((?:signature|listenkey|token|apikey|api_key|secret|password)=)[^&\s\"']+"
    r"|((?:authorization|x-mbx-apikey)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',}]+"
)
_MIN_SECRET_LEN = 3
QUIET_LOGGERS = ("aiohttp.access", "urllib3")  # urllib3: URLs with tokens


BUDGETED_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.internal")


class LineBudget(logging.Filter):
    """At most ``lines`` records per ``window_s`` from a logger; the rest are dropped and
    counted, and the next window's first record says how many (a flood of bad requests to the
    ops port once wrote 11 MB of log in 10 s)."""

    def __init__(self, lines: int = 10, window_s: float = 60.0) -> None:
        super().__init__()
        self.lines, self.window_s = lines, window_s
        self._start, self._used, self.dropped = 0.0, 0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record while the window's budget lasts."""
        now = record.created
        if now - self._start >= self.window_s:
            if self.dropped:
                record.msg = f"{record.msg} ({self.dropped} similar lines dropped before this)"
            self._start, self._used, self.dropped = now, 0, 0
        self._used += 1
        if self._used > self.lines:
            self.dropped += 1
            return False
        return True


class Redactor:
    """A structlog processor that scrubs secrets from keys, values and nested structures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def register(self, values: Iterable[str]) -> None:
        """Add secret values to scrub (longest first, so a secret containing another goes whole)."""
        with self._lock:
            merged = set(self._secrets) | {v for v in values if len(v) >= _MIN_SECRET_LEN}
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def scrub_text(self, text: str) -> str:
        """``text`` with every registered secret and credential-looking parameter replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _SECRET_IN_TEXT.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)

    def scrub(self, value: Any, key: str = "") -> Any:
        """Recursively scrub ``value``; anything under a credential-named key is replaced whole."""
        if key and _SECRET_KEY.search(key) and value not in (None, "", False):
            return REDACTED
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, MutableMapping):
            return {k: self.scrub(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub_text(str(value))

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        return {k: self.scrub(v, k) for k, v in event_dict.items()}


REDACTOR = Redactor()


def register_secrets(values: Iterable[str]) -> None:
    """Make the log redactor scrub these values from every future line."""
    REDACTOR.register(values)


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``stream`` (stdout by default), redacted."""
    stream = stream or sys.stdout
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            REDACTOR,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for chatty in QUIET_LOGGERS:  # per-job "running"/"executed" lines would drown the cycle line
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    for noisy in BUDGETED_LOGGERS:  # what strangers can make the ops endpoint say
        logger = logging.getLogger(noisy)
        for old_filter in [f for f in logger.filters if isinstance(f, LineBudget)]:
            logger.removeFilter(old_filter)
        logger.addFilter(LineBudget())
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *pre_chain,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger named ``name`` (use the module's ``__name__``)."""
    return structlog.stdlib.get_logger(name)


def configure_for(settings: Settings, stream: TextIO | None = None) -> None:
    """Configure logging from ``settings`` and register all of its secrets for redaction."""
    register_secrets(secret_values(settings))
    configure_logging(settings.log.level, settings.log.format.value, stream)
