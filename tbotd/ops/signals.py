"""Signal handling from the first instruction of every command, before any event loop exists.

A long command (`run`, `demo`, `sim`, `serve`, `train`) spends seconds to minutes importing,
loading models, training or recovering before its own handlers are in place; a SIGTERM there
used to kill it without cleanup (exit 143) and a SIGHUP killed it outright. Here SIGTERM becomes
:class:`Terminated` (unwinding ``finally`` blocks and ending the command with exit 0) and sets
:data:`STOP` for work running in threads (training checks it between epochs); a SIGHUP before the
daemon is ready is remembered (:data:`RELOAD_PENDING`) and applied once it is. The daemon's event
loop installs its own handlers when it starts (graceful stop, live reload).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

STOP = threading.Event()
RELOAD_PENDING = threading.Event()


class Terminated(BaseException):
    """SIGTERM arrived: unwind and exit 0."""


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    STOP.set()
    raise Terminated


def _defer_reload(_signum: int, _frame: FrameType | None) -> None:
    RELOAD_PENDING.set()


Handlers = dict[signal.Signals, Any]


def install_early() -> Handlers:
    """SIGTERM → :class:`Terminated`; SIGHUP → deferred (main thread only); returns the
    handlers it replaced, for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate),
        signal.SIGHUP: signal.signal(signal.SIGHUP, _defer_reload),
    }


def restore(previous: Handlers) -> None:
    """Put back the handlers :func:`install_early` replaced."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def stopped_by_signal(error: BaseException) -> bool:
    """Whether ``error`` is :class:`Terminated` wrapped by the code it interrupted.

    The signal can land anywhere, also inside machinery that re-raises what it caught as
    something else (a class body's ``__set_name__`` turns it into a ``RuntimeError`` while a
    module is still being imported); that is still a requested stop, not a failure.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, Terminated):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def check_stop() -> None:
    """Raise :class:`Terminated` when a stop was requested (for threads doing long work)."""
    if STOP.is_set():
        raise Terminated
