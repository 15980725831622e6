"""Model versions side by side, and an atomic, crash-only switch of the live one.

``ml.models_dir`` (``P``) becomes a symlink into ``P.versions/`` (one directory per version,
written completely — manifest last — before anything points at it). A switch writes a journal
(``P.versions/swap.json``: the live and previous versions before and after), re-points
``P.versions/previous`` and then ``P`` with ``os.replace`` of a new symlink. ``os.replace`` is
atomic, so at every instant ``P`` names one complete version: the old or the new, never a mix.
The journal only lets :func:`recover` tidy up after a kill: the switch counts as done exactly
when ``P`` already names the new version (then ``previous`` is completed), else it is undone.

A plain directory (what ``tbotd train --out`` writes) is adopted first: moved into
``P.versions/`` and replaced by a link, journaled the same way (a kill between the move and the
link leaves no ``P`` for a moment; :func:`recover`, run by every worker and at daemon start-up,
puts the link back).

``CHAOS_TBOTD_KILL_AT=<step>`` SIGKILLs the process at that step (the chaos test's hook).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tbotd.domain.errors import TbotdError
from tbotd.ml.manifest import MANIFEST_NAME

KILL_ENV = "CHAOS_TBOTD_KILL_AT"  # not TBOTD_*: those are config keys
JOURNAL = "swap.json"
PREVIOUS = "previous"
ADOPT_STEPS = ("adopt-journal", "adopt-moved", "adopt-linked")
SWAP_STEPS = ("swap-journal", "swap-previous", "swap-live", "swap-done")


class NothingToRollBackError(TbotdError):
    """There is no previous model version: retrain or train one first."""


def kill_point(step: str) -> None:
    """Die here, as a kill -9 would, when the chaos hook names ``step``."""
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Layout:
    """Where the live link, the versions, the previous link and the journal are."""

    live: Path

    @property
    def versions(self) -> Path:
        return self.live.with_name(f"{self.live.name}.versions")

    @property
    def previous(self) -> Path:
        return self.versions / PREVIOUS

    @property
    def journal(self) -> Path:
        return self.versions / JOURNAL

    def version(self, name: str) -> Path:
        return self.versions / name

    def live_name(self) -> str | None:
        """The live version's name (None: ``P`` is a plain directory or missing)."""
        return _link_name(self.live)

    def previous_name(self) -> str | None:
        return _link_name(self.previous)


def _link_name(path: Path) -> str | None:
    return path.readlink().name if path.is_symlink() else None


