"""Tracked background tasks: every task is named, its exceptions logged, and stopping is orderly.

A fire-and-forget ``asyncio.create_task`` loses its exception (and can be garbage-collected while
running). :class:`TaskSupervisor` keeps a reference to each task, logs any failure with the task's
name, and — for tasks marked critical — records the failure so the daemon can stop and let
systemd restart it (crash-only).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from tbotd.ops.logs import get_logger

log = get_logger(__name__)


class TaskSupervisor:
    """Owns the daemon's background tasks."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failed = asyncio.Event()
        self.failure: BaseException | None = None

    def spawn(
        self, coro: Coroutine[Any, Any, Any], name: str, critical: bool = False
    ) -> asyncio.Task[Any]:
        """Start ``coro`` as a tracked task; a critical task's failure sets :attr:`failed`."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, critical))
        return task

    def _done(self, task: asyncio.Task[Any], critical: bool) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        log.error("background task failed", task=task.get_name(), critical=critical, exc_info=error)
        if critical and self.failure is None:
            self.failure = error
            self.failed.set()

    @property
    def running(self) -> list[str]:
        """Names of the tasks still running."""
        return sorted(t.get_name() for t in self._tasks)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Cancel every task and wait (bounded) for them to finish."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(tasks, timeout=timeout_s)
