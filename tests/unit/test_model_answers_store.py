"""Each model's answer is stored per model and source, and `/status` / `tbotd status` show it —
answers, refusals with their reason, and nothing at all for a schema-1 prediction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tbotd.cli import main
from tbotd.daemon.status import recorded
from tbotd.domain.enums import PredictionSource, Signal
from tbotd.domain.prediction import Prediction, parse_prediction
from tbotd.store import Store

T = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SYMBOL = "BTC/USDT:USDT"
MODELS = [
    {"name": "direction", "version": "d7", "probabilities": [0.1, 0.2, 0.7]},
    {
        "name": "volatility",
        "version": "v7",
        "expected_return": 0.0012,
        "sd": 0.004,
        "trained_until": "2024-02-01T00:00:00+00:00",
    },
    {"name": "regime", "version": "r7", "probabilities": [0.2, 0.2, 0.7]},
]


def _prediction(models: list[dict[str, object]] | None, source: str = "remote") -> Prediction:
    body: dict[str, object] = {
        "schema_version": 1 if models is None else 2,
        "symbol": SYMBOL,
        "timestamp": T.isoformat(),
        "signal": "long",
        "confidence": 0.7,
        "model_version": "m7",
        "source": source,
    }
    return parse_prediction(body if models is None else body | {"models": models})


def test_every_answer_and_each_refusal_is_stored_per_model_and_source(tmp_path: Path) -> None:
    """Two good answers come back as given; the bad regime answer is stored as refused."""
    store = Store.open(tmp_path / "t.db")
    store.record_prediction(_prediction(MODELS), 3.0, T)
    answers = {a["model"]: a for a in store.model_answers(SYMBOL, T)}
    assert answers["direction"] == {
        "source": "remote",
        "model": "direction",
        "version": "d7",
        "probabilities": [0.1, 0.2, 0.7],
    }
    assert answers["volatility"]["expected_return"] == 0.0012
    assert answers["volatility"]["trained_until"] == "2024-02-01T00:00:00+00:00"
    assert answers["regime"]["refused"] == "probabilities_not_one"
    assert "version" not in answers["regime"]


def test_a_schema_one_prediction_stores_no_model_answers(tmp_path: Path) -> None:
    """Absent models stay absent: nothing is invented from the combined call."""
    store = Store.open(tmp_path / "t.db")
    store.record_prediction(_prediction(None), 3.0, T)
    assert store.model_answers(SYMBOL, T) == []
    assert recorded(store)["predictions"][SYMBOL]["answers"] == []


def test_tbotd_status_offline_shows_each_models_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tbotd status --db` on a stopped daemon's database lists each model's answer."""
    path = tmp_path / "t.db"
    store = Store.open(path)
    local = Prediction(
        symbol=SYMBOL,
        timestamp=T,
        signal=Signal.LONG,
        confidence=0.7,
        model_version="m7",
        source=PredictionSource.LOCAL_CPU,
        models=_prediction(MODELS[:2]).models,
    )
    store.record_prediction(local, 3.0, T)
    store.close()
    assert main(["status", "--db", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["predictions"][SYMBOL]["answers"]
    assert [(a["source"], a["model"]) for a in shown] == [
        ("local-cpu", "direction"),
        ("local-cpu", "volatility"),
    ]
    monkeypatch.setenv("COLUMNS", "240")  # a table cell per answer, unwrapped
    assert main(["status", "--db", str(path)]) == 0
    table = capsys.readouterr().out
    assert "direction: 0.10/0.20/0.70" in table
    assert "volatility: ret +0.1200% sd 0.4000%" in table
