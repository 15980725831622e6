"""`tbotd sim` runs standalone: one JSON ready line, a working venue, a clean exit."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
from pathlib import Path

from tbotd.sim.client import make_ccxt
from tests.conftest import RunTbotd, tbotd_env
from tests.simkit import write_candles


async def test_standalone_sim_serves_ccxt_and_replays_fast(tmp_path: Path) -> None:
    """`tbotd sim --port 0 --speed 300` prints its URL; ccxt trades on it; SIGTERM exits 0."""
    plain = write_candles(tmp_path / "c.csv", [], after=2000)
    csv = tmp_path / "c.csv.gz"
    csv.write_bytes(gzip.compress(plain.read_bytes()))  # the format of the shared real data
    process = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then talks HTTP to it
        [
            sys.executable,
            "-m",
            "tbotd",
            "sim",
            "--port",
            "0",
            "--speed",
            "300",
            "--data",
            str(csv),
            "--start",
            "2024-03-01T07:00:00Z",
            "--admin",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tbotd_env(),
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready["event"] == "sim_ready"
        assert ready["url"].startswith("http://127.0.0.1:")
        assert ready["speed"] == 300
        exchange = make_ccxt("binanceusdm", ready["url"])
        try:
            await exchange.load_markets()
            first = await exchange.fetch_time()
            order = await exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
            assert order["status"] == "closed"
            assert await exchange.fetch_time() > first >= ready["market_time_ms"]
        finally:
            await exchange.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_bad_flags_exit_2(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """Malformed balances, accounts, faults, tick or candle files: exit 2 with a message, no
    traceback."""
    for args in (
        ["--balance", "USDT=lots"],
        ["--account", "no-colon"],
        ["--faults", "5xx=2"],
        ["--tick-s", "0"],
        ["--data", str(tmp_path / "missing.csv")],
    ):
        result = run_tbotd("sim", "--port", "0", *args, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("tbotd sim:")
