"""The daemon's side of the model versions: the retrain worker and the models-directory watch.

One tracked background task (:func:`models_forever`). Every ``ml.retrain.every_h`` hours of
monotonic time it starts `tbotd models retrain --emit-events` as its own low-priority process
(``asyncio.create_subprocess_exec``: the loop only reads the worker's event lines and never waits
on its CPU), records each line as an event through the store (the notifier hears them), and
kills a worker past ``ml.retrain.timeout_h`` or when the daemon stops — harmless at any point,
the switch being atomic and journaled. Between closes it compares the models directory's
fingerprint (link target, manifest inode and mtime): a change — a promotion, a rollback, a hand
copy — is loaded like at start-up through the reload's path (:func:`reload_models`), or refused
with a ``models-dir-refused`` event while the running models stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd.daemon.between import margin_for
from tbotd.daemon.reload import reload_models
from tbotd.domain.errors import StorageUnavailableError
from tbotd.ml.versions import fingerprint, recover
from tbotd.ops.logs import get_logger

if TYPE_CHECKING:
    from tbotd.config import Settings
    from tbotd.daemon.app import App
    from tbotd.daemon.lifecycle import Daemon

log = get_logger(__name__)
CHECK_S = 30.0  # how often the models directory is looked at
Fingerprint = tuple[str, int, int]


def recover_models(settings: Settings) -> None:
    """At start-up, before the models load: finish or undo a switch a kill interrupted."""
    if settings.ml.models_dir is None:
        return
    done = recover(Path(settings.ml.models_dir))
    if done is not None:
        log.warning("interrupted model switch recovered", what=done)


def worker_argv(daemon: Daemon) -> list[str]:
    """The worker's command line (the daemon's own interpreter and config file)."""
    return [
        sys.executable,
        "-m",
        "tbotd",
        "models",
        "retrain",
        "--config",
        str(daemon.config_path),
        "--emit-events",
    ]


async def models_forever(
    daemon: Daemon,
    app: App,
    monotonic: Callable[[], float] = time.monotonic,
    check_s: float = CHECK_S,
) -> None:
    """Retrain on schedule and reload on a changed models directory (module docstring)."""
    live = daemon.settings.ml.models_dir
    if live is None:
        return
    seen = fingerprint(Path(live))
    last = monotonic()
    while True:
        await app.clock.sleep(check_s)
        every_h = daemon.settings.ml.retrain.every_h  # a reload may change it
        try:
            if daemon.config_path is not None and retrain_due(every_h, last, monotonic()):
                last = monotonic()
                await run_worker(daemon, app, worker_argv(daemon))
            seen = await check_models_dir(daemon, app, seen)
        except Exception:  # one failed round or check (no fork, a full disk) stops neither
            log.exception("model retrain or models-directory check failed; trying again")


def retrain_due(every_h: float | None, last: float, now: float) -> bool:
    """Whether a round is due (monotonic seconds; ``every_h`` None: retraining is off)."""
    return every_h is not None and now - last >= every_h * 3600


async def check_models_dir(daemon: Daemon, app: App, seen: Fingerprint) -> Fingerprint:
    """Reload (or refuse) the models when the directory's fingerprint moved from ``seen``;
    returns the fingerprint now (a refused directory is retried once it changes again)."""
    live = daemon.settings.ml.models_dir
    if live is None:
        return seen
    now = fingerprint(Path(live))
    if now == seen:
        return seen
    await daemon.between.quiet(app.clock, margin_for(app.settings.exchange.timeframe, timedelta(0)))
    now = fingerprint(Path(live))  # the one about to be loaded
    reload_models(daemon, f"models directory {live} changed")
    return now


async def run_worker(daemon: Daemon, app: App, argv: list[str]) -> int | None:
    """Run one worker to its end, recording its events; its exit code (None: killed here)."""
    timeout_s = daemon.settings.ml.retrain.timeout_h * 3600
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    stdout = proc.stdout
    if stdout is None:  # cannot be: asked for a pipe
        raise RuntimeError("the retrain worker has no stdout pipe")
    try:
        async with asyncio.timeout(timeout_s):
            async for line in stdout:
                _record(app, line)
            code = await proc.wait()
    except TimeoutError:
        log.error(  # noqa: TRY400
            "retrain worker ran past ml.retrain.timeout_h; killed", pid=proc.pid
        )
        _event(app, "retrain-failed", "the worker ran too long and was killed", {"pid": proc.pid})
        return None
    finally:
        if proc.returncode is None:  # cancelled (the daemon stops) or timed out
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
    if code != 0:  # its stderr (the journal) says why; the live model is as it was
        _event(app, "retrain-failed", f"the retrain worker exited with {code}", {"exit": code})
    return code


def _record(app: App, line: bytes) -> None:
    """One event line of the worker (anything else it prints is logged)."""
    try:
        event = json.loads(line)
        kind, message, data = str(event["kind"]), str(event["message"]), dict(event["data"])
    except (ValueError, KeyError, TypeError):
        log.info("retrain worker", line=line.decode(errors="replace").rstrip())
        return
    _event(app, kind, message, data)


def _event(app: App, kind: str, message: str, data: dict[str, Any]) -> None:
    log.info(message, kind=kind)
    with contextlib.suppress(StorageUnavailableError):
        app.store.record_event(app.clock.now(), kind, message, **data)
