"""Micro-batching: concurrent requests share one forward pass of the models.

Daemons ask at the same moment (every candle close), so ``tbotd serve`` gathers the feature rows
of requests that arrive within ``max_wait_s`` of the first one (or until ``max_rows`` are
waiting), runs the models once on all of them in its inference thread, and hands each request its
own rows back. Requests that arrive while a forward pass is running form the next batch. Because
:func:`tbotd.ml.models.run_models` works in fixed-size blocks, a row's outputs do not depend on
which other rows shared its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from tbotd.ml.outputs import ModelOutputs
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import SERVE_METRICS, ServeMetrics

log = get_logger(__name__)

Forward = Callable[[NDArray[np.float32]], ModelOutputs]


def slice_outputs(out: ModelOutputs, start: int, stop: int) -> ModelOutputs:
    """Rows ``start:stop`` of every output."""
    return ModelOutputs(
        direction=out.direction[start:stop],
        ret_mean=out.ret_mean[start:stop],
        sd=out.sd[start:stop],
        regime=out.regime[start:stop],
    )


class MicroBatcher:
    """Collects feature rows from concurrent callers and runs ``forward`` once per batch."""

    def __init__(
        self,
        forward: Forward,
        *,
        max_wait_s: float = 0.002,
        max_rows: int = 1024,
        metrics: ServeMetrics = SERVE_METRICS,
    ) -> None:
        self._forward = forward
        self.max_wait_s = max_wait_s
        self.max_rows = max_rows
        self._metrics = metrics
        self._queue: list[tuple[NDArray[np.float32], asyncio.Future[ModelOutputs]]] = []
        self._rows = 0
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tbotd-serve-ml")
        self._task: asyncio.Task[None] | None = None
        self._live: list[tuple[NDArray[np.float32], asyncio.Future[ModelOutputs]]] = []
        self.batches = 0

    def start(self) -> None:
        """Start the batching task (call from the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tbotd-serve-batcher")

    async def run(self, features: NDArray[np.float32]) -> ModelOutputs:
        """The model outputs for ``features`` [N, F], computed in a shared batch."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future[ModelOutputs] = asyncio.get_running_loop().create_future()
        self._queue.append((features, future))
        self._rows += len(features)
        self._wake.set()
        if self._rows >= self.max_rows:
            self._full.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            if not self._full.is_set() and self.max_wait_s > 0:
                # the batching window: until it closes or enough rows are waiting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait_s)
            batch, self._queue, self._rows = self._queue, [], 0
            self._wake.clear()
            self._full.clear()
            live = self._live = [(x, f) for x, f in batch if not f.done()]
            if not live:
                continue
            matrix = np.concatenate([x for x, _ in live])
            self.batches += 1
            self._metrics.batch_rows.observe(len(matrix))
            try:
                out = await loop.run_in_executor(self._executor, self._forward, matrix)
            except Exception as e:  # every waiting request gets the failure
                log.exception("model forward pass failed", rows=len(matrix))
                for _, future in live:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for x, future in live:
                if not future.done():
                    future.set_result(slice_outputs(out, start, start + len(x)))
                start += len(x)

    async def close(self) -> None:
        """Stop batching; requests still waiting are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._queue + self._live:
            future.cancel()
        self._executor.shutdown(wait=True)
