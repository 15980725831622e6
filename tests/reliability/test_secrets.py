"""Secrets never leak: planted unique secrets are searched for in every output tbotd produces.

A live daemon trades against `tbotd sim` with a planted exchange key and secret, a planted ML
token (the ML service is careless: its errors and one wrong answer quote the Authorization header
back), a planted ops token and planted notification targets (a webhook whose password and path
are secrets, one that refuses with 401, one nobody listens on). Its log, its database (and
WAL), ``/status``, ``/metrics``, ``/readyz``, the web dashboard's page and JSON answers (its
config view included), ``tbotd status``, ``tbotd notify test`` and
``tbotd check-config`` (valid and invalid configs, text and JSON) are then searched byte for
byte for each secret. The files it creates are 0600 even under a permissive umask, and the ops
endpoint is loopback-only without a token.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest

from benchmarks.reliability.oracle import Oracle
from benchmarks.reliability.procs import (
    ROOT,
    DaemonProcess,
    SimProcess,
    child_env,
    free_port,
    wait_for,
    write_daemon_config,
)
from benchmarks.reliability.webhook import receiver
from tbotd.config import OpsConfig
from tbotd.domain.errors import ConfigError
from tbotd.ops.http import OpsServer


def planted(name: str) -> str:
    """A secret no output could contain by chance."""
    return f"PLANTED{name}{uuid.uuid4().hex}"


def tbotd(*args: str, env: dict[str, str]) -> str:
    """Run the CLI; stdout and stderr together."""
    done = subprocess.run(
        [sys.executable, "-m", "tbotd", *args],
        cwd=ROOT,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout + done.stderr


async def fetch(url: str, token: str) -> str:
    """GET with the ops token."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status == 200, url
        return await response.text()


