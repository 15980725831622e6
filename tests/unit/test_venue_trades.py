"""The account's fills over any span: 7-day windows and 1,000-fill pages, as Binance answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tbotd.domain.enums import MarketType
from tbotd.execution.venue import CcxtVenue

T0 = datetime(2024, 3, 1, tzinfo=UTC)
WEEK_MS = 7 * 86_400_000
T0_MS = int(T0.timestamp() * 1000)


class Account:
    """``fetch_my_trades`` as Binance's userTrades behaves: ≤ 7 days a request, ≤ limit fills."""

    def __init__(self, times_ms: list[int]) -> None:
        self.trades = [
            {
                "id": str(1000 + i),
                "timestamp": t,
                "side": "buy",
                "amount": 0.001,
                "price": 20000.0,
                "fee": {"cost": 0.01, "currency": "USDT"},
                "info": {"orderId": str(7 + i), "qty": "0.001", "price": "20000"},
            }
            for i, t in enumerate(times_ms)
        ]
        self.requests = 0

    async def fetch_my_trades(
        self, symbol: str, since: int, limit: int, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        assert symbol == "BTC/USDT:USDT"
        self.requests += 1
        until = params["until"]
        assert until - since <= WEEK_MS, "Binance refuses more than 7 days (-1127)"
        return [t for t in self.trades if since <= t["timestamp"] <= until][:limit]


async def fills(times_ms: list[int], since: datetime, until: datetime) -> tuple[list[str], int]:
    account = Account(times_ms)
    venue = CcxtVenue(account, MarketType.LINEAR)
    found = await venue.fills_since("BTC/USDT:USDT", since, until)
    return [fill.trade_id for _, fill in found], account.requests


async def test_fills_weeks_apart_are_all_found() -> None:
    """Fills 1, 9 and 20 days after ``since`` come back, oldest first, from 7-day windows."""
    times = [T0_MS + d * 86_400_000 for d in (1, 9, 20)]
    ids, requests = await fills(times, T0, T0 + timedelta(days=21))
    assert ids == ["1000", "1001", "1002"]
    assert requests == 4  # 21 days and two minutes of margin: four windows


async def test_more_fills_than_one_page_are_all_found_once() -> None:
    """2,500 fills in one day (three pages of at most 1,000): each exactly once, in order."""
    times = [T0_MS + 60_000 + i * 30_000 for i in range(2500)]
    ids, _ = await fills(times, T0, T0 + timedelta(days=1))
    assert ids == [str(1000 + i) for i in range(2500)]


async def test_a_trade_id_sorts_as_a_number() -> None:
    """Fills of the same millisecond come back in trade-id order ("999" before "1000")."""
    account = Account([T0_MS + 60_000, T0_MS + 60_000])
    account.trades[0]["id"], account.trades[1]["id"] = "1000", "999"
    venue = CcxtVenue(account, MarketType.LINEAR)
    found = await venue.fills_since("BTC/USDT:USDT", T0, T0 + timedelta(hours=1))
    assert [fill.trade_id for _, fill in found] == ["999", "1000"]
