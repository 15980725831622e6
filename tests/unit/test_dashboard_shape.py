"""The dashboard's pure shaping: down-sampling keeps extremes, cards never invent numbers,
protection states follow the strict verdict, alerts come first, secrets never leave."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from tbotd.config.scope import MASK, Applies, applies, effective, restart_sections
from tbotd.ops.dashboard import shape
from tests.conftest import CONFIGS, REPO, tbotd_env

NOW = datetime(2026, 1, 2, tzinfo=UTC)
prices = st.floats(min_value=1, max_value=1e6, allow_nan=False)


@given(st.lists(st.tuples(prices, prices), min_size=1, max_size=400), st.integers(1, 50))
def test_downsampled_bars_keep_every_high_and_low(
    pairs: list[tuple[float, float]], width: int
) -> None:
    """However a series is bucketed: one bar per bucket, the same highest high, lowest low,
    first open and last close."""
    bars = [(i * 300, a, max(a, b), min(a, b), b) for i, (a, b) in enumerate(pairs)]
    out = shape.downsample_bars(bars, 0, width * 300)
    assert len(out) == -(-len(bars) // width)
    assert max(b[2] for b in out) == max(b[2] for b in bars)
    assert min(b[3] for b in out) == min(b[3] for b in bars)
    assert (out[0][1], out[-1][4]) == (bars[0][1], bars[-1][4])
    assert [b[0] for b in out] == sorted({b[0] for b in out})


@given(st.lists(prices, min_size=2, max_size=500), st.integers(1, 60))
def test_downsampled_equity_keeps_troughs_and_the_last_point(
    values: list[float], width: int
) -> None:
    """At most three points per bucket; the lowest and the last point are the whole curve's;
    the plotted drawdown is never deeper than the true maximum drawdown."""
    points = [(i, v) for i, v in enumerate(values)]
    out = shape.downsample_line(points, 0, width)
    assert len(out) <= 3 * -(-len(points) // width)
    assert min(v for _, v in out) == min(values)
    assert out[-1] == points[-1]
    assert [t for t, _ in out] == sorted({t for t, _ in out})
    worst = min(d for _, d in shape.drawdown(points))
    assert min(d for _, d in shape.drawdown(out)) >= worst
    assert shape.max_drawdown(points) == worst


def test_drawdown_is_the_distance_below_the_running_peak() -> None:
    """100 → 120 → 90 → 130: 0, 0, -25 %, 0."""
    dd = shape.drawdown([(0, 100.0), (1, 120.0), (2, 90.0), (3, 130.0)])
    assert [round(d, 6) for _, d in dd] == [0.0, 0.0, -25.0, 0.0]


def test_protection_state_follows_the_strict_verdict() -> None:
    """covered when protected; partly when stops cover some; missing when none; unknown unjudged."""
    state = shape.protection_state
    assert state({"protected": True, "covered_qty": "1"}) is shape.ProtectionState.COVERED
    assert state({"protected": False, "covered_qty": "0.5"}) is shape.ProtectionState.PARTLY
    assert state({"protected": False, "covered_qty": "0"}) is shape.ProtectionState.MISSING
    assert state({"protected": None}) is shape.ProtectionState.UNKNOWN
    assert state(None) is shape.ProtectionState.UNKNOWN


def test_ml_card_shows_the_prediction_and_says_what_is_not_measured() -> None:
    """The card carries the recorded direction and confidence; votes, accuracy, calibration and
    drift are "not available" with a reason, never a number."""
    prediction = {
        "candle_time": 1,
        "signal": "long",
        "confidence": 0.73,
        "sd": None,
        "regime": json.dumps({"trend": 0.6, "range": 0.4}),
        "source": "local-cpu",
        "latency_ms": 4.2,
        "model_version": "m1",
    }
    model = shape.ModelInfo("m1", NOW - timedelta(hours=30))
    card = shape.ml_card(prediction, None, model, NOW)
    assert (card["direction"], card["confidence"], card["model_age_h"]) == ("long", 0.73, 30.0)
    assert card["regime"] == {"trend": 0.6, "range": 0.4}
    assert card["sd"]["missing"] == shape.Missing.NOT_REPORTED
    for field in ("votes", "consensus", "rolling_accuracy", "calibration", "drift", "expiry"):
        assert set(card[field]) == {"missing", "why"}, field
    assert card["decision"]["missing"] == shape.Missing.NO_DECISION
    remote = shape.ml_card(prediction | {"model_version": "remote-7"}, None, model, NOW)
    assert remote["model_age_h"]["missing"] == shape.Missing.REMOTE_MODEL


def test_ml_card_says_why_ml_abstained() -> None:
    """When the ML opinion abstained, the card lists its structured reasons."""
    decision = {
        "candle_time": 1,
        "strategy": "mean_reversion+filter",
        "provenance": "ml_abstained",
        "ml": json.dumps({"direction": "abstain", "confidence": 0, "reasons": ["ml_degraded"]}),
        "result": json.dumps({"direction": "flat", "confidence": 0, "reasons": []}),
    }
    card = shape.ml_card(None, decision, None, NOW)
    assert card["prediction"]["missing"] == shape.Missing.NO_PREDICTION
    assert card["abstained_because"] == ["ml_degraded"]
    assert card["decision"]["provenance"] == "ml_abstained"


def test_alerts_come_first_then_newest() -> None:
    """Critical before warning before info before routine events; newest first within each."""
    events = [
        {"time": 1, "severity": None},
        {"time": 2, "severity": "warning"},
        {"time": 3, "severity": "critical"},
        {"time": 4, "severity": "warning"},
        {"time": 5, "severity": None},
    ]
    assert [e["time"] for e in shape.alerts_first(events)] == [3, 4, 2, 5, 1]
    assert shape.severity_of("protect", "unprotected", "BTC", {}, NOW) == "critical"
    assert shape.severity_of("gap", "a gap", "BTC", {}, NOW) is None


def test_effective_config_masks_every_secret_and_labels_reload_scope() -> None:
    """Secrets and URL passwords are masked; strategy keys apply live, exchange keys on restart."""
    from tbotd.config import load_settings

    settings = load_settings(CONFIGS / "ml_usdt_directional.toml", {})
    settings = settings.model_copy(
        update={
            "ops": settings.ops.model_copy(
                update={"token": SecretStr("tok-PLANTED-1-0123456789abcdef")}
            ),
            "ml": settings.ml.model_copy(
                update={"remote_url": "https://bob:pw-PLANTED-2@ml.example/v1"}
            ),
        }
    )
    rows = {r["key"]: r for r in effective(settings)}
    text = json.dumps(list(rows.values()))
    assert "PLANTED" not in text
    assert rows["ops.token"]["value"] == MASK
    assert rows["ml.remote_url"]["value"] == f"https://bob:{MASK}@ml.example/v1"
    assert rows["strategy.threshold"]["applies"] == Applies.LIVE
    assert rows["exchange.symbols"]["applies"] == Applies.RESTART
    assert applies("ml.deadline_s") is Applies.LIVE  # a reload rebuilds the predictor chain
    assert applies("execution.leverage") is Applies.LIVE
    assert applies("execution.margin_mode") is Applies.RESTART
    margin = settings.execution.model_copy(update={"margin_mode": "cross"})
    changed = settings.model_copy(update={"execution": margin})
    assert restart_sections(settings, changed) == ["execution"]


def test_dashboard_shaping_imports_no_io() -> None:
    """The shaping module loads no database, HTTP or config code."""
    code = "import json, sys, tbotd.ops.dashboard.shape\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=tbotd_env(),
        cwd=REPO,
        check=True,
    )
    loaded = set(json.loads(out.stdout))
    forbidden = ("sqlite3", "sqlite_utils", "aiohttp", "asyncio", "tbotd.config", "tbotd.store")
    assert sorted(m for m in loaded if m.split(".")[0] in forbidden or m in forbidden) == []
    assert not any(m.startswith(("tbotd.config", "tbotd.store", "tbotd.daemon")) for m in loaded)
