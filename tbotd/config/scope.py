"""Which config keys a reload (SIGHUP) applies live and which wait for a restart, and the
effective config as an operator may see it (every secret masked).

One definition: the reload path (:func:`plan_reload`) refuses what :func:`restart_keys` names,
and the dashboard labels each key with :func:`applies`. A key is live only when the daemon
rebuilds or retunes everything that read it: the strategy (``build_strategy``, which also sizes
with ``execution.position_fraction``, the fees and the leverage), the risk guard's limits (its
state stays), logging, the predictor chain (``ml``: rebuilt whole, the old one closed once no
cycle uses it) and the brokers' leverage and fallback exits. Restart-only, and why:

* ``exchange``, ``store``, ``ops``, ``daemon``, ``notify``, ``instance``: connections, the
  database lock, the listening port, the scheduler and the senders are made once at start.
* ``execution.mode``: paper and live are different brokers.
* ``execution.margin_mode``: the venue refuses to change it while a position is open, so a
  reload could only apply it to some symbols, some of the time; a restart sets it at start-up
  on every flat symbol (and refuses entries, saying why, where it cannot).
* ``ml`` when the daemon was given its predictor (tests): there is no chain to rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

from tbotd.config.settings import Settings

LIVE_SECTIONS = ("strategy", "risk", "log", "ml", "execution")  # each key live unless below
RESTART_KEYS = ("execution.mode", "execution.margin_mode")
MASK = "********"


class Applies(StrEnum):
    """When a changed key takes effect."""

    LIVE = "live"  # on reload (SIGHUP), without a restart
    RESTART = "restart"  # only after a restart


def applies(key: str, *, ml_live: bool = True) -> Applies:
    """When a change to ``key`` (dotted, e.g. ``strategy.threshold``) takes effect; ``ml_live``
    False: the daemon has no predictor chain of its own to rebuild."""
    section = key.split(".", 1)[0]
    if key in RESTART_KEYS or (section == "ml" and not ml_live):
        return Applies.RESTART
    return Applies.LIVE if section in LIVE_SECTIONS else Applies.RESTART


def restart_keys(old: Settings, new: Settings, *, ml_live: bool = True) -> list[str]:
    """The changed keys that need a restart, secrets compared by value (a rotated token is a
    change even though both sides show the mask)."""
    before, after = _raw(old), _raw(new)
    return [
        key
        for key in _union(before, after)
        if before.get(key) != after.get(key) and applies(key, ml_live=ml_live) is Applies.RESTART
    ]


def restart_sections(old: Settings, new: Settings, *, ml_live: bool = True) -> list[str]:
    """The sections holding a changed key that needs a restart, in config order."""
    found = [k.split(".", 1)[0] for k in restart_keys(old, new, ml_live=ml_live)]
    return list(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload from ``old`` to ``new`` must do (pure: the daemon carries it out)."""

    changes: tuple[str, ...]  # each changed key as ``key: old -> new``, secrets masked
    restart: tuple[str, ...]  # changed keys that need a restart: nothing is applied then
    rebuild_ml: bool  # the predictor chain is rebuilt from the new ``ml`` section
    retune_broker: bool  # the broker takes the new leverage / fill costs / fallback exits

    @property
    def applies(self) -> bool:
        """Everything changed can be applied live."""
        return not self.restart


def plan_reload(old: Settings, new: Settings, *, ml_live: bool = True) -> ReloadPlan:
    """All or nothing: the plan applies every change or (``restart`` non-empty) none."""
    changes = tuple(f"{c['key']}: {c['old']} -> {c['new']}" for c in changed_keys(old, new))
    return ReloadPlan(
        changes=changes,
        restart=tuple(restart_keys(old, new, ml_live=ml_live)),
        # ml.retrain is read by the retrain task at each round: no models to reload for it
        rebuild_ml=old.ml.model_copy(update={"retrain": new.ml.retrain}) != new.ml,
        retune_broker=old.execution != new.execution or old.strategy != new.strategy,
    )


def changed_keys(old: Settings, new: Settings) -> list[dict[str, Any]]:
    """Every key whose value differs: ``{key, old, new, applies}``, secrets masked (a reload
    says what it changed; the dashboard previews an edit with it). Secrets are compared by
    value, so a rotated token shows as ``******** -> ********``."""
    before = {r["key"]: r for r in effective(old)}
    raw_before, raw_after = _raw(old), _raw(new)
    return [
        {
            "key": r["key"],
            "old": before.get(r["key"], {}).get("value"),
            "new": r["value"],
            "applies": r["applies"],
        }
        for r in effective(new)
        if raw_before.get(r["key"]) != raw_after.get(r["key"])
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
    def row(key: str, leaf: Any) -> None:
        secret = isinstance(leaf, SecretStr)
        value = (MASK if leaf is not None else None) if secret else _plain(leaf)
        rows.append({"key": key, "value": value, "secret": secret, "applies": applies(key).value})

    _leaves(node, prefix, row)


def _leaves(node: Any, prefix: str, visit: Callable[[str, Any], None]) -> None:
    """Call ``visit(dotted key, raw value)`` for every leaf, in config order."""
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            _leaves(getattr(node, name), f"{prefix}{name}.", visit)
        return
    if isinstance(node, dict) and node and all(isinstance(k, str) for k in node):
        for name, value in node.items():
            _leaves(value, f"{prefix}{name}.", visit)
        return
    visit(prefix.rstrip("."), node)


def _raw(settings: Settings) -> dict[str, Any]:
    """Every leaf's raw value (secrets unmasked: for comparing only, never shown)."""
    found: dict[str, Any] = {}
    _leaves(settings, "", found.__setitem__)
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in found.items()}


def _union(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """The keys of both, in order (a strategy of another kind has other keys)."""
    return list(dict.fromkeys([*first, *second]))


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
