"""`tbotd run` (paper) against `tbotd sim` with a flaky ML server, notifying a local webhook
receiver: exactly the expected messages, no duplicates, a hanging target in the way of nothing,
and a crash-restart said as such."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability.oracle import Oracle, prediction_for
from benchmarks.reliability.webhook import Received, Receiver, receiver
from tests.conftest import CONFIGS
from tests.e2e_support import ORACLE_TOKEN, free_port, sim_process, spawn

pytestmark = pytest.mark.slow
SPEED = "600"  # a 5-minute candle every 0.5 s


def always_long(request: dict[str, Any]) -> dict[str, Any]:
    """A confident long every candle with a small sd: held until its stop or target fires."""
    return prediction_for(request) | {"signal": "long", "confidence": 0.9, "sd": 0.002}


def rows(db: Path, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def kinds(messages: list[Received], kind: str) -> list[Received]:
    return [m for m in messages if m.kind == kind]


def env_for(tmp_path: Path, sim_url: str, ml_url: str, rx: Receiver) -> dict[str, str]:
    urls = " ".join((rx.url("trading", "trading"), rx.url("all", "all"), rx.url("hang", "hang")))
    return {
        "TBOTD_EXCHANGE__BASE_URL": sim_url,
        "TBOTD_DAEMON__TIME_SCALE": SPEED,
        "TBOTD_DAEMON__CANDLE_WAIT_S": "60",
        "TBOTD_STORE__PATH": str(tmp_path / "tbotd.sqlite"),
        "TBOTD_OPS__PORT": str(free_port()),
        "TBOTD_ML__REMOTE_URL": ml_url,
        "TBOTD_ML__REMOTE_CANDLES": "0",
        "TBOTD_ML__REMOTE_BREAKER_COOLDOWN_S": "0.2",
        "BASIS_ML_API_TOKEN": ORACLE_TOKEN,
        "TBOTD_EXECUTION__MODE": "paper",
        "TBOTD_NOTIFY__URLS": urls,
        "TBOTD_NOTIFY__TARGETS": json.dumps(
            {"trading": {"kinds": ["entry", "stop_loss", "ml_source"]}}
        ),
        "TBOTD_NOTIFY__COOLDOWN_S": "60",
        "TBOTD_NOTIFY__MAX_PER_HOUR": "1000",
        "TBOTD_NOTIFY__DAILY_SUMMARY_UTC": "",
        "TBOTD_NOTIFY__STOP_FLUSH_S": "3",
        "TBOTD_NOTIFY__TIMEOUT_S": "30",
    }


async def test_a_paper_run_with_a_flaky_ml_server_sends_exactly_the_expected_messages(
    tmp_path: Path,
) -> None:
    """Entries, a stop hit, ML down and ML back — each once, matching the records; start,
    ready and stop once; a target that hangs all along holds up no cycle and no other target;
    a SIGKILLed run is announced as a crash by the next start."""
    oracle = Oracle(ORACLE_TOKEN)
    oracle.answer = always_long
    config = str(CONFIGS / "ml_usdt_directional.toml")
    async with receiver() as rx, sim_process("--speed", SPEED, "--seed", "3") as (_sim, url):
        rx.modes["hang"] = "hang"
        await oracle.start()
        try:
            env = env_for(tmp_path, url, oracle.url, rx)
            daemon = await spawn("run", "--config", config, env=env)
            await rx.wait_for(lambda r: bool(kinds(r.of("trading"), "stop_loss")), 180)
            await oracle.set_mode("down")
            await rx.wait_for(lambda r: bool(kinds(r.of("trading"), "ml_source")), 60)
            await oracle.set_mode("ok")
            await rx.wait_for(lambda r: len(kinds(r.of("trading"), "ml_source")) == 2, 60)
            assert await daemon.stop() == 0
            cycles = sum(1 for e in daemon.events if e.get("event") == "cycle")
            assert rx.held >= 1, "the hanging target was asked (and never answered)"
            check_messages(rx, Path(env["TBOTD_STORE__PATH"]), cycles)

            second = await spawn("run", "--config", config, env=env)
            await rx.wait_for(lambda r: len(kinds(r.of("all"), "ready")) == 2, 120)
            assert await second.stop(signal.SIGKILL) == -signal.SIGKILL
            third = await spawn("run", "--config", config, env=env)
            await rx.wait_for(lambda r: len(kinds(r.of("all"), "ready")) == 3, 120)
            assert await third.stop() == 0
        finally:
            await oracle.stop()
    everything = rx.of("all")
    lifecycle = [m for m in everything if m.kind in ("start", "crash", "ready", "stop")]
    missed = [m for m in lifecycle if m.text.startswith("cycles missed while down")]
    assert [m.kind for m in lifecycle if m not in missed] == [
        "start", "ready", "stop", "start", "ready", "crash", "ready", "stop",
    ]  # fmt: skip
    assert len(missed) == 2, "each restart says how many cycles it missed"
    [crash] = kinds(everything, "crash")
    assert "never stopped cleanly" in crash.text


def check_messages(rx: Receiver, db: Path, cycles: int) -> None:
    """What the first run's two targets received against what its database recorded."""
    assert cycles >= 3
    trading, everything = rx.of("trading"), rx.of("all")
    assert {m.kind for m in trading} == {"entry", "stop_loss", "ml_source"}
    down, back = kinds(trading, "ml_source")
    assert (down.severity, down.fields["source"], down.fields["previous"]) == (
        "WARNING",
        "neutral",
        "remote",
    )
    assert down.text.startswith("ML degraded: predictions now come from neutral (remote: ")
    assert (back.severity, back.text) == ("INFO", "ML predictions come from remote again")

    entries = rows(db, "SELECT * FROM orders WHERE role = 'entry' AND state = 'filled'")
    trades = rows(db, "SELECT * FROM trades ORDER BY exit_time")
    assert len(kinds(trading, "entry")) == len(entries) >= 1
    stops = [t for t in trades if t["exit_reason"] == "stop_loss"]
    assert [m.fields["exit_price"] for m in kinds(trading, "stop_loss")] == [
        t["exit_price"] for t in stops
    ]
    assert [m.fields["pnl"] for m in kinds(trading, "stop_loss")] == [t["pnl"] for t in stops]
    for message in kinds(trading, "entry"):
        assert message.fields["stop"] < message.fields["price"] < message.fields["target"]
        assert message.fields["prediction"].startswith("long 0.90 from remote")
        assert message.fields["strategy"], "the decision's record names its strategy"

    closes = kinds(everything, "stop_loss") + kinds(everything, "take_profit")
    assert len(closes) == len(trades)
    assert [m.kind for m in everything if m.kind in ("start", "crash", "ready", "stop")] == [
        "start",
        "ready",
        "stop",
    ]
    seen = Counter((m.kind, m.text, m.fields.get("time")) for m in everything)
    assert [k for k, n in seen.items() if n > 1] == [], "no message twice"
    assert {(m.kind, m.text) for m in trading} <= {(m.kind, m.text) for m in everything}
