"""The web dashboard in a real browser (the system's Chromium, driven by Playwright) against
`tbotd run` trading on `tbotd sim`: login, live updates, the ML card equal to `/status`, writes
refused without the token or from a foreign origin, and a phone-sized screen."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tbotd.config import ConfigInvalidError, load_settings
from tbotd.daemon.risk import write_command
from tbotd.domain.values import ms_to_datetime
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET
from tbotd.store import Store
from tests.conftest import CONFIGS
from tests.e2e_support import ORACLE_TOKEN, Process, free_port, oracle, sim_process, spawn

TOKEN = "dash-token-PLANTED-5c1e-0123456789"
SPEED = "120"  # a cycle every 2.5 s: the page (polling every 2 s) keeps up
API = (
    "/api/live",
    "/api/overview",
    "/api/chart?symbol=BTC/USDT:USDT",
    "/api/equity",
    "/api/trades",
    "/api/events",
    "/api/config",
    "/status",
)


def system_chromium() -> str | None:
    """The system's Chromium binary (Debian's `chromium` package), never a downloaded one."""
    for candidate in (os.environ.get("TBOTD_CHROMIUM"), "/usr/lib/chromium/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = system_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(
        async_playwright is None, reason="Playwright is not installed (pip install -e '.[test]')"
    ),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no system Chromium to drive: install Debian's `chromium` (.ci/run does), or "
        "set TBOTD_CHROMIUM to a Chromium binary",
    ),
]


@dataclass
class Running:
    """The daemon under test, its ops URL and a browser."""

    daemon: Process
    url: str
    browser: Browser
    config: Path
    env: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """`tbotd run` (live broker) against `tbotd sim` with the scripted oracle, a few cycles in."""
    tmp = tmp_path_factory.mktemp("dashboard")
    config = tmp / "tbotd.toml"  # the editor writes it: never the repository's file
    config.write_text((CONFIGS / "ml_usdt_directional.toml").read_text())
    sim = sim_process("--speed", SPEED, "--seed", "3")
    async with sim as (_sim, sim_url), oracle() as ml_url, async_playwright() as pw:
        env = {
            "TBOTD_EXCHANGE__BASE_URL": sim_url,
            "TBOTD_EXCHANGE__API_KEY": DEMO_API_KEY,
            "TBOTD_EXCHANGE__API_SECRET": DEMO_API_SECRET,
            "TBOTD_EXECUTION__MODE": "live",
            "TBOTD_DAEMON__TIME_SCALE": SPEED,
            "TBOTD_DAEMON__CANDLE_WAIT_S": "60",
            "TBOTD_STORE__PATH": str(tmp / "tbotd.sqlite"),
            "TBOTD_OPS__PORT": str(free_port()),
            "TBOTD_OPS__TOKEN": TOKEN,
            "TBOTD_OPS__ALLOW_WRITE": "true",
            "TBOTD_ML__REMOTE_URL": ml_url,
            "TBOTD_ML__REMOTE_CANDLES": "0",
            "BASIS_ML_API_TOKEN": ORACLE_TOKEN,
        }
        daemon = await spawn("run", "--config", str(config), env=env)
        try:
            await daemon.wait_for(lambda ev: _count(ev, "cycle") >= 3, within_s=180)
            url = next(
                e["url"] for e in daemon.events if e.get("event") == "ops endpoint listening"
            )
            browser = await pw.chromium.launch(executable_path=CHROMIUM)
            try:
                yield Running(daemon, url, browser, config, env)
            finally:
                await browser.close()
        finally:
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await daemon.stop(within_s=60)


def _count(events: list[dict[str, Any]], name: str) -> int:
    return sum(1 for e in events if e.get("event") == name)


async def http(
    method: str, url: str, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers, **kw) as r:
        return r.status, await r.text()


async def signed_in(running: Running, **context: Any) -> tuple[Page, list[str]]:
    """A fresh browser context signed in through the login page; its console errors."""
    ctx = await running.browser.new_context(**context)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(running.url + "/")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#cards [data-field=confidence]", timeout=30_000)
    return page, errors


async def test_unauthenticated_browser_gets_the_login_page_and_every_api_401(
    running: Running,
) -> None:
    """Without the token: the page sends the browser to sign in; every API says 401; a wrong
    token does not sign in."""
    ctx = await running.browser.new_context()
    page = await ctx.new_page()
    await page.goto(running.url + "/")
    assert page.url.endswith("/login")
    for path in API:
        status, _ = await http("GET", running.url + path)
        assert status == 401, path
        assert await page.evaluate(f"fetch({json.dumps(path)}).then(r => r.status)") == 401
    await page.fill("#token", "not-the-token")
    await page.click("button[type=submit]")
    # the failure notice appears after the round trip to /login?failed=1: wait for it, not a guess
    await page.wait_for_selector("#failed", state="visible")
    assert "/login" in page.url
    await ctx.close()


async def test_page_loads_clean_and_the_ml_card_equals_status(running: Running) -> None:
    """Signed in, the page shows every card (and when it last reconciled) with no console error;
    each symbol's direction and confidence are what `/status` reports for the same candle; the
    session cookie is HttpOnly and SameSite=Strict."""
    page, errors = await signed_in(running)
    cookie = next(c for c in await page.context.cookies() if c["name"] == "tbotd_session")
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert TOKEN not in await page.content()
    for _ in range(20):  # a cycle may land between the two reads: compare the same candle
        card = await page.eval_on_selector(
            "#cards .card",
            "c => ({symbol: c.dataset.symbol, candle: c.dataset.candle,"
            " direction: c.querySelector('[data-field=direction]').textContent,"
            " confidence: Number(c.querySelector('[data-field=confidence]').dataset.value)})",
        )
        _, body = await http("GET", running.url + "/status", {"Authorization": f"Bearer {TOKEN}"})
        status = json.loads(body)["predictions"][card["symbol"]]
        if status["candle_time"] == ms_to_datetime(int(card["candle"])).isoformat():
            break
        await page.wait_for_selector(f'#cards .card:not([data-candle="{card["candle"]}"])')
    assert (card["direction"], card["confidence"]) == (status["signal"], status["confidence"])
    for section in ("#chart canvas", "#equity-chart canvas", "#positions", "#events", "#daemon"):
        assert await page.is_visible(section), section
    assert "Last reconciled with the exchange" in (await page.text_content("#reconciled") or "")
    assert errors == []
    await page.context.close()


async def test_a_new_cycle_updates_the_page_without_a_reload(running: Running) -> None:
    """The cycle count and the data version move on the open page; it never navigated."""
    page, errors = await signed_in(running)
    await page.evaluate("window.__same_document = true")
    cycles = await page.get_attribute("#health [data-cycles]", "data-cycles")
    moved = f'#health [data-cycles]:not([data-cycles="{cycles}"])'  # no eval: the CSP forbids it
    await page.wait_for_selector(moved, timeout=60_000)
    assert int(await page.get_attribute("#health [data-cycles]", "data-cycles") or 0) > int(
        cycles or 0
    )
    assert await page.evaluate("window.__same_document === true")
    assert errors == []
    await page.context.close()


async def test_writes_need_the_token_and_this_pages_origin(running: Running) -> None:
    """A config write without credentials is 401; with the token but a foreign Origin, or a
    signed-in browser's cookie from a foreign Origin, it is refused (403); so is a login posted
    from another site."""
    body = {"changes": {"strategy.threshold": 0.8}}
    status, _ = await http("POST", running.url + "/api/config", json=body)
    assert status == 401
    evil = {"Origin": "https://evil.example", "Authorization": f"Bearer {TOKEN}"}
    status, _ = await http("POST", running.url + "/api/config", evil, json=body)
    assert status == 403
    page, _ = await signed_in(running)
    cookie = next(c for c in await page.context.cookies() if c["name"] == "tbotd_session")
    foreign = {"Origin": "https://evil.example", "Cookie": f"tbotd_session={cookie['value']}"}
    status, _ = await http("POST", running.url + "/api/config", foreign, json=body)
    assert status == 403
    status, _ = await http(
        "POST", running.url + "/login", {"Origin": "https://evil.example"}, data={"token": TOKEN}
    )
    assert status == 403
    await page.context.close()


async def test_a_phone_shows_the_ml_card_and_positions_without_sideways_scrolling(
    running: Running,
) -> None:
    """At 390 px wide the ML card and the positions fit the screen; the page never scrolls
    sideways."""
    page, errors = await signed_in(running, viewport={"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    for selector in ("#cards .card", "#positions"):
        box = await page.locator(selector).first.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 390, selector
    assert errors == []
    await page.context.close()


async def open_editor(page: Page, threshold: str) -> None:
    await page.click("#config-box summary")
    field = page.locator('[data-key="strategy.threshold"]')
    await field.fill(threshold)
    await page.click("#config-preview")


async def test_the_config_editor_refuses_an_invalid_value_with_the_loaders_message(
    running: Running, tmp_path: Path
) -> None:
    """A threshold of 1.5 is refused in the preview with the words `check-config` uses for the
    same file; nothing is written."""
    before = running.config.read_text()
    trial = tmp_path / "trial.toml"
    trial.write_text(before.replace("threshold = 0.70", "threshold = 1.5"))
    with pytest.raises(ConfigInvalidError) as refused:
        load_settings(trial, {k: v for k, v in running.env.items() if k.startswith("TBOTD_")})
    (problem,) = [p for p in refused.value.problems if p.key == "strategy.threshold"]
    page, errors = await signed_in(running)
    await open_editor(page, "1.5")
    shown = await page.locator("#config-result .problem").first.text_content()
    assert shown == f"{running.config}: strategy.threshold = 1.5: {problem.expected}"
    assert await page.is_disabled("#config-apply")
    assert running.config.read_text() == before
    assert [e for e in errors if "status of 422" not in e] == []  # the refusal itself is a 422
    await page.context.close()


async def test_a_valid_edit_is_previewed_applied_live_and_journaled(running: Running) -> None:
    """threshold 0.70 → 0.75: the preview shows the diff, apply changes that one line of the
    file, the daemon reloads it (the config view says 0.75) and an event records it."""
    before = running.config.read_text()
    page, errors = await signed_in(running)
    await open_editor(page, "0.75")
    await page.wait_for_selector("#config-result table")
    assert "0.75" in (await page.locator("#config-result table").text_content() or "")
    await page.click("#config-apply")
    await page.wait_for_selector("#config-result >> text=Applied (reloaded).")
    assert running.config.read_text() == before.replace("threshold = 0.70", "threshold = 0.75")
    _, body = await http("GET", running.url + "/api/config", {"Authorization": f"Bearer {TOKEN}"})
    keys = {k["key"]: k["value"] for k in json.loads(body)["keys"]}
    assert keys["strategy.threshold"] == 0.75
    _, body = await http("GET", running.url + "/api/events", {"Authorization": f"Bearer {TOKEN}"})
    assert any(e["kind"] == "config-change" for e in json.loads(body)["events"])
    assert errors == []
    await page.context.close()


async def test_the_daemon_panel_shows_a_halt_and_its_resume(running: Running) -> None:
    """`tbotd halt` while the page is open: the daemon panel says HALTED once the next close
    applies it, and "armed" again after `tbotd resume` (it said the guard did not exist)."""
    db = Path(running.env["TBOTD_STORE__PATH"])

    def command(halt: bool) -> None:
        store = Store.open(db)
        try:
            write_command(store, halt=halt, flatten=False, at=datetime.now(UTC))
        finally:
            store.close()

    page, errors = await signed_in(running)
    assert "armed" in (await page.text_content("#risk-guard") or "")
    await asyncio.to_thread(command, True)
    await page.wait_for_selector("#risk-guard >> text=HALTED", timeout=60_000)
    await asyncio.to_thread(command, False)
    await page.wait_for_selector("#risk-guard >> text=armed", timeout=60_000)
    assert errors == []
    await page.context.close()
