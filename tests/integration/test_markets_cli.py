"""`tbotd markets --refresh` asks the exchange through ccxt (here `tbotd sim`) and writes a table
that `tbotd backtest --markets` reads; without --refresh it lists the bundled table."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from tbotd.sim import SimConfig, SimExchange
from tests.conftest import CONFIGS, tbotd_env


def tbotd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tbotd", *args],
        capture_output=True,
        text=True,
        env=tbotd_env(),
        check=False,
        timeout=120,
    )


async def test_refresh_writes_the_venues_rules_and_a_backtest_reads_them(tmp_path: Path) -> None:
    """The sim's ETH rules (tick 0.01, step 0.001, minimum notional 20) come back exactly; the
    bundled table lists BTC's; --refresh without a config (whose exchange?) exits 2."""
    sim = SimExchange(SimConfig(seed=3))
    url = await sim.start("127.0.0.1", 0)
    try:
        config = tmp_path / "m.toml"
        text = (CONFIGS / "demo.toml").read_text()
        config.write_text(text.replace("http://127.0.0.1:8800", url))
        out = tmp_path / "markets.json"
        done = await asyncio.to_thread(
            tbotd, "markets", "--refresh", "--config", str(config), "--out", str(out)
        )
    finally:
        await sim.stop()
    assert done.returncode == 0, done.stderr
    table = json.loads(out.read_text())["markets"]
    eth = table["ETH/USDT:USDT"]
    assert (eth["tick_size"], eth["step_size"]) == ("0.01", "0.001")
    assert float(eth["min_notional"]) == 20
    bundled = tbotd("markets", "--json")
    assert json.loads(bundled.stdout)["markets"]["BTC/USDT:USDT"]["min_notional"] == "100"
    missing = tbotd("markets", "--refresh")
    assert missing.returncode == 2