def fingerprint(live: Path) -> tuple[str, int, int]:
    """What changes when the live model is switched or replaced by hand: the link's target and
    the manifest's inode and modification time (zeros when there is none)."""
    target = str(live.readlink()) if live.is_symlink() else ""
    try:
        st = (live / MANIFEST_NAME).stat()
    except OSError:
        return target, 0, 0
    return target, st.st_ino, st.st_mtime_ns


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _point(at: Path, target: str) -> None:
    """Make ``at`` a symlink to ``target`` in one atomic step (a new link renamed over it)."""
    tmp = at.with_name(f".{at.name}.link-tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(at)
    _fsync_dir(at.parent)


def _write_journal(layout: Layout, entry: dict[str, Any]) -> None:
    tmp = layout.journal.with_name(f".{JOURNAL}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(entry, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(layout.journal)
    _fsync_dir(layout.versions)


def _end_journal(layout: Layout) -> None:
    layout.journal.unlink(missing_ok=True)
    _fsync_dir(layout.versions)


def new_version_dir(live: Path, now: datetime, tag: str) -> Path:
    """A fresh, empty directory for a version (named by UTC time and ``tag``)."""
    layout = Layout(live)
    layout.versions.mkdir(parents=True, exist_ok=True)
    path = layout.version(f"{now:%Y%m%dT%H%M%SZ}-{tag}")
    path.mkdir()
    return path


def adopt(live: Path, name: str) -> None:
    """Turn a plain models directory into version ``name`` behind a link (journaled)."""
    layout = Layout(live)
    if live.is_symlink() or not live.is_dir():
        return
    layout.versions.mkdir(parents=True, exist_ok=True)
    _write_journal(layout, {"op": "adopt", "version": name})
    kill_point("adopt-journal")
    live.rename(layout.version(name))
    _fsync_dir(live.parent)
    kill_point("adopt-moved")
    _point(live, f"{layout.versions.name}/{name}")
    kill_point("adopt-linked")
    _end_journal(layout)


def switch(live: Path, new: str) -> None:
    """Make version ``new`` live and the current live one ``previous`` (journaled, atomic)."""
    layout = Layout(live)
    before = layout.live_name()
    if before is None and not live.exists():  # the first model: nothing to keep or journal
        _point(live, f"{layout.versions.name}/{new}")
        return
    if before is None:
        raise TbotdError(f"{live} is not a versioned models link: run `tbotd models recover`")
    _write_journal(
        layout,
        {
            "op": "switch",
            "live_before": before,
            "live_after": new,
            "previous_before": layout.previous_name(),
            "previous_after": before,
        },
    )
    kill_point("swap-journal")
    _point(layout.previous, before)
    kill_point("swap-previous")
    _point(live, f"{layout.versions.name}/{new}")
    kill_point("swap-live")
    _end_journal(layout)
    kill_point("swap-done")


def rollback(live: Path) -> tuple[str, str]:
    """Make the previous version live again (the current one becomes previous); returns
    (from, to). :class:`NothingToRollBackError` when there is no previous version."""
    layout = Layout(live)
    before, previous = layout.live_name(), layout.previous_name()
    if before is None or previous is None or not layout.version(previous).is_dir():
        raise NothingToRollBackError(
            f"{live} has no previous model version to roll back to: retrain or train one first"
        )
    switch(live, previous)
    return before, previous


def recover(live: Path) -> str | None:
    """Finish or undo a switch a kill interrupted; returns what was done (None: nothing)."""
    layout = Layout(live)
    if not layout.versions.is_dir():
        return None
    for tmp in (live.with_name(f".{live.name}.link-tmp"), layout.versions / ".previous.link-tmp"):
        if tmp.is_symlink():
            tmp.unlink()
    try:
        entry = json.loads(layout.journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:  # a torn journal: written via rename, so never; still, keep what is live
        _end_journal(layout)
        return "discarded an unreadable swap journal"
    done = _recover(layout, entry)
    _end_journal(layout)
    return done


def _recover(layout: Layout, entry: dict[str, Any]) -> str:
    live = layout.live
    if entry.get("op") == "adopt":
        name = str(entry["version"])
        if not live.exists() and not live.is_symlink() and layout.version(name).is_dir():
            _point(live, f"{layout.versions.name}/{name}")
            return f"completed adopting {live} as version {name}"
        return "adoption had finished or not begun"
    if layout.live_name() == entry["live_after"]:
        _point(layout.previous, str(entry["previous_after"]))
        return f"completed the switch to {entry['live_after']}"
    _point(live, f"{layout.versions.name}/{entry['live_before']}")
    if entry.get("previous_before"):
        _point(layout.previous, str(entry["previous_before"]))
    else:
        layout.previous.unlink(missing_ok=True)
    return f"undid the switch; {entry['live_before']} stays live"


def kept(live: Path) -> list[str]:
    """The versions on disk, oldest first (names sort by creation time); none when ``live`` is
    a plain directory."""
    versions = Layout(live).versions
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if p.is_dir() and not p.is_symlink())


def prune(live: Path, keep: int) -> list[str]:
    """Delete the oldest versions beyond ``keep`` (never the live or the previous one)."""
    layout = Layout(live)
    pinned = {layout.live_name(), layout.previous_name()}
    names = [name for name in kept(live) if name not in pinned]
    doomed = names[: max(0, len(names) - max(0, keep - len(pinned - {None})))]
    for name in doomed:
        shutil.rmtree(layout.version(name), ignore_errors=True)
    return doomed
