"""Which config keys a reload (SIGHUP) applies live and which wait for a restart, and the
effective config as an operator may see it (every secret masked).

One definition: the reload path refuses what :func:`restart_sections` names, and the dashboard
labels each key with :func:`applies`. Only what the daemon rebuilds on reload is live: the
strategy (rebuilt by ``build_strategy``), the risk guard's limits (its state stays) and
logging. Everything else is read once at start —
the predictor chain (``ml``) and the broker (``execution``) are built then — so a change there
needs a restart, and saying otherwise would be a lie.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

from tbotd.config.settings import Settings

LIVE_SECTIONS = ("strategy", "risk", "log")
MASK = "********"


class Applies(StrEnum):
    """When a changed key takes effect."""

    LIVE = "live"  # on reload (SIGHUP), without a restart
    RESTART = "restart"  # only after a restart


def applies(key: str) -> Applies:
    """When a change to ``key`` (dotted, e.g. ``strategy.threshold``) takes effect."""
    return Applies.LIVE if key.split(".", 1)[0] in LIVE_SECTIONS else Applies.RESTART


def restart_sections(old: Settings, new: Settings) -> list[str]:
    """The sections that differ between ``old`` and ``new`` and need a restart."""
    return [
        name
        for name in type(old).model_fields
        if applies(name) is Applies.RESTART and getattr(old, name) != getattr(new, name)
    ]


def changed_keys(old: Settings, new: Settings) -> list[dict[str, Any]]:
    """Every key whose effective value differs: ``{key, old, new, applies}``, secrets masked
    (a reload says what it changed; the dashboard previews an edit with it)."""
    before = {r["key"]: r for r in effective(old)}
    return [
        {
            "key": r["key"],
            "old": before.get(r["key"], {}).get("value"),
            "new": r["value"],
            "applies": r["applies"],
        }
        for r in effective(new)
        if before.get(r["key"], {}).get("value") != r["value"]
    ]


# keys only some enhancement modes read (the editor shows them only there)
ENHANCE_MODES_READING = {
    "strategy.enhance.ml_weight": ("boost", "hybrid"),
    "strategy.enhance.fail_open": ("filter",),
    "strategy.enhance.replace_on": ("replace",),
}


def effective(settings: Settings) -> list[dict[str, Any]]:
    """Every leaf key of the effective config, in order: ``{key, value, secret, applies,
    used}``; secrets (and passwords inside URLs) are masked, never sent; ``used`` is False for
    a key the configured enhancement mode does not read."""
    rows: list[dict[str, Any]] = []
    _walk(settings, "", rows)
    mode = next((r["value"] for r in rows if r["key"] == "strategy.enhance.mode"), None)
    for row in rows:
        modes = ENHANCE_MODES_READING.get(row["key"])
        row["used"] = modes is None or mode in modes
    return rows


def _walk(node: Any, prefix: str, rows: list[dict[str, Any]]) -> None:
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            _walk(getattr(node, name), f"{prefix}{name}.", rows)
        return
    if isinstance(node, dict) and node and all(isinstance(k, str) for k in node):
        for name, value in node.items():
            _walk(value, f"{prefix}{name}.", rows)
        return
    key = prefix.rstrip(".")
    secret = isinstance(node, SecretStr)
    value = (MASK if node is not None else None) if secret else _plain(node)
    rows.append({"key": key, "value": value, "secret": secret, "applies": applies(key).value})


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    text = str(value)
    return _without_password(text) if "://" in text else text


def _without_password(url: str) -> str:
    """A URL with any userinfo password replaced by the mask."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
