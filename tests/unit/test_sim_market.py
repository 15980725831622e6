"""The sim's market: candle sources, the intra-candle price path and klines."""

from __future__ import annotations

import gzip
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tbotd.domain.errors import InvalidDataError
from tbotd.sim.market import MarketData, Waypoint
from tbotd.sim.sources import CsvSource, GeneratorSource
from tests.simkit import CSV_START_MS, FIVE_MIN_MS, write_candles

ORIGIN_MS = 1_704_067_200_000  # 2024-01-01
D = Decimal


def _market(tmp_path: Path, bars: list[tuple[str, str, str, str]]) -> MarketData:
    return MarketData(CsvSource(write_candles(tmp_path / "c.csv", bars, history=3, after=3)))


def test_path_visits_the_nearer_extreme_first(tmp_path: Path) -> None:
    """Inside a candle the price goes open → nearer extreme → other extreme → close."""
    market = _market(tmp_path, [("100", "130", "95", "120"), ("120", "121", "60", "70")])
    first = market.bar_at(CSV_START_MS)
    assert first is not None
    assert [p.price for p in market.points(first)] == [D(100), D(95), D(130), D(120)]
    second = market.bar_at(CSV_START_MS + FIVE_MIN_MS)
    assert second is not None
    assert [p.price for p in market.points(second)] == [D(120), D(121), D(60), D(70)]


def test_price_moves_linearly_between_waypoints(tmp_path: Path) -> None:
    """Halfway between the open and the first extreme, the price is halfway between them."""
    market = _market(tmp_path, [("100", "130", "94", "120")])
    assert market.price_at(CSV_START_MS) == 100
    assert market.price_at(CSV_START_MS + 50_000) == 97
    assert market.price_at(CSV_START_MS + 100_000) == 94
    assert market.price_at(CSV_START_MS + FIVE_MIN_MS) == 120  # the next (flat) bar opens there


def test_path_jumps_across_gaps_between_candles(tmp_path: Path) -> None:
    """When a candle opens away from the previous close, the path records a jump there."""
    market = _market(tmp_path, [("100", "100", "100", "100"), ("90", "95", "85", "92")])
    path = market.path(CSV_START_MS, CSV_START_MS + 2 * FIVE_MIN_MS)
    assert Waypoint(CSV_START_MS + FIVE_MIN_MS, D(90), jump=True) in path
    assert path[-1].time_ms == CSV_START_MS + 2 * FIVE_MIN_MS


def test_forming_candle_shows_only_what_the_path_has_seen(tmp_path: Path) -> None:
    """A candle a third of the way in has seen the open and the nearer extreme, not the other."""
    market = _market(tmp_path, [("100", "130", "94", "120")])
    kline = market.candle(FIVE_MIN_MS, CSV_START_MS, CSV_START_MS + 100_000)
    assert kline is not None
    assert (kline.open, kline.high, kline.low, kline.close) == (D(100), D(100), D(94), D(94))
    assert not kline.closed
    assert kline.volume == D("6.667")  # a third of the candle's 20


def test_klines_aggregate_and_page(tmp_path: Path) -> None:
    """15-minute candles aggregate three 5-minute ones; start/end/limit select by open time."""
    bars = [("100", "110", "90", "105"), ("105", "120", "100", "101"), ("101", "102", "80", "99")]
    market = _market(tmp_path, bars)
    now = CSV_START_MS + 5 * FIVE_MIN_MS
    fifteen = market.klines(3 * FIVE_MIN_MS, now, start_ms=CSV_START_MS, limit=1)[0]
    assert (fifteen.open, fifteen.high, fifteen.low, fifteen.close) == (
        D(100),
        D(120),
        D(80),
        D(99),
    )
    assert fifteen.volume == 60
    five = market.klines(FIVE_MIN_MS, now, start_ms=CSV_START_MS, end_ms=CSV_START_MS + FIVE_MIN_MS)
    assert [k.open_ms for k in five] == [CSV_START_MS, CSV_START_MS + FIVE_MIN_MS]
    latest = market.klines(FIVE_MIN_MS, now, limit=2)
    assert [k.open_ms for k in latest] == [now - FIVE_MIN_MS, now]
    assert latest[0].closed
    assert not latest[1].closed
    assert market.klines(FIVE_MIN_MS, now, start_ms=now + FIVE_MIN_MS) == []


