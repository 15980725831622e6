"""`tbotd serve` as a user runs it: it says where it listens, answers with auth, logs one line
per request without the token, stops cleanly on SIGTERM, and refuses unsafe or broken setups."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from tbotd.config.settings import MLConfig
from tbotd.domain.market import Candle
from tbotd.predictor import jsonapi
from tbotd.predictor.remote import RemotePredictor
from tests.conftest import RunTbotd, tbotd_env
from tests.integration.conftest import SYMBOLS, TOKEN


async def test_serve_answers_logs_and_stops_on_sigterm(
    models_dir: Path, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """Health without a token, 401 without one elsewhere, a prediction with it; exit 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tbotd",
        "serve",
        "--models",
        str(models_dir),
        "--port",
        "0",
        "--log-format",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=tbotd_env({"BASIS_ML_API_TOKEN": TOKEN}),
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
        assert first["event"] == "serving"
        assert first["auth"] is True
        url = first["url"]
        request = jsonapi.request_for(
            SYMBOLS[0], candle_time, jsonapi.candle_rows(histories[SYMBOLS[0]])
        )
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/v2/health/ready") as r:
                assert r.status == 200
            async with session.post(url + "/v1/predictions", json=request) as r:
                assert r.status == 401
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.post(url + "/v1/predictions", json=request, headers=headers) as r:
                assert r.status == 200
                assert (await r.json())["timestamp"] == candle_time.isoformat().replace(
                    "+00:00", "Z"
                )
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [(r["route"], r["status"]) for r in requests] == [
        ("/v2/health/ready", 200),
        ("/v1/predictions", 401),
        ("/v1/predictions", 200),
    ]
    assert lines[-1]["event"] == "stopping"
    assert TOKEN not in out.decode() + err.decode()


def test_serve_without_a_token_is_bad_input(run_tbotd: RunTbotd, models_dir: Path) -> None:
    """No BASIS_ML_API_TOKEN and no --no-auth: exit 2 saying what to set."""
    done = run_tbotd("serve", "--models", str(models_dir))
    assert done.returncode == 2
    assert "BASIS_ML_API_TOKEN" in done.stderr


def test_no_auth_is_only_for_loopback(run_tbotd: RunTbotd, models_dir: Path) -> None:
    """Serving without a token on a public address is refused."""
    done = run_tbotd("serve", "--models", str(models_dir), "--no-auth", "--host", "0.0.0.0")  # noqa: S104 - refused
    assert done.returncode == 2
    assert "loopback" in done.stderr


def test_serve_refuses_a_missing_model_directory(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """A directory without a manifest is bad input, explained."""
    done = run_tbotd("serve", "--models", str(tmp_path / "none"), env={"BASIS_ML_API_TOKEN": TOKEN})
    assert done.returncode == 2
    assert "tbotd serve:" in done.stderr


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (openssl CLI), its own CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = [
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *("-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        *("-keyout", str(key), "-out", str(cert)),
    ]
    subprocess.run(
        [openssl, *args],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_serve_and_a_client_trusting_its_certificate(
    models_dir: Path,
    tmp_path: Path,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """--tls-cert/--tls-key serve https; the client reaches it with ml.remote_ca_file."""
    cert, key = self_signed(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tbotd", "serve", "--models", str(models_dir), "--port", "0"],
        *["--log-format", "json", "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=tbotd_env({"BASIS_ML_API_TOKEN": TOKEN}),
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
        assert first["url"].startswith("https://127.0.0.1:")
        config = MLConfig(remote_url=first["url"], token=SecretStr(TOKEN), remote_ca_file=cert)
        remote = RemotePredictor(config)
        try:
            loop = asyncio.get_running_loop()
            result = await remote.predict(histories, candle_time, loop.time() + 30)
        finally:
            await remote.close()
        assert set(result.predictions) == set(SYMBOLS)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
