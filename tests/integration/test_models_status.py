"""`tbotd models status`: a model right at first, then random on a rising market, is reported
with the rolling hit rates and baselines an independent count gives, and it turns degraded just
after the switch — once, as a model_state event; `tbotd models report` draws it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tbotd.cli import main
from tbotd.daemon.monitor import ModelMonitor, RuleBook
from tbotd.domain.enums import PredictionSource, Signal
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.monitoring.outcomes import LabelOrigin, LabelRule
from tbotd.store import Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BAR = timedelta(minutes=5)
H = 2
BARS, SWITCH = 1_600, 800
SYMBOL = "BTC/USDT:USDT"
RULES = RuleBook(
    LabelRule(12, 0.001, LabelOrigin.DEFAULT), {"m1": LabelRule(H, 0.001, LabelOrigin.MANIFEST)}
)
NO_TROUBLE = {"drift": [], "failing": {}}


def _market() -> tuple[np.ndarray, np.ndarray]:
    """Closes rising 2 bars in 3 on average, and the calls: right before SWITCH, random after."""
    rng = np.random.default_rng(4)
    steps = np.where(rng.random(BARS + H) < 0.66, 1.0, -1.0)
    close = 1_000 + np.cumsum(steps)
    fwd = close[H:] - close[:-H]
    right = np.where(fwd > 0, 1, -1)
    random = rng.choice([-1, 1], size=BARS)
    calls = np.where(np.arange(BARS) < SWITCH, right[:BARS], random)
    return close, calls


@pytest.fixture(scope="module")
def graded_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """The database after the daemon's monitor graded every bar as it closed."""
    close, calls = _market()
    path = tmp_path_factory.mktemp("models") / "t.db"
    store = Store.open(path)
    store.record_candles(
        Candle(SYMBOL, "5m", T0 + k * BAR, *(Decimal(str(close[k])),) * 4, Decimal(1))
        for k in range(len(close))
    )
    monitor = ModelMonitor(store, "5m", RULES)
    for k in range(BARS):
        signal = Signal.LONG if calls[k] > 0 else Signal.SHORT
        p = Prediction(
            symbol=SYMBOL, timestamp=T0 + k * BAR, signal=signal, confidence=0.6,
            model_version="m1", source=PredictionSource.LOCAL_CPU,
        )  # fmt: skip
        store.record_prediction(p, 1.0, T0 + (k + 1) * BAR)
        monitor.run(T0 + (k + 1) * BAR, NO_TROUBLE)
    monitor.run(T0 + (len(close) + 1) * BAR, NO_TROUBLE)
    store.close()
    return path, close, calls


def _independent(close: np.ndarray, calls: np.ndarray, last: int) -> dict[str, float]:
    """Hit rate and baselines over the newest ``last`` graded calls, counted directly."""
    k = np.arange(H, BARS)[-last:]  # graded bars that have a previous move too
    fwd = close[k + H] - close[k]
    past = close[k] - close[k - H]
    moved = fwd != 0
    hit = (np.sign(fwd) == calls[k])[moved].mean()
    up = (fwd > 0)[moved].mean()
    against = moved & (past != 0)
    contrarian = (np.sign(fwd) != np.sign(past))[against].mean()
    return {"hit_rate": hit, "always_long": up, "contrarian": contrarian}


def test_status_reports_rolling_numbers_equal_to_an_independent_count(
    graded_db: tuple[Path, np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    """The 200-call window's hit rate and both baselines match a direct count of the rows."""
    path, close, calls = graded_db
    assert main(["models", "status", "--db", str(path), "--json"]) == 0
    (model,) = json.loads(capsys.readouterr().out)["models"]
    window = model["rolling"]["200"]
    want = _independent(close, calls, 200)
    assert window["n"] == 200
    for key, value in want.items():
        assert window[key] == pytest.approx(value, abs=1e-12), key
    assert model["state"] == "degraded"
    assert "below the better baseline" in model["reasons"][0]


def test_the_model_turns_degraded_once_just_after_the_switch(
    graded_db: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    """No degraded state while it was right; one degraded event within 250 bars of the switch."""
    path, _, _ = graded_db
    store = Store.open(path)
    try:
        events = store.events("model_state")
    finally:
        store.close()
    degraded = [e for e in events if json.loads(e["data"])["state"] == "degraded"]
    assert len(degraded) == 1
    at = datetime.fromtimestamp(degraded[0]["time"] / 1000, tz=UTC)
    switch = T0 + SWITCH * BAR
    assert switch < at <= switch + 250 * BAR


def test_the_report_draws_each_model(
    graded_db: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """One PNG per graded model."""
    path, _, _ = graded_db
    assert main(["models", "report", "--db", str(path), "--out", str(tmp_path / "r")]) == 0
    (png,) = (tmp_path / "r").glob("*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
