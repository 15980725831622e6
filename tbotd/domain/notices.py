"""What an operator is told: notices with a severity, a kind, one line of text and fields.

Plain frozen data shared by the config (per-target filters name severities and kinds), the pure
notification core (:mod:`tbotd.notify`) and the store (which hands every audit event it records
to its listeners as an :class:`EventRecord`, so a notice never depends on the database being
writable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Severity(StrEnum):
    """How urgently a person should look: info < warning < critical."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0, 1, 2: for comparisons (which notices a filter passes, which a full queue drops)."""
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class NoticeKind(StrEnum):
    """What a notice is about; targets filter on these (``notify.kinds``)."""

    START = "start"  # the daemon starts (and what it missed while down)
    CRASH = "crash"  # it starts again after a run that never stopped cleanly
    READY = "ready"  # recovered, cycling
    STOP = "stop"  # a clean stop, or a stop after a failure
    ENTRY = "entry"  # an entry filled and protected
    STOP_LOSS = "stop_loss"  # a stop-loss closed a position
    TAKE_PROFIT = "take_profit"  # a take-profit closed a position
    LIQUIDATION = "liquidation"  # the exchange liquidated a position
    CLOSE = "close"  # closed by a decision, by hand, or because it could not be protected
    DAILY_SUMMARY = "daily_summary"
    ML_SOURCE = "ml_source"  # the prediction source changed (remote down → local, and back)
    ML_AUTH = "ml_auth"  # the remote ML service refused the token
    MODEL_HEALTH = "model_health"  # a model's health state changed (README: Notifications)
    RECONCILIATION = "reconciliation"  # the venue and the records differed, and how it was fixed
    PROTECTION = "protection"  # a position found unprotected, and protected again
    RISK_GUARD = "risk_guard"  # the risk guard tripped or was reset (README: Protection)
    ALERT = "alert"  # a symbol suspended or refused new entries, and resumed
    STORAGE = "storage"  # the database cannot be written, and can again
    CYCLE = "cycle"  # a cycle failed
    TEST = "test"  # `tbotd notify test`


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An audit event as :meth:`tbotd.store.Store.record_event` was asked to record it."""

    at: datetime
    kind: str
    message: str
    symbol: str | None = None
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(
        cls, at: datetime, kind: str, message: str, symbol: str | None, data: Mapping[str, Any]
    ) -> EventRecord:
        """An event whose data cannot change under its readers."""
        return cls(at, kind, message, symbol, MappingProxyType(dict(data)))


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell the operator.

    ``topic``/``state``: a notice about a state (the ML source, the database, a model's
    health) is sent when the state changes, at most once per cool-down per topic; ``normal``
    says the state is the expected one, so its first sighting after a start says nothing.
    Other notices are de-duplicated by ``key`` (by default kind, symbol and text).
    """

    kind: NoticeKind
    severity: Severity
    text: str
    at: datetime
    symbol: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    topic: str = ""
    state: str = ""
    normal: bool = False
    key: str = ""

    @property
    def identity(self) -> str:
        """What de-duplication compares."""
        return self.key or f"{self.kind}|{self.symbol or ''}|{self.text}"

    def with_fields(self, *extra: tuple[str, str]) -> Notice:
        """The same notice with more fields (an enrichment, e.g. the entry's provenance)."""
        return replace(self, fields=self.fields + tuple(extra))
