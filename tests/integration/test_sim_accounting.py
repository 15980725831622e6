"""PnL, fees, funding and liquidation on the sim match values computed by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tbotd.sim import DEMO_API_KEY
from tests.simkit import CSV_START_MS, client, csv_config, running, wallet, write_candles

BTC = "BTC/USDT:USDT"
BTC_INV = "BTC/USD:BTC"
TAKER = Decimal("0.0005")
RATE = Decimal("0.0001")
HOUR_S = 3600
# One candle at 07:00 (open 40000, dips to 39900, rallies to 41000, closes 40800), then flat.
RALLY = [("40000", "41000", "39900", "40800")]


def q8(value: Decimal) -> Decimal:
    """Money as the venue books it: 8 decimals."""
    return value.quantize(Decimal("0.00000001"))


async def test_linear_pnl_fees_and_funding(tmp_path: Path) -> None:
    """USDⓈ-M: entry, take-profit, a short held through 08:00 funding — all to the cent."""
    csv = write_candles(tmp_path / "c.csv", RALLY)
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        await usdm.create_order(BTC, "market", "buy", 0.1)  # 40000 + 1 bp → 40004.0
        await usdm.create_order(
            BTC, "market", "sell", None, params={"takeProfitPrice": 40900, "closePosition": True}
        )
        await sim.advance(300)  # the rally crosses 40900: sells at 40900 - 1 bp → 40895.9
        await usdm.create_order(BTC, "market", "sell", 0.1)  # 40800 - 1 bp → 40795.9
        await sim.advance(HOUR_S - 300)  # 08:00 funding at mark 40800: the short receives
        qty = Decimal("0.1")
        fees = q8(qty * Decimal("40004.0") * TAKER) + q8(qty * Decimal("40895.9") * TAKER)
        fees += q8(qty * Decimal("40795.9") * TAKER)
        pnl = q8((Decimal("40895.9") - Decimal("40004.0")) * qty)
        funding = q8(RATE * qty * Decimal(40800))
        expected = Decimal(10000) + pnl - fees + funding
        assert wallet(sim, "USDT") == expected == Decimal("10083.51321000")
        balance = await usdm.fetch_balance()
        assert Decimal(balance["info"]["assets"][0]["walletBalance"]) == expected
        trades = await usdm.fetch_my_trades(BTC)
        assert [Decimal(t["info"]["price"]) for t in trades] == [
            Decimal("40004.0"),
            Decimal("40895.9"),
            Decimal("40795.9"),
        ]
        assert sum(Decimal(t["info"]["commission"]) for t in trades) == fees
        assert Decimal(trades[1]["info"]["realizedPnl"]) == pnl
        history = await usdm.fetch_funding_history(BTC)
        assert [Decimal(h["info"]["income"]) for h in history] == [funding]
        assert history[0]["timestamp"] == CSV_START_MS + HOUR_S * 1000


async def test_inverse_pnl_fees_and_funding(tmp_path: Path) -> None:
    """COIN-M: 100-USD contracts, PnL = n·100·(1/entry − 1/exit) and fees in BTC, to 1e-8 BTC."""
    csv = write_candles(tmp_path / "c.csv", RALLY)
    async with running(csv_config(csv)) as sim, client(sim, "binancecoinm") as coinm:
        await coinm.create_order(BTC_INV, "market", "buy", 10)
        await coinm.create_order(
            BTC_INV,
            "market",
            "sell",
            None,
            params={"takeProfitPrice": 40900, "closePosition": True},
        )
        await sim.advance(300)
        await coinm.create_order(BTC_INV, "market", "sell", 10)
        await sim.advance(HOUR_S - 300)
        usd = Decimal(1000)  # 10 contracts × 100 USD
        entry, exit_, short = Decimal("40004.0"), Decimal("40895.9"), Decimal("40795.9")
        fees = q8(usd / entry * TAKER) + q8(usd / exit_ * TAKER) + q8(usd / short * TAKER)
        pnl = q8(usd * (1 / entry - 1 / exit_))
        funding = q8(RATE * usd / Decimal(40800))
        expected = Decimal(1) + pnl - fees + funding
        assert wallet(sim, "BTC") == expected
        assert pnl > 0
        assert (
            Decimal((await coinm.fetch_balance())["info"]["assets"][0]["walletBalance"]) == expected
        )
        state = sim.state(DEMO_API_KEY)
        assert [Decimal(f["amount"]) for f in state["funding"]] == [funding]
        assert [f["fee_asset"] for f in state["fills"]] == ["BTC", "BTC", "BTC"]


async def test_funding_rates_come_from_a_funding_file(tmp_path: Path) -> None:
    """With a funding CSV the settlement at 08:00 uses that file's rate, not the fixed one."""
    csv = write_candles(tmp_path / "c.csv", [])
    rates = tmp_path / "funding.csv"
    rates.write_text(f"timestamp,funding_rate\n{CSV_START_MS + HOUR_S * 1000},0.00075\n")
    async with running(csv_config(csv, funding_data=rates)) as sim, client(sim) as usdm:
        await usdm.create_order(BTC, "market", "buy", 0.1)
        await sim.advance(HOUR_S)
        paid = sim.engine.ledger.funding[0]
        assert paid.rate == Decimal("0.00075")
        assert paid.amount == q8(-Decimal("0.00075") * Decimal("0.1") * 40000)


