"""`tbotd run` against `tbotd sim`, as processes: cycles, protected entries, exact accounts,
clean stops, restarts without duplicates."""

from __future__ import annotations

import itertools
import json
import sqlite3
import urllib.request
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tbotd.domain.values import datetime_to_ms
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET
from tests.conftest import CONFIGS
from tests.e2e_support import ORACLE_TOKEN, Process, free_port, oracle, sim_process, spawn

pytestmark = pytest.mark.slow
SPEED = "600"
CYCLES = 20
SETTLE = {
    "ml_usdt_directional.toml": ("BTCUSDT", "USDT", Decimal(10000)),
    "ml_btc_directional.toml": ("BTCUSD_PERP", "BTC", Decimal(1)),
}


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the sim's admin API (loopback, test only)."""
    data = None if body is None else json.dumps(body).encode()
    method = "POST" if data else "GET"
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url + path, data, headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - sim on loopback
        return json.loads(response.read())


def daemon_env(tmp_path: Path, sim_url: str, ml_url: str, mode: str) -> dict[str, str]:
    env = {
        "TBOTD_EXCHANGE__BASE_URL": sim_url,
        "TBOTD_DAEMON__TIME_SCALE": SPEED,
        "TBOTD_DAEMON__CANDLE_WAIT_S": "60",
        "TBOTD_STORE__PATH": str(tmp_path / "tbotd.sqlite"),
        "TBOTD_OPS__PORT": str(free_port()),
        "TBOTD_ML__REMOTE_URL": ml_url,
        "TBOTD_ML__REMOTE_CANDLES": "0",
        "BASIS_ML_API_TOKEN": ORACLE_TOKEN,
        "TBOTD_EXECUTION__MODE": mode,
        "TBOTD_EXECUTION__POSITION_FRACTION": "0.5",
    }
    if mode == "live":
        env |= {
            "TBOTD_EXCHANGE__API_KEY": DEMO_API_KEY,
            "TBOTD_EXCHANGE__API_SECRET": DEMO_API_SECRET,
        }
    return env


def cycles(ev: list[dict[str, Any]]) -> int:
    return sum(1 for e in ev if e.get("event") == "cycle")


