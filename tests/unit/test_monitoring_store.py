"""Grading stored predictions: once each, across restarts, catching up in bounded batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tbotd.cli import main
from tbotd.daemon.monitor import ModelMonitor, RuleBook, rule_book, score_pending
from tbotd.domain.enums import PredictionSource, Signal
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.monitoring.outcomes import LabelOrigin, LabelRule, OutcomeKind
from tbotd.monitoring.report import models_json
from tbotd.store import Store

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
BAR = timedelta(minutes=5)
SYMBOL = "BTC/USDT:USDT"
RULES = RuleBook(
    LabelRule(12, 0.001, LabelOrigin.DEFAULT), {"m1": LabelRule(2, 0.001, LabelOrigin.MANIFEST)}
)


def _seed(
    store: Store, bars: int, predictions: int, skip: frozenset[int] = frozenset(), start: int = 0
) -> None:
    """Candles start..bars-1 rising by 1 a bar (except ``skip``), a long call on each of
    candles start..predictions-1."""
    store.record_candles(
        Candle(SYMBOL, "5m", T0 + k * BAR, *(Decimal(100 + k),) * 4, Decimal(1))
        for k in range(start, bars)
        if k not in skip
    )
    for k in range(start, predictions):
        p = Prediction(
            symbol=SYMBOL,
            timestamp=T0 + k * BAR,
            signal=Signal.LONG,
            confidence=0.7,
            sd=0.05,
            model_version="m1",
            source=PredictionSource.LOCAL_CPU,
        )
        store.record_prediction(p, 1.0, T0 + k * BAR)


def test_a_prediction_is_scored_exactly_once_across_a_restart(tmp_path: Path) -> None:
    """A pass, a restart, another pass: each due prediction has one outcome, none twice."""
    path = tmp_path / "t.db"
    store = Store.open(path)
    _seed(store, bars=10, predictions=10)
    now = T0 + 10 * BAR
    first = score_pending(store, "5m", RULES, now)
    assert len(first) == 8  # candles 8 and 9 still wait for candle T+2
    store.close()
    store = Store.open(path)
    assert score_pending(store, "5m", RULES, now) == []
    assert store.record_outcomes([g.outcome for g in first], now) == 0
    assert store.outcome_count() == 8
    graded = store.graded()
    assert [g.prediction.id for g in graded] == [g.prediction.id for g in first]
    assert all(g.outcome.hit and g.outcome.rule.origin is LabelOrigin.MANIFEST for g in graded)


def test_catch_up_after_downtime_runs_in_bounded_batches_until_done(tmp_path: Path) -> None:
    """30 due predictions, passes of 2 batches of 4: 8 per pass, all graded after 4 passes."""
    store = Store.open(tmp_path / "t.db")
    _seed(store, bars=32, predictions=30)
    now = T0 + 40 * BAR
    passes = [len(score_pending(store, "5m", RULES, now, batch=4, max_batches=2)) for _ in range(5)]
    assert passes == [8, 8, 8, 6, 0]
    assert store.outcome_count() == 30


def test_a_gap_at_the_horizon_is_recorded_once_and_does_not_block_later_ones(
    tmp_path: Path,
) -> None:
    """Candle 5 missing for good: the prediction on 3 is not gradable, the ones after are."""
    store = Store.open(tmp_path / "t.db")
    _seed(store, bars=10, predictions=6, skip=frozenset({5}))
    graded = score_pending(store, "5m", RULES, T0 + 10 * BAR)
    kinds = {g.prediction.candle_time: g.outcome.kind for g in graded}
    assert kinds[T0 + 3 * BAR] is OutcomeKind.NO_CANDLES
    assert kinds[T0 + 5 * BAR] is OutcomeKind.NO_CANDLES  # its own candle T is missing
    assert kinds[T0 + 4 * BAR] is OutcomeKind.SCORED
    assert len(graded) == 6
    assert score_pending(store, "5m", RULES, T0 + 20 * BAR) == []


def test_a_source_without_a_manifest_is_graded_with_defaults_said_in_the_row(
    tmp_path: Path,
) -> None:
    """No models directory: horizon 12 and the configured round-trip fee, origin "default"."""
    rules = rule_book(None, taker_fee_bps=4.0)
    assert rules.rule_for("remote-v7") == LabelRule(12, 0.0008, LabelOrigin.DEFAULT)
    assert rule_book(tmp_path / "missing", 4.0).rule_for("x").origin is LabelOrigin.DEFAULT
    store = Store.open(tmp_path / "t.db")
    _seed(store, bars=14, predictions=1)
    score_pending(store, "5m", rules, T0 + 14 * BAR)
    row = store.query("SELECT horizon, band, label_origin FROM outcomes")[0]
    assert row == {"horizon": 12, "band": 0.0008, "label_origin": "default"}


def test_the_monitor_keeps_metrics_from_before_a_restart(tmp_path: Path) -> None:
    """A new monitor (a restarted daemon) counts predictions graded by the previous one."""
    path = tmp_path / "t.db"
    store = Store.open(path)
    _seed(store, bars=21, predictions=21)
    assert ModelMonitor(store, "5m", RULES).run(T0 + 21 * BAR) == 19  # 19 and 20 wait for T+2
    store.close()
    store = Store.open(path)
    _seed(store, bars=40, predictions=40, start=21)
    monitor = ModelMonitor(store, "5m", RULES)
    assert monitor.run(T0 + 40 * BAR) == 19  # 19..37; 38 and 39 wait
    (only,) = monitor.metrics()
    assert (only.model, only.source, only.n_scored) == ("m1", "local-cpu", 38)
    live = only.windows[-1]
    assert live.hit_rate.value == 1.0
    assert live.always_long.value == 1.0
    assert only.windows[0].hit_rate.status == "n too small"  # 38 < 50


def test_tbotd_models_prints_the_metrics_offline_as_json_and_as_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tbotd models --db`: 38 graded long calls on a steady rise — hit rate 100 %, always long
    100 %, contrarian 0 % on the same bars; the 50-window says "n too small"."""
    path = tmp_path / "t.db"
    store = Store.open(path)
    _seed(store, bars=40, predictions=40)
    score_pending(store, "5m", RULES, T0 + 40 * BAR)
    store.close()
    assert main(["models", "--db", str(path), "--json"]) == 0
    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert (model["name"], model["source"], model["n_scored"]) == ("m1", "local-cpu", 38)
    live = model["rolling"]["live"]
    assert live["hit_rate"]["value"] == 1.0
    assert live["always_long"]["value"] == 1.0
    assert live["contrarian"] == {"value": 0.0, "se": 0.0, "n": 36, "status": "ok"}
    assert model["rolling"]["50"]["hit_rate"] == {
        "value": None, "se": None, "n": 38, "status": "n too small"
    }  # fmt: skip
    assert main(["models", "--db", str(path)]) == 0
    text = capsys.readouterr().out
    assert "n too small" in text
    assert "100.0% ± 0.0" in text


