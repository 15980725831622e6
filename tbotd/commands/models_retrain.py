"""`tbotd models retrain | rollback | recover --config FILE`: the model versions of
``ml.models_dir`` (README: Champion/challenger retraining).

`retrain` runs one champion/challenger round (:mod:`tbotd.ml.retrain`) at low priority
(``os.nice(ml.retrain.nice)``, one torch thread); the daemon starts it as a subprocess with
``--emit-events``, so the events are printed as JSON lines for the daemon to record (its
notifier hears them), else they go straight into the database. `rollback` makes the previous
version live again (a running daemon notices the switch and reloads). `recover` finishes or
undoes a switch a kill interrupted (the daemon and every round do it first anyway).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK

if TYPE_CHECKING:
    from tbotd.config import Settings

Emit = Callable[[str, str, dict[str, Any]], None]


def register_views(views: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add retrain, rollback and recover under `tbotd models`."""
    retrain = views.add_parser("retrain", help="one champion/challenger round, low priority")
    retrain.add_argument("--config", type=Path, required=True, metavar="FILE")
    retrain.add_argument(
        "--emit-events", action="store_true", help="print events as JSON lines (the daemon's)"
    )
    retrain.set_defaults(handler=run_retrain)
    rollback = views.add_parser("rollback", help="make the previous model version live again")
    rollback.add_argument("--config", type=Path, required=True, metavar="FILE")
    rollback.set_defaults(handler=run_rollback)
    recover = views.add_parser("recover", help="finish or undo an interrupted model switch")
    recover.add_argument("--config", type=Path, required=True, metavar="FILE")
    recover.set_defaults(handler=run_recover)


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(args: argparse.Namespace) -> tuple[Settings, Path] | None:
    """The config and its ``ml.models_dir`` (None, said on stderr, when it sets none)."""
    from tbotd.config import load_settings

    settings = load_settings(args.config)
    if settings.ml.models_dir is None:
        print(f"tbotd models {args.view}: {args.config} sets no ml.models_dir", file=sys.stderr)
        return None
    return settings, Path(settings.ml.models_dir)


def _store_emit(settings: Settings) -> tuple[Emit, Callable[[], None]]:
    """Events into the database (the command run by hand)."""
    from tbotd.store import Store

    store = Store.open(Path(settings.store.path), quick_check=False)

    def emit(kind: str, message: str, data: dict[str, Any]) -> None:
        store.record_event(_now(), kind, message, **data)
        print(f"{kind}: {message}")

    return emit, store.close


def _line_emit(kind: str, message: str, data: dict[str, Any]) -> None:
    """Events as JSON lines on stdout (the daemon records them)."""
    print(json.dumps({"kind": kind, "message": message, "data": data}), flush=True)


def run_retrain(args: argparse.Namespace) -> int:
    """One round; exit 0 whether promoted or kept, 2 on bad input, 1 on failure."""
    found = _settings(args)
    if found is None:
        return EXIT_BAD_INPUT
    settings, live = found
    from tbotd.ml.retrain import RetrainJob, run_round

    cfg = settings.ml.retrain
    os.nice(cfg.nice)  # below the daemon: its cycles come first on a shared core
    with contextlib.suppress(OSError):  # short of memory, the kernel takes this, not the daemon
        Path("/proc/self/oom_score_adj").write_text("1000")
    from tbotd.ml.device import set_threads

    set_threads(1)  # one core at most: the daemon keeps the others
    job = RetrainJob(
        live=live,
        db=Path(settings.store.path),
        symbol=cfg.symbol or settings.exchange.symbols[0],
        timeframe=settings.exchange.timeframe,
        cfg=cfg,
    )
    close: Callable[[], None] = lambda: None  # noqa: E731
    emit: Emit = _line_emit
    if not args.emit_events:
        emit, close = _store_emit(settings)
    try:
        run_round(job, emit, _now)
    finally:
        close()
    return EXIT_OK


def run_rollback(args: argparse.Namespace) -> int:
    """Switch back to the previous version and record a ``model-rollback`` event."""
    found = _settings(args)
    if found is None:
        return EXIT_BAD_INPUT
    settings, live = found
    from tbotd.ml import versions

    versions.recover(live)
    before, after = versions.rollback(live)
    emit, close = _store_emit(settings)
    try:
        emit(
            "model-rollback", f"{after} is live again (was {before})", {"from": before, "to": after}
        )
    finally:
        close()
    return EXIT_OK


def run_recover(args: argparse.Namespace) -> int:
    """Finish or undo an interrupted switch; say what was done."""
    found = _settings(args)
    if found is None:
        return EXIT_BAD_INPUT
    _, live = found
    from tbotd.ml import versions

    print(versions.recover(live) or "nothing to recover")
    return EXIT_OK