def rows(db: Path, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


async def run_until(daemon: Process, n: int) -> None:
    await daemon.wait_for(lambda ev: cycles(ev) >= n, within_s=180)


@pytest.mark.parametrize("mode", ["paper", "live"])
@pytest.mark.parametrize("config", ["ml_usdt_directional.toml", "ml_btc_directional.toml"])
async def test_daemon_cycles_trades_and_recovers(config: str, mode: str, tmp_path: Path) -> None:
    """20+ accelerated cycles: one decision per candle, protected entries, exact accounts."""
    async with oracle() as ml_url, sim_process("--speed", SPEED, "--seed", "3") as (_sim, url):
        env = daemon_env(tmp_path, url, ml_url, mode)
        daemon = await spawn("run", "--config", str(CONFIGS / config), env=env)
        await run_until(daemon, CYCLES)
        admin(url, "/sim/clock", {"running": False})  # freeze the market for the checks
        assert await daemon.stop() == 0
        restarted = await spawn("run", "--config", str(CONFIGS / config), env=env)
        await restarted.wait_for(lambda ev: any(e.get("event") == "ready" for e in ev), 120)
        assert await restarted.stop() == 0
        db = Path(env["TBOTD_STORE__PATH"])
        assert_one_decision_per_candle(db)
        assert_entries_protected(db)
        if mode == "live":
            assert_accounts_agree(db, admin(url, f"/sim/state?account={DEMO_API_KEY}"), config)


def assert_one_decision_per_candle(db: Path) -> None:
    """Every candle from the first decided to the last has exactly one decision, or its miss
    was reported (a cycle that overran the next close on a loaded machine: at the tests'
    600× a candle is 0.5 s of wall time) — never silently skipped, never decided twice, never
    both decided and reported missed."""
    decided = [
        r["candle_time"] for r in rows(db, "SELECT candle_time FROM decisions ORDER BY candle_time")
    ]
    assert len(decided) >= CYCLES
    assert len(decided) == len(set(decided))
    gaps = {t for a, b in itertools.pairwise(decided) for t in range(a + 300_000, b, 300_000)}
    reported = set()
    for r in rows(db, "SELECT message, data FROM events WHERE kind = 'missed-cycles'"):
        since = datetime_to_ms(datetime.fromisoformat(r["message"].split(" since ")[1]))
        reported |= set(range(since, since + json.loads(r["data"])["count"] * 300_000, 300_000))
    assert gaps <= reported, f"undecided and not reported: {sorted(gaps - reported)}"
    assert not reported & set(decided), "a candle both decided and reported missed"


def assert_entries_protected(db: Path) -> None:
    """Each filled entry got a stop-loss and a take-profit accepted by the venue."""
    orders = rows(db, "SELECT * FROM orders ORDER BY created_at, client_id")
    entries = [o for o in orders if o["role"] == "entry" and o["state"] == "filled"]
    assert entries, "the oracle's signals must have produced trades"
    for entry in entries:
        later = [
            o
            for o in orders
            if o["symbol"] == entry["symbol"] and o["created_at"] >= entry["created_at"]
        ]
        roles = {o["role"] for o in later if o["state"] in ("open", "filled", "canceled")}
        assert {"stop_loss", "take_profit"} <= roles, entry["client_id"]


def assert_accounts_agree(db: Path, state: dict[str, Any], config: str) -> None:
    """Positions, fills, fees and the balance in the database equal the sim's, to the unit."""
    symbol_id, asset, initial = SETTLE[config]
    [account] = state["accounts"]
    theirs = {p["symbol"]: Decimal(p["qty"]) for p in account["positions"]}
    ours = {
        r["symbol"]: Decimal(r["qty"]) * (1 if r["side"] == "long" else -1)
        for r in rows(db, "SELECT * FROM positions")
    }
    assert (len(theirs), sorted(theirs.values())) == (len(ours), sorted(ours.values()))
    sim_fills = {str(f["trade_id"]): f for f in state["fills"] if f["symbol"] == symbol_id}
    db_fills = {r["trade_id"]: r for r in rows(db, "SELECT * FROM fills")}
    assert set(db_fills) == set(sim_fills)
    for trade_id, fill in db_fills.items():
        assert Decimal(fill["fee"]) == Decimal(sim_fills[trade_id]["fee"])
        assert Decimal(fill["realized_pnl"]) == Decimal(sim_fills[trade_id]["realized_pnl"])
    sim_funding = sum((Decimal(f["amount"]) for f in state["funding"]), Decimal(0))
    db_funding = sum(
        (Decimal(r["amount"]) for r in rows(db, "SELECT amount FROM funding")), Decimal(0)
    )
    assert db_funding == sim_funding
    booked = (
        initial
        + sum(
            (Decimal(f["realized_pnl"]) - Decimal(f["fee"]) for f in db_fills.values()), Decimal(0)
        )
        + db_funding
    )
    assert booked == Decimal(account["balances"][asset]["wallet"])


def opened(ev: list[dict[str, Any]]) -> bool:
    """A cycle opened a position (its log line says OpenPosition:ok)."""
    return any(
        "OpenPosition:ok" in json.dumps(e.get("actions", {}))
        for e in ev
        if e.get("event") == "cycle"
    )


async def test_sigterm_keeps_protection_and_restart_duplicates_nothing(tmp_path: Path) -> None:
    """SIGTERM mid-run exits 0 leaving stop and target on the venue; a restart after missed
    candles logs them, does not replay them, and sends no order twice."""
    config = str(CONFIGS / "ml_usdt_directional.toml")
    async with oracle() as ml_url, sim_process("--speed", SPEED, "--seed", "3") as (_sim, url):
        env = daemon_env(tmp_path, url, ml_url, "live")
        daemon = await spawn("run", "--config", config, env=env)
        await daemon.wait_for(opened, within_s=180)
        admin(url, "/sim/clock", {"running": False})  # the position cannot close meanwhile
        assert await daemon.stop() == 0
        state = admin(url, f"/sim/state?account={DEMO_API_KEY}")
        assert state["accounts"][0]["positions"], "the position is still open"
        resting = [a for a in state["algo_orders"] if a["status"] == "NEW"]
        assert len(resting) == 2, "stop-loss and take-profit stay on the exchange"
        db = Path(env["TBOTD_STORE__PATH"])
        before = {r["candle_time"] for r in rows(db, "SELECT candle_time FROM decisions")}
        admin(url, "/sim/advance", {"seconds": 900, "step_s": 60})  # three candles go by
        admin(url, "/sim/clock", {"running": True})
        restarted = await spawn("run", "--config", config, env=env)
        await restarted.wait_for(lambda ev: cycles(ev) >= 3, within_s=180)
        admin(url, "/sim/clock", {"running": False})
        assert await restarted.stop() == 0
        missed = rows(db, "SELECT * FROM events WHERE kind = 'missed-cycles'")
        assert missed, "the restart logs the cycles it missed"
        # the restart's report (a cycle that overran a close under load adds its own, later)
        assert any(int(m["message"].split()[0]) >= 3 for m in missed)
        after = sorted(r["candle_time"] for r in rows(db, "SELECT candle_time FROM decisions"))
        last_before = max(before)
        first_after = min(t for t in after if t > last_before)
        assert first_after - last_before >= 4 * 300_000, "missed candles are not replayed"
        state = admin(url, f"/sim/state?account={DEMO_API_KEY}")
        sent = [o["client_id"] for o in state["orders"] if o["algo_id"] is None]
        algos = [a["client_algo_id"] for a in state["algo_orders"]]
        ids = sent + algos  # (a triggered stop's child order carries the stop's id: not sent)
        assert len(ids) == len(set(ids)), "no order was sent twice"
        known = {r["client_id"] for r in rows(db, "SELECT client_id FROM orders")}
        assert set(ids) <= known, "every order on the venue is one the daemon recorded"