def fills(db: Path) -> int:
    """Fills the daemon has recorded (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.slow
async def test_planted_secrets_appear_in_no_output(tmp_path: Path) -> None:
    """Exchange key and secret, ML token, ops token and notification URLs: in no log line,
    database byte, ops answer or CLI output — while all of them were really used."""
    key, secret = planted("key"), planted("secret")
    ml_token, ops_token = planted("mltoken"), planted("opstoken")
    hook_password, hook_path = planted("hookpw"), planted("hookpath")
    async with receiver() as rx:
        rx.modes[f"refused{hook_path}"] = "refuse"
        urls = (
            f"phone=json://user:{hook_password}@127.0.0.1:{rx.port}/{hook_path}\n"
            f"pager=json://127.0.0.1:{rx.port}/refused{hook_path}\n"
            f"json://127.0.0.1:{free_port()}/nobody{hook_path}"
        )
        env = {
            "TBOTD_EXCHANGE__API_KEY": key,
            "TBOTD_EXCHANGE__API_SECRET": secret,
            "BASIS_ML_API_TOKEN": ml_token,
            "TBOTD_OPS__TOKEN": ops_token,
            "TBOTD_NOTIFY__URLS": urls,
        }
        planted_secrets = (
            ("key", key),
            ("secret", secret),
            ("ML", ml_token),
            ("ops", ops_token),
            ("notification password", hook_password),
            ("notification path", hook_path),
        )
        await _run_and_scan(tmp_path, env, planted_secrets, ops_token, ml_token, key, secret)
        assert rx.of(hook_path), "the webhook with the planted secrets really was used"
        assert rx.attempts.get(f"refused{hook_path}"), "the refusing target was tried"


async def _run_and_scan(
    tmp_path: Path,
    env: dict[str, str],
    planted_secrets: tuple[tuple[str, str], ...],
    ops_token: str,
    ml_token: str,
    key: str,
    secret: str,
) -> None:
    oracle = Oracle(ml_token, echo=True)
    sim = SimProcess(
        tmp_path, speed=300, seed=5, args=("--account", f"{key}:{secret}"), account=key
    )
    data = tmp_path / "data"
    db, port = data / "secrets.sqlite", free_port()
    outputs: dict[str, str | bytes] = {}
    daemon: DaemonProcess | None = None
    try:
        await oracle.start()
        await sim.start()
        config = write_daemon_config(
            tmp_path / "secrets.toml",
            sim_url=sim.url,
            oracle_url=oracle.url,
            db=db,
            ops_port=port,
            speed=300,
            symbols=("BTC/USDT:USDT",),  # one symbol: a quoted token reaches a rejection message
            instance="secrets",
        )
        log = tmp_path / "daemon.log"
        daemon = DaemonProcess(config, env, port, log, ops_token=ops_token, umask=0)
        daemon.start()
        await daemon.wait_ready()

        async def traded() -> bool:
            return fills(db) >= 3

        await wait_for(traded, 60, "the daemon traded")
        for mode in ("unauthorized", "garbage", "error"):  # the ML service misbehaves
            await oracle.set_mode(mode)
            asked = oracle.requests

            async def met(asked: int = asked) -> bool:
                return oracle.requests > asked  # the daemon got this misbehaviour's answer

            await wait_for(met, 60, f"the daemon asked the ML service ({mode})")
        await oracle.set_mode("ok")
        dashboard = ("/", "/api/overview", "/api/config", "/api/events", "/api/trades")
        for path in ("/status", "/metrics", "/readyz", *dashboard):
            outputs[path] = await fetch(daemon.ops_url + path, ops_token)
        symbol = json.loads(outputs["/api/overview"])["symbols"][0]
        chart = f"/api/chart?symbol={symbol}&span=1d"
        outputs[chart] = await fetch(daemon.ops_url + chart, ops_token)
        for suffix in ("-wal", "-shm"):
            copy = tmp_path / f"copy{suffix}"
            shutil.copy(f"{db}{suffix}", copy)
            outputs[f"database{suffix} while running"] = copy.read_bytes()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
        outputs["tbotd status"] = tbotd("status", "--config", str(config), "--json", env=env)
        assert await daemon.terminate() == 0
    finally:
        if daemon is not None:
            await daemon.kill()
        await sim.stop()
        await oracle.stop()
    bad = config.with_name("bad.toml")
    bad.write_text(config.read_text().replace("threshold = 0.6", "threshold = 7"))
    bad_url = env | {"TBOTD_NOTIFY__URLS": env["TBOTD_NOTIFY__URLS"] + " discord://" + key}
    commands = {
        "check-config": (("check-config", str(config)), env),
        "check-config --json": (("check-config", str(config), "--json"), env),
        "check-config (invalid)": (("check-config", str(bad)), env),
        "check-config --json (invalid)": (("check-config", str(bad), "--json"), env),
        "check-config (invalid notify URL)": (("check-config", str(config)), bad_url),
        "notify test": (("notify", "test", "--config", str(config)), env),
        "notify test --json": (("notify", "test", "--json"), env),
    }
    with ThreadPoolExecutor(4) as pool:  # independent processes: at once
        answers = pool.map(lambda c: tbotd(*c[0], env=c[1]), commands.values())
        outputs.update(zip(commands, answers, strict=True))
    outputs["daemon log"] = log.read_text()
    for file in data.iterdir():
        outputs[f"database file {file.name}"] = file.read_bytes()

    assert modes == {
        "secrets.sqlite": 0o600,
        "secrets.sqlite-wal": 0o600,
        "secrets.sqlite-shm": 0o600,
        "secrets.sqlite.lock": 0o600,  # one daemon per database (store/lock.py)
    }
    assert oracle.requests > 0  # every secret was in use
    assert fills(db) >= 3
    assert '"cycle"' in str(outputs["daemon log"])
    assert "remote ML token refused" in str(outputs["daemon log"])
    assert "Bearer ***" in str(outputs["daemon log"])  # the quoted token reached a log line, masked
    assert json.loads(str(outputs["/status"]))["mode"] == "live"
    assert "threshold" in str(outputs["check-config (invalid)"])
    assert "pager (json): error" in str(outputs["notify test"])
    assert "notify.urls" in str(outputs["check-config (invalid notify URL)"])
    for name, value in planted_secrets:
        for where, text in outputs.items():
            haystack = text if isinstance(text, bytes) else text.encode()
            assert value.encode() not in haystack, f"the {name} secret leaked into {where}"


def test_the_ops_endpoint_is_loopback_unless_a_token_guards_it() -> None:
    """Default host 127.0.0.1; a non-loopback host without a token is refused at start."""
    assert OpsConfig().host == "127.0.0.1"
    with pytest.raises(ConfigError, match="TBOTD_OPS__TOKEN"):
        OpsServer("0.0.0.0", 0, None, None, None, None)  # type: ignore[arg-type]  # noqa: S104
    OpsServer("0.0.0.0", 0, "a-token", None, None, None)  # type: ignore[arg-type]  # noqa: S104
