"""The ``[notify]`` section: where notices go, what each target hears, and how often.

Targets are apprise URLs (``tgram://``, ``discord://``, ``slack://``, ``mailto://``, ``ntfy://``,
``json://`` and ~100 more). They carry tokens, so they are secrets like the exchange keys: only
from ``TBOTD_NOTIFY__URLS`` or the systemd credential ``notify_urls``, never from the file. One
URL per line (or separated by spaces; ``#`` starts a comment line), each optionally named
``name=URL``; an unnamed one is called by its scheme (``tgram``, then ``tgram-2``). The file only
names filters (``[notify.targets.phone]``), so it can be shared without leaking anything.

Every message about a URL names its entry number, its target name and its scheme — never the
URL, whose every part may be a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from tbotd.domain.notices import NoticeKind, Severity

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NAMED = re.compile(r"^([A-Za-z0-9_-]{1,32})=(.+)$")  # a URL has "://" before any "="
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://(.+)$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_SECRET_PART_MIN = 8  # shorter path pieces ("hook", "api") are words, not tokens
_IP = re.compile(r"^[0-9.]+$|^\[?[0-9a-fA-F:]+\]?$")


@dataclass(frozen=True)
class TargetURL:
    """One notification target: its name and scheme (shown) and its URL (secret)."""

    name: str
    scheme: str
    url: str = field(repr=False)
    entry: int = 0

    def __str__(self) -> str:
        return f"{self.name} ({self.scheme})"


def parse_target_urls(text: str) -> list[TargetURL]:
    """The targets in the ``notify.urls`` secret; ValueError names the entry, never its URL."""
    targets: list[TargetURL] = []
    entries = [
        word
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for word in line.split()
    ]
    for number, entry in enumerate(entries, start=1):
        named = _NAMED.match(entry)
        name, url = (named.group(1), named.group(2)) if named else ("", entry)
        scheme = _SCHEME.match(url)
        if scheme is None:
            raise ValueError(
                f"entry {number}{f' ({name})' if name else ''} is not a URL: expected "
                "[name=]scheme://..., e.g. tgram://BOT_TOKEN/CHAT_ID (the value is not shown)"
            )
        kind = scheme.group(1).lower()
        if not name:
            name = _unused(kind, {t.name for t in targets})
        elif name in {t.name for t in targets}:
            raise ValueError(f"entry {number}: the name {name!r} is given to two targets")
        targets.append(TargetURL(name, kind, url, number))
    return targets


def _unused(base: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]", "-", base)[:28]
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def secret_parts(url: str) -> set[str]:
    """The pieces of ``url`` that may be tokens, for the log redactor: the URL itself, its
    password and user, every long path piece, query value and token-like host (a Telegram bot
    token or a Discord webhook id sits where a host would be)."""
    parts = {url}
    match = _SCHEME.match(url)
    rest = match.group(2) if match else url
    netloc, _, tail = rest.partition("/")
    userinfo, _, hostport = netloc.rpartition("@")
    if userinfo:
        user, _, password = userinfo.partition(":")
        parts |= {password, user} if len(user) >= _SECRET_PART_MIN else {password}
    host_token = not ("." in hostport or _IP.match(hostport) or hostport.startswith("localhost"))
    pieces = re.split(r"[:,]", hostport) if host_token else []
    path, _, query = tail.partition("?")
    pieces += re.split(r"[/,:]", path.split("#")[0])
    try:
        pieces += [v for _, v in parse_qsl(urlsplit("x://h/?" + query).query)]
    except ValueError:
        pieces.append(query)
    parts |= {p for p in pieces if len(p) >= _SECRET_PART_MIN}
    return {p for p in parts if p}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetFilter(_Section):
    """What one target hears: notices at or above ``min_severity`` of the listed kinds
    (``kinds`` empty: every kind) except ``exclude_kinds``."""

    min_severity: Severity = Severity.INFO
    kinds: tuple[NoticeKind, ...] = ()
    exclude_kinds: tuple[NoticeKind, ...] = ()


class NotifyConfig(_Section):
    """Notifications (see the module docstring). Without URLs nothing is sent.

    ``min_severity``/``kinds``/``exclude_kinds`` filter the targets without a
    ``[notify.targets.NAME]`` of their own. ``cooldown_s``: a state (the ML source, the
    database, a model's health) is reported at most once per cool-down, the latest state at its
    end. ``dedupe_window_s``: the same message is sent once per window. ``max_per_hour``: per
    target; beyond it, all but critical notices are dropped (and the next message says how
    many). Each send gets ``timeout_s`` and ``retries`` more tries ``retry_backoff_s`` apart
    (jittered, doubling); each target has its own queue of ``queue_size`` messages (a full one
    drops the least severe first). At a stop, queued messages get ``stop_flush_s`` to go out.
    ``daily_summary_utc``: "HH:MM" (UTC) of the daily summary, "" for none.
    """

    urls: SecretStr | None = Field(default=None, description="from TBOTD_NOTIFY__URLS")
    min_severity: Severity = Severity.INFO
    kinds: tuple[NoticeKind, ...] = ()
    exclude_kinds: tuple[NoticeKind, ...] = ()
    targets: dict[str, TargetFilter] = Field(default_factory=dict)
    daily_summary_utc: str = "00:00"
    cooldown_s: Annotated[float, Field(ge=0, le=86_400)] = 600.0
    dedupe_window_s: Annotated[float, Field(ge=0, le=604_800)] = 3600.0
    max_per_hour: Annotated[int, Field(ge=1, le=3600)] = 30
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    retries: Annotated[int, Field(ge=0, le=5)] = 2
    retry_backoff_s: Annotated[float, Field(ge=0, le=300)] = 2.0
    queue_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    stop_flush_s: Annotated[float, Field(ge=0, le=60)] = 5.0

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from tbotd.notify.targets import url_problem

        for target in parse_target_urls(value.get_secret_value()):
            problem = url_problem(target.url)
            if problem:
                raise ValueError(f"entry {target.entry}, target {target}: {problem}")
        return value

    @field_validator("daily_summary_utc")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if value and not _HHMM.match(value):
            raise ValueError('expected "HH:MM" in UTC (e.g. "20:00"), or "" for no summary')
        return value

    @field_validator("targets")
    @classmethod
    def _names(cls, value: dict[str, TargetFilter]) -> dict[str, TargetFilter]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"target name {name!r}: 1-32 letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _filters_name_targets(self) -> NotifyConfig:
        if self.urls is None:
            return self
        names = [t.name for t in parse_target_urls(self.urls.get_secret_value())]
        unknown = sorted(set(self.targets) - set(names))
        if unknown:
            raise ValueError(
                f"notify.targets names {', '.join(unknown)} but notify.urls has no target so "
                f"named (its targets: {', '.join(names) or 'none'}; name one with name=URL)"
            )
        return self

    def target_urls(self) -> list[TargetURL]:
        """The configured targets (none without ``urls``)."""
        return [] if self.urls is None else parse_target_urls(self.urls.get_secret_value())

    def filter_for(self, name: str) -> TargetFilter:
        """The filter of target ``name``: its own, else the section's defaults."""
        own = self.targets.get(name)
        if own is not None:
            return own
        return TargetFilter(
            min_severity=self.min_severity, kinds=self.kinds, exclude_kinds=self.exclude_kinds
        )
