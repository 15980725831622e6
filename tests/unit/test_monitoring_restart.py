"""Model metrics across restarts and crashes: bounded start-up, nothing counted twice or lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tbotd.daemon.monitor import ModelMonitor, RuleBook, score_pending
from tbotd.domain.enums import PredictionSource, Signal
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.monitoring.live import FORMAT, decode, encode
from tbotd.monitoring.metrics import Graded, ModelMetrics, Tally, all_models, tally
from tbotd.monitoring.outcomes import LabelOrigin, LabelRule
from tbotd.store import Store

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
BAR = timedelta(minutes=5)
RULES = RuleBook(LabelRule(2, 0.001, LabelOrigin.DEFAULT))
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
N = 1300  # per symbol: more than the largest window (1000), several batches of 500


def _candles(store: Store, symbol: str, start: int, stop: int) -> None:
    """Closes that wander up and down (k * 7 mod 13), so hits, misses and baselines all occur."""
    store.record_candles(
        Candle(symbol, "5m", T0 + k * BAR, *(Decimal(100 + (k * 7) % 13),) * 4, Decimal(1))
        for k in range(start, stop)
    )


def _seed(path: Path, eth_candles: int, sources: tuple[str, str] = ("m1", "m1")) -> Store:
    """BTC and ETH predictions on candles 0..N-1 (interleaved ids), mixed calls and confidence;
    every BTC candle but only ETH's first ``eth_candles`` (the rest arrive late)."""
    store = Store.open(path)
    with store.transaction():
        _candles(store, BTC, 0, N + 2)
        _candles(store, ETH, 0, eth_candles)
        for k in range(N):
            for symbol, model in zip((BTC, ETH), sources, strict=True):
                p = Prediction(
                    symbol=symbol,
                    timestamp=T0 + k * BAR,
                    signal=(Signal.LONG, Signal.SHORT, Signal.NEUTRAL)[k % 3],
                    confidence=0.4 + (k % 11) / 20,
                    sd=0.02,
                    model_version=model,
                    source=PredictionSource.LOCAL_CPU,
                )
                store.record_prediction(p, 1.0, T0 + k * BAR)
    return store


def _passes(path: Path, restart: bool) -> list[ModelMetrics]:
    """Five passes, the late ETH candles arriving before the fourth; with ``restart`` every pass
    is a new daemon (a new store and monitor), else one daemon runs them all."""
    store = _seed(path, eth_candles=600)
    now = T0 + (N + 100) * BAR
    monitor = ModelMonitor(store, "5m", RULES)
    for i in range(5):
        if restart:
            store.close()
            store = Store.open(path)
            monitor = ModelMonitor(store, "5m", RULES)
        if i == 3:
            _candles(store, ETH, 600, N + 2)
        monitor.run(now)
    store.close()
    return monitor.metrics()


def test_metrics_after_restarts_equal_those_of_a_daemon_that_never_restarted(
    tmp_path: Path,
) -> None:
    """Every window and the since-live numbers are the same with or without restarts, and the
    windows equal those computed from the whole history."""
    never = _passes(tmp_path / "a.db", restart=False)
    restarted = _passes(tmp_path / "b.db", restart=True)
    assert restarted == never
    (model,) = never
    assert model.n_scored == 2 * N
    store = Store.open(tmp_path / "a.db")
    (offline,) = all_models(store.graded())
    assert model.windows[:3] == offline.windows[:3]  # 50, 200, 1000: the same newest rows
    assert (model.n_scored, model.live_since) == (offline.n_scored, offline.live_since)
    assert model.windows[3].hit_rate == offline.windows[3].hit_rate
    assert model.windows[2].hit_rate.status == "ok"


def test_a_start_reads_at_most_1000_rows_per_model_however_long_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,600 graded predictions of two models: a new monitor reads 1,000 rows of each and one
    tally row each, never the whole history."""
    path = tmp_path / "t.db"
    store = _seed(path, eth_candles=N + 2, sources=("m1", "m2"))
    score_pending(store, "5m", RULES, T0 + (N + 2) * BAR, max_batches=10)
    assert store.outcome_count() == 2 * N
    read: list[list[Graded]] = []
    recent_graded = store.recent_graded

    def spy(model: str, source: str, limit: int) -> list[Graded]:
        rows = recent_graded(model, source, limit)
        read.append(rows)
        return rows

    monkeypatch.setattr(store, "recent_graded", spy)
    monkeypatch.setattr(store, "graded", lambda: pytest.fail("read the whole history"))
    monitor = ModelMonitor(store, "5m", RULES)
    assert monitor.run(T0 + (N + 2) * BAR) == 0
    assert [len(rows) for rows in read] == [1000, 1000]
    assert {m.model: m.n_scored for m in monitor.metrics()} == {"m1": N, "m2": N}


def test_a_crash_between_batches_never_counts_a_prediction_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second batch's commit fails: its outcomes and its tally are both missing, and the
    restarted daemon ends with the numbers of one that never crashed."""
    store = _seed(tmp_path / "c.db", eth_candles=N + 2)
    now = T0 + (N + 2) * BAR
    set_meta, calls = store.set_meta, []

    def crash_on_second(key: str, value: str) -> None:
        calls.append(key)
        if len(calls) == 2:
            raise OSError("disk gone")
        set_meta(key, value)

    monkeypatch.setattr(store, "set_meta", crash_on_second)
    with pytest.raises(OSError, match="disk gone"):
        ModelMonitor(store, "5m", RULES).run(now)
    monkeypatch.undo()
    assert store.outcome_count() == 500  # the first batch only
    (live,) = store.live_tallies().values()
    scored = store.query("SELECT COUNT(*) AS n FROM outcomes WHERE kind = 'scored'")[0]["n"]
    assert live.tally.n == scored
    monitor = ModelMonitor(store, "5m", RULES)
    while monitor.run(now):
        pass
    store.close()
    clean = _seed(tmp_path / "d.db", eth_candles=N + 2)
    never = ModelMonitor(clean, "5m", RULES)
    while never.run(now):
        pass
    assert monitor.metrics() == never.metrics()
    assert monitor.metrics()[0].n_scored == 2 * N


def test_a_stored_tally_reads_back_exactly_and_another_format_is_refused(
    tmp_path: Path,
) -> None:
    """Floats survive the round trip bit for bit; a tally of another format is an error."""
    store = _seed(tmp_path / "e.db", eth_candles=N + 2)
    t = tally(score_pending(store, "5m", RULES, T0 + (N + 2) * BAR, max_batches=1))
    t = t + Tally(n=0, regimes=(("trending", 3, 2),))
    assert t.n > 0
    assert decode(encode(t)) == t
    with pytest.raises(ValueError, match="format"):
        decode(encode(t).replace(f'"format": {FORMAT}', '"format": 99'))