async def test_isolated_long_is_liquidated_at_its_liquidation_price(tmp_path: Path) -> None:
    """An isolated 10× long is closed where margin + PnL meets maintenance; it loses no more."""
    csv = write_candles(tmp_path / "c.csv", [("40000", "40000", "35000", "35500")])
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        await usdm.set_margin_mode("isolated", BTC)
        await usdm.set_leverage(10, BTC)
        await usdm.create_order(BTC, "market", "buy", 0.1)
        position = (await usdm.fetch_positions([BTC]))[0]
        qty, entry, mmr = Decimal("0.1"), Decimal("40004.0"), Decimal("0.004")
        margin = qty * entry / 10
        liq = (entry * qty - margin) / (qty * (1 - mmr))
        assert Decimal(position["info"]["liquidationPrice"]) == q8(liq)
        await sim.advance(300)
        assert await usdm.fetch_positions([BTC]) == []
        fill = sim.engine.ledger.fills[-1]
        assert fill.liquidation
        assert fill.price == liq
        loss = q8((liq - entry) * qty)
        assert -loss < margin
        open_fee, liq_fee = q8(qty * entry * TAKER), q8(qty * liq * TAKER)
        assert wallet(sim, "USDT") == Decimal(10000) - open_fee + loss - liq_fee
        orders = await usdm.fetch_orders(BTC)
        assert orders[-1]["info"]["origType"] == "LIQUIDATION"


async def test_gap_through_liquidation_costs_at_most_the_margin(tmp_path: Path) -> None:
    """A price gap far past the liquidation price loses the isolated margin, never the wallet."""
    csv = write_candles(
        tmp_path / "c.csv",
        [("40000", "40000", "40000", "40000"), ("30000", "30000", "30000", "30000")],
    )
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        await usdm.set_margin_mode("isolated", BTC)
        await usdm.set_leverage(10, BTC)
        await usdm.create_order(BTC, "market", "buy", 0.1)
        await sim.advance(600)
        qty, entry = Decimal("0.1"), Decimal("40004.0")
        margin = qty * entry / 10
        fill = sim.engine.ledger.fills[-1]
        assert fill.liquidation
        assert fill.price == 30000
        assert fill.realized_pnl == -margin
        expected = Decimal(10000) - q8(qty * entry * TAKER) - margin - q8(qty * 30000 * TAKER)
        assert wallet(sim, "USDT") == expected


async def test_cross_gap_beyond_the_wallet_stops_at_zero(tmp_path: Path) -> None:
    """A cross position gapped past bankruptcy empties the wallet; the rest is insurance's."""
    csv = write_candles(
        tmp_path / "c.csv",
        [("40000", "40000", "40000", "40000"), ("20000", "20000", "20000", "20000")],
    )
    async with running(csv_config(csv)) as sim, client(sim) as usdm:
        await usdm.set_leverage(20, BTC)
        await usdm.create_order(BTC, "market", "buy", 4)
        await sim.advance(600)
        assert wallet(sim, "USDT") == 0
        state = sim.state(DEMO_API_KEY)
        assert Decimal(state["accounts"][0]["balances"]["USDT"]["insurance_absorbed"]) > 0
        assert state["fills"][-1]["liquidation"] is True
