"""``[ml.retrain]``: champion/challenger retraining of the local models (opt-in; README:
Champion/challenger retraining).

Kept apart from :mod:`tbotd.config.settings`, which only names the table in ``MLConfig``. With
``every_h`` set, the daemon starts ``tbotd models retrain`` in its own low-priority process every
``every_h`` hours (monotonic time): a challenger is trained on the stored candles of ``symbol``
(default: the first configured symbol) except the newest ``holdout_bars``, and replaces the live
model only when its direction log-loss on those held-out bars is lower than the champion's by at
least ``margin`` (nats per bar) over at least ``min_scored`` scored bars.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class RetrainConfig(BaseModel):
    """When to retrain, on what, and how much better a challenger must be to be promoted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every_h: Annotated[float, Field(gt=0, le=24 * 365)] | None = None  # None: never
    holdout_bars: Annotated[int, Field(ge=50, le=1_000_000)] = 2_016  # a week of 5m bars
    margin: Annotated[float, Field(ge=0, le=1)] = 0.002  # log-loss improvement, nats per bar
    min_scored: Annotated[int, Field(ge=1, le=1_000_000)] = 500
    symbol: str = ""  # whose candles train it; "" = exchange.symbols[0]
    max_train_bars: Annotated[int, Field(ge=500)] | None = None  # newest N before the holdout
    epochs: Annotated[int, Field(ge=1, le=1000)] = 10
    folds: Annotated[int, Field(ge=1, le=20)] = 4
    seed: int = 0
    nice: Annotated[int, Field(ge=0, le=19)] = 10  # the worker's niceness increment
    timeout_h: Annotated[float, Field(gt=0, le=72)] = 6.0  # a worker still running is killed
    keep_versions: Annotated[int, Field(ge=2, le=100)] = 5  # model versions kept on disk