def test_missing_candles_are_skipped_and_price_holds(tmp_path: Path) -> None:
    """A gap in the CSV yields no candles for it; the price holds the last close until it ends."""
    path = tmp_path / "gap.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        f"{CSV_START_MS - FIVE_MIN_MS},100,100,100,100,1\n"
        f"{CSV_START_MS},100,101,99,100,1\n"
        f"{CSV_START_MS + 3 * FIVE_MIN_MS},110,111,109,110,1\n"
    )
    market = MarketData(CsvSource(path))
    rows = market.klines(FIVE_MIN_MS, CSV_START_MS + 4 * FIVE_MIN_MS, start_ms=CSV_START_MS)
    assert [k.open_ms for k in rows] == [CSV_START_MS, CSV_START_MS + 3 * FIVE_MIN_MS]
    assert market.price_at(CSV_START_MS + 2 * FIVE_MIN_MS) == 100
    path_through = market.path(CSV_START_MS + FIVE_MIN_MS, CSV_START_MS + 3 * FIVE_MIN_MS)
    assert path_through[-1] == Waypoint(CSV_START_MS + 3 * FIVE_MIN_MS, D(110), jump=True)


def test_csv_may_be_gzipped(tmp_path: Path) -> None:
    """The gzipped format of the shared real data loads like a plain CSV."""
    plain = write_candles(tmp_path / "c.csv", [("100", "101", "99", "100")])
    packed = tmp_path / "c.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert np.array_equal(CsvSource(packed).bars.close, CsvSource(plain).bars.close)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("time,open,high,low,close,volume\n1,1,1,1,1,1\n2,1,1,1,1,1\n", "header"),
        (
            "timestamp,open,high,low,close,volume\n300000,10,9,8,10,1\n600000,1,1,1,1,1\n",
            "line 2: high is below open or close",
        ),
        (
            "timestamp,open,high,low,close,volume\n300000,x,1,1,1,1\n600000,1,1,1,1,1\n",
            "line 2: open is not a finite number",
        ),
        (
            "timestamp,open,high,low,close,volume\n600000,1,1,1,1,1\n300000,1,1,1,1,1\n",
            "line 3: timestamp is not after the previous row",
        ),
    ],
)
def test_bad_csv_is_refused_with_a_reason(tmp_path: Path, text: str, problem: str) -> None:
    """A malformed candle file is refused with the same reason `train` and `backtest` give (one
    reader for all three)."""
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InvalidDataError, match=problem):
        CsvSource(path)


def test_generator_is_a_function_of_seed_and_time() -> None:
    """The same seed gives the same bars whatever was asked before; another seed differs."""
    day = 86_400_000
    a = GeneratorSource(3, "BTC", D(42000), D("0.1"), ORIGIN_MS)
    b = GeneratorSource(3, "BTC", D(42000), D("0.1"), ORIGIN_MS)
    later = a.window(ORIGIN_MS + 10 * day, ORIGIN_MS + 10 * day + 3_600_000)
    b.window(ORIGIN_MS + 2 * day, ORIGIN_MS + 3 * day)
    again = b.window(ORIGIN_MS + 10 * day, ORIGIN_MS + 10 * day + 3_600_000)
    assert all(np.array_equal(x, y) for x, y in zip(later.columns(), again.columns(), strict=True))
    other = GeneratorSource(4, "BTC", D(42000), D("0.1"), ORIGIN_MS)
    different = other.window(ORIGIN_MS + 10 * day, ORIGIN_MS + 10 * day + 3_600_000)
    assert not np.array_equal(later.close, different.close)


def test_generated_bars_are_consistent_and_btc_like() -> None:
    """Generated candles bound open/close by high/low and have BTC-like 5-minute volatility."""
    source = GeneratorSource(9, "BTC", D(42000), D("0.1"), ORIGIN_MS)
    bars = source.window(ORIGIN_MS, ORIGIN_MS + 20 * 86_400_000)
    assert np.all(bars.high >= np.maximum(bars.open, bars.close))
    assert np.all(bars.low <= np.minimum(bars.open, bars.close))
    assert np.all(bars.open[1:] == bars.close[:-1])
    closes = bars.close[4::5].astype(float)
    returns = np.diff(np.log(closes))
    assert 0.0008 < float(np.std(returns)) < 0.004
    assert math.isclose(float(closes[0]) / 10, 42000, rel_tol=0.05)