def test_tbotd_models_without_a_database_is_bad_input(tmp_path: Path) -> None:
    """A path with no database exits 2 instead of creating one."""
    assert main(["models", "--db", str(tmp_path / "none.db")]) == 2
    assert not (tmp_path / "none.db").exists()


def test_after_a_model_swap_the_old_models_pending_predictions_keep_their_rule() -> None:
    """A reload to a new model adds its rule; the old model is still graded as trained."""
    newer = RuleBook(
        LabelRule(12, 0.0008, LabelOrigin.DEFAULT),
        {"m2": LabelRule(6, 0.002, LabelOrigin.MANIFEST)},
    )
    merged = RULES.merged(newer)
    assert merged.rule_for("m1") == LabelRule(2, 0.001, LabelOrigin.MANIFEST)
    assert merged.rule_for("m2").horizon == 6
    assert merged.rule_for("remote-v1") == LabelRule(12, 0.0008, LabelOrigin.DEFAULT)


def test_status_and_tbotd_models_say_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon's in-memory metrics (``/status`` models) equal the offline command's."""
    path = tmp_path / "t.db"
    store = Store.open(path)
    _seed(store, bars=90, predictions=90)
    monitor = ModelMonitor(store, "5m", RULES)
    monitor.run(T0 + 90 * BAR)
    live = models_json(monitor.metrics())
    store.close()
    assert main(["models", "--db", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == live
    assert live[0]["rolling"]["50"]["hit_rate"]["status"] == "ok"
