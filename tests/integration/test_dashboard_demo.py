"""`tbotd demo` prints the dashboard's address while it runs, and `--keep-open` keeps the
dashboard up after the last cycle until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import CONFIGS, REPO, tbotd_env

pytestmark = pytest.mark.slow
URL = re.compile(r"dashboard: (http://127\.0\.0\.1:\d+)/")


async def next_line(stream: asyncio.StreamReader, pattern: str) -> str:
    """The next line containing ``pattern`` (the process logs other lines between)."""
    while True:
        raw = await asyncio.wait_for(stream.readline(), 240)
        if not raw:
            raise AssertionError(f"the demo ended before printing {pattern!r}")
        line = raw.decode(errors="replace")
        if pattern in line:
            return line


async def get_json(url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200, url
        return dict(await r.json())


async def test_demo_prints_the_dashboard_and_keeps_it_open(
    models_dir: Path, tmp_path: Path
) -> None:
    """The printed URL serves the page while cycles run; after the last one, the same URL
    shows the stopped demo from its database; SIGINT ends it with exit 0."""
    config = tmp_path / "demo.toml"
    text = (CONFIGS / "demo.toml").read_text()
    config.write_text(re.sub(r"(?m)^models_dir = .*$", f'models_dir = "{models_dir}"', text))
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tbotd",
        "demo",
        "--cycles",
        "4",
        "--speed",
        "1500",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "out"),
        "--keep-open",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=tbotd_env({"COLUMNS": "200"}),
        cwd=REPO,
    )
    assert demo.stderr is not None
    try:
        found = URL.search(await next_line(demo.stderr, "dashboard: "))
        assert found is not None
        url = found.group(1)
        async with aiohttp.ClientSession() as s, s.get(url + "/") as r:
            assert r.status == 200
            assert "tbotd dashboard" in await r.text()
        await next_line(demo.stderr, "stays up at")
        overview = await get_json(url + "/api/overview")
        health = overview["health"]
        assert isinstance(health, dict)
        assert health["ready"] is False
        assert "stopped after 4 cycles" in str(health["reason"])
        assert json.dumps(overview["cards"])  # the ML cards, read from the database
    finally:
        if demo.returncode is None:
            demo.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(demo.wait(), 60) == 0
