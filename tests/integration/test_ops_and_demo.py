"""The ops endpoint answers health, readiness, metrics and status safely; the demo runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from tbotd.domain.errors import ConfigError
from tbotd.ops.http import OpsServer
from tests.conftest import CONFIGS, RunTbotd

TOKEN = "ops-token-PLANTED-91f0"


async def fake_status() -> dict[str, Any]:
    return {"instance": "t", "positions": []}


def server(token: str | None, ready: bool = True, host: str = "127.0.0.1") -> OpsServer:
    registry = CollectorRegistry()
    Counter("tbotd_cycles_total", "cycles", registry=registry).inc(3)
    return OpsServer(
        host, 0, token, registry, fake_status, lambda: (ready, "ok" if ready else "recovering")
    )


async def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return r.status, await r.text()


async def test_health_is_open_everything_else_needs_the_token() -> None:
    """/healthz answers anyone; /status, /metrics, /readyz want the ops token."""
    ops = server(TOKEN)
    url = await ops.start()
    try:
        assert (await get(url + "/healthz"))[0] == 200
        for path in ("/status", "/metrics", "/readyz"):
            assert (await get(url + path))[0] == 401
            assert (await get(url + path, "wrong-token"))[0] == 401
        status, body = await get(url + "/status", TOKEN)
        assert (status, json.loads(body)["instance"]) == (200, "t")
        status, body = await get(url + "/metrics", TOKEN)
        assert status == 200
        assert "tbotd_cycles_total 3.0" in body
        assert TOKEN not in body
    finally:
        await ops.stop()


async def test_readiness_reports_recovery() -> None:
    """/readyz is 503 until recovery is done and market data is live."""
    ops = server(None, ready=False)
    url = await ops.start()
    try:
        status, body = await get(url + "/readyz")
        assert (status, json.loads(body)["reason"]) == (503, "recovering")
    finally:
        await ops.stop()


def test_without_a_token_only_loopback_is_allowed() -> None:
    """Binding beyond loopback without a token is refused."""
    with pytest.raises(ConfigError, match="not loopback"):
        server(None, host="0.0.0.0")  # noqa: S104 - the point of the test
    assert server(TOKEN, host="0.0.0.0")  # noqa: S104


async def test_tbotd_status_reads_the_endpoint(run_tbotd: RunTbotd) -> None:
    """`tbotd status --url --json` prints the daemon's status document."""
    ops = server(None)
    url = await ops.start()
    try:
        import asyncio

        result = await asyncio.to_thread(run_tbotd, "status", "--url", url, "--json")
    finally:
        await ops.stop()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["instance"] == "t"


@pytest.mark.slow
def test_demo_runs_to_a_summary_and_a_plot(
    run_tbotd: RunTbotd, models_dir: Path, tmp_path: Path
) -> None:
    """`tbotd demo` runs the daemon against the built-in exchange and writes its outputs."""
    config = tmp_path / "demo.toml"
    text = (CONFIGS / "demo.toml").read_text()
    demo_models = 'models_dir = "tbotd-demo/models"'
    config.write_text(text.replace(demo_models, f'models_dir = "{models_dir}"'))
    out = tmp_path / "out"
    result = run_tbotd(
        "demo",
        "--cycles",
        "6",
        "--speed",
        "1500",
        "--config",
        str(config),
        "--out",
        str(out),
        "--json",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["cycles"] == 6
    assert set(summary) >= {"cycles", "predictions_by_source", "trades", "pnl", "fees", "equity"}
    assert sum(summary["predictions_by_source"].values()) == 6
    for name in ("equity.png", "summary.json", "demo.sqlite"):
        assert (out / name).exists(), name


@pytest.mark.slow
def test_demo_runs_an_ml_enhanced_strategy(
    run_tbotd: RunTbotd, models_dir: Path, tmp_path: Path
) -> None:
    """`tbotd demo --config configs/ml_enhanced_mean_reversion.toml` (the local models as its
    ML): the daemon runs the boosted mean reversion and says how ML shaped its decisions."""
    config = tmp_path / "enhanced.toml"
    text = (CONFIGS / "ml_enhanced_mean_reversion.toml").read_text()
    config.write_text(text.replace('models_dir = "models/usdt"', f'models_dir = "{models_dir}"'))
    out = tmp_path / "out"
    result = run_tbotd(
        "demo", "--cycles", "6", "--speed", "1500", "--config", str(config), "--out", str(out),
        "--json", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["strategy"] == "ml_enhanced:boost:mean_reversion"
    assert sum(summary["decisions_by_provenance"].values()) == 6
    assert set(summary["decisions_by_provenance"]) <= {
        "classic_only", "boosted", "reduced", "ml_abstained",
    }  # fmt: skip
    assert summary["predictions_by_source"]
