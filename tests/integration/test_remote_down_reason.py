"""A remote ML service that refuses every connection until the cycle's deadline is reported as
down ("connect"), never as merely slow ("timeout"), however late the last retry comes."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

import pytest
from prometheus_client import CollectorRegistry

from tbotd.domain.market import Candle
from tbotd.ops.clock import SystemClock
from tbotd.ops.metrics import PredictorMetrics
from tbotd.predictor.errors import RemoteError
from tbotd.predictor.remote import RemotePredictor
from tests.integration.fallback_support import closed_port_url, ml_config


class _Overslept(SystemClock):
    """A loaded machine: every backoff sleeps 1.5 s longer than asked, so a retry the helper
    started with time to spare finds the deadline (1 s away) already gone."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds + 1.5)


class _Longest(random.Random):
    """Every backoff as long as the policy allows (deterministic)."""

    def uniform(self, a: float, b: float) -> float:
        del a  # the lower bound: never chosen
        return b


async def test_refused_until_the_deadline_is_connect_not_timeout(
    histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """Refused, backed off past the deadline, no time left for the retry: the error says
    connect, the reason the operator must act on."""
    config = ml_config(closed_port_url())  # backoff 0.01 s: well inside the deadline
    remote = RemotePredictor(
        config,
        metrics=PredictorMetrics.create(CollectorRegistry()),
        clock=_Overslept(),
        rng=_Longest(),
    )
    deadline = asyncio.get_running_loop().time() + 1.0  # the first attempt surely fits
    try:
        with pytest.raises(RemoteError) as caught:
            await remote.predict(histories, candle_time, deadline)
    finally:
        await remote.close()
    assert caught.value.reason == "connect"
    assert remote.cut_short is caught.value
