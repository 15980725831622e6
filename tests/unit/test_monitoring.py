"""Grading predictions and the rolling metrics: hand-computed examples, never a fake 0."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tbotd.domain.enums import Regime, Signal
from tbotd.domain.market import Candle
from tbotd.monitoring.metrics import (
    MIN_N,
    TOO_SMALL,
    Graded,
    all_models,
    metrics_of,
    tally,
    window_metrics,
)
from tbotd.monitoring.outcomes import (
    LabelOrigin,
    LabelRule,
    Outcome,
    OutcomeKind,
    StoredPrediction,
    score,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
BAR = timedelta(minutes=5)
RULE = LabelRule(horizon=2, band=0.001, origin=LabelOrigin.MANIFEST)


def _candle(k: int, close: str, high: str | None = None, low: str | None = None) -> Candle:
    c = Decimal(close)
    return Candle(
        "BTC/USDT:USDT", "5m", T0 + k * BAR, c, Decimal(high or close), Decimal(low or close), c,
        Decimal(1),
    )  # fmt: skip


def _prediction(signal: Signal, sd: float | None = None, conf: float = 0.6) -> StoredPrediction:
    return StoredPrediction(1, "BTC/USDT:USDT", T0, signal, conf, sd, None, "m1", "local-cpu")


def _bars(*candles: Candle) -> dict[datetime, Candle]:
    return {c.open_time: c for c in candles}


def test_up_move_beyond_the_fee_band_grades_a_long_call_correct_and_a_hit() -> None:
    """close 100 → 101 over two bars: +1 % is up, the long call hit, inside a 2 % sd."""
    bars = _bars(_candle(-2, "99"), _candle(0, "100"), _candle(1, "100.5"), _candle(2, "101"))
    out = score(_prediction(Signal.LONG, sd=0.02), RULE, bars, BAR)
    assert out.kind is OutcomeKind.SCORED
    assert out.fwd_return is not None
    assert math.isclose(out.fwd_return, 0.01)
    assert out.realised is Signal.LONG
    assert out.correct
    assert out.hit
    assert out.past_return is not None
    assert math.isclose(out.past_return, 100 / 99 - 1)
    assert out.inside_sd
    assert out.stayed_in_sd


def test_a_move_inside_the_band_is_neutral_and_a_neutral_call_is_no_hit_or_miss() -> None:
    """+0.05 % is inside a 0.1 % band: realised neutral; a neutral call is correct, not a hit."""
    bars = _bars(_candle(0, "100"), _candle(1, "100"), _candle(2, "100.05"))
    out = score(_prediction(Signal.NEUTRAL), RULE, bars, BAR)
    assert out.realised is Signal.NEUTRAL
    assert out.correct
    assert out.hit is None
    assert out.inside_sd is None
    assert out.past_return is None


def test_the_path_leaving_the_sd_band_is_recorded_even_when_the_end_is_inside() -> None:
    """A wick to 103 breaks a 2 % band though the close at the horizon is back inside."""
    bars = _bars(_candle(0, "100"), _candle(1, "100", high="103"), _candle(2, "100.5"))
    out = score(_prediction(Signal.SHORT, sd=0.02), RULE, bars, BAR)
    assert out.inside_sd is True
    assert out.stayed_in_sd is False
    assert out.hit is False
    assert out.correct is False


def test_missing_candles_give_a_no_candles_outcome_not_a_guess() -> None:
    """Without candle T+h the prediction is recorded as not gradable."""
    out = score(_prediction(Signal.LONG), RULE, _bars(_candle(0, "100")), BAR)
    assert out.kind is OutcomeKind.NO_CANDLES
    assert out.fwd_return is None
    assert out.hit is None


def _graded(
    i: int,
    signal: Signal,
    fwd: float,
    past: float | None = 0.01,
    conf: float = 0.6,
    regime: Regime | None = None,
    source: str = "local-cpu",
) -> Graded:
    p = StoredPrediction(i, "X", T0 + i * BAR, signal, conf, None, regime, "m1", source)
    hit = None if signal is Signal.NEUTRAL or fwd == 0 else (fwd > 0) == (signal is Signal.LONG)
    realised = (
        Signal.LONG if fwd > RULE.band else Signal.SHORT if fwd < -RULE.band else Signal.NEUTRAL
    )
    o = Outcome(i, OutcomeKind.SCORED, RULE, fwd, realised, realised is signal, hit, past)
    return Graded(p, o)


def test_metrics_say_n_too_small_below_the_window_never_zero() -> None:
    """49 scored predictions: the 50-window has no numbers, each marked "n too small"."""
    rows = [_graded(i, Signal.LONG, 0.01) for i in range(49)]
    w = window_metrics("50", rows, 50)
    assert w.n == 49
    assert not w.full
    for stat in (w.hit_rate, w.always_long, w.contrarian, w.brier, w.ece, w.sd_coverage):
        assert stat.value is None
        assert stat.status == TOO_SMALL


def test_hit_rate_and_baselines_match_a_hand_computed_example_on_the_same_bars() -> None:
    """40 long calls (30 up), 20 short calls (5 down), 10 neutral calls skipped by hit rate."""
    rows = [_graded(i, Signal.LONG, 0.01 if i < 30 else -0.01, past=-0.01) for i in range(40)]
    rows += [_graded(40 + i, Signal.SHORT, -0.01 if i < 5 else 0.01, past=0.01) for i in range(20)]
    rows += [_graded(60 + i, Signal.NEUTRAL, 0.01) for i in range(10)]
    w = window_metrics("50", rows, 50)  # the newest 50: longs 20..39 (10 up), all shorts
    assert w.hit_rate.n == 40
    assert w.hit_rate.value == (10 + 5) / 40
    assert w.hit_rate.se is not None
    assert math.isclose(w.hit_rate.se, math.sqrt(15 / 40 * 25 / 40 / 40))
    assert w.always_long.n == 40
    assert w.always_long.value == (10 + 15) / 40
    # contrarian bets against the past move: up after a fall (longs), down after a rise (shorts)
    assert w.contrarian.n == 40
    assert w.contrarian.value == (10 + 5) / 40


def test_brier_and_ece_match_a_hand_computed_example() -> None:
    """Confidence 0.8 right 24 of 40 times: Brier = mean((0.8 - y)^2), ECE = |0.8 - 0.6|."""
    rows = [_graded(i, Signal.LONG, 0.01 if i < 24 else -0.01, conf=0.8) for i in range(40)]
    w = metrics_of("live", tally(rows))
    expected = (24 * 0.2**2 + 16 * 0.8**2) / 40
    assert w.brier.value is not None
    assert math.isclose(w.brier.value, expected)
    assert w.ece.value is not None
    assert math.isclose(w.ece.value, 0.2)


def test_live_tally_grows_by_addition_exactly_like_a_recount() -> None:
    """Adding batch tallies equals tallying everything at once (incremental since-live)."""
    rows = [_graded(i, Signal.LONG if i % 3 else Signal.SHORT, (-1) ** i * 0.01) for i in range(90)]
    added, recount = tally(rows[:37]) + tally(rows[37:]), tally(rows)
    for name in ("n", "calls", "hits", "ups", "against", "against_hits", "with_sd", "regimes"):
        assert getattr(added, name) == getattr(recount, name)
    assert math.isclose(added.brier_sum, recount.brier_sum)
    assert [b[0] for b in added.bins] == [b[0] for b in recount.bins]


def test_models_are_grouped_by_source_and_the_neutral_fallback_gets_no_metrics() -> None:
    """One model from two sources gives two entries; the neutral fallback none."""
    rows = [_graded(i, Signal.LONG, 0.01, regime=Regime.TREND_UP) for i in range(MIN_N)]
    rows += [_graded(100 + i, Signal.LONG, 0.01, source="remote") for i in range(3)]
    rows += [_graded(200 + i, Signal.NEUTRAL, 0.01, source="neutral") for i in range(3)]
    found = {(m.source, m.n_scored) for m in all_models(rows)}
    assert found == {("local-cpu", MIN_N), ("remote", 3)}
    local = next(m for m in all_models(rows) if m.source == "local-cpu")
    assert local.by_regime[0][0] == "trend_up"
    assert local.by_regime[0][1].value == 1.0
    live = local.windows[-1]
    assert live.window == "live"
    assert live.hit_rate.value == 1.0
