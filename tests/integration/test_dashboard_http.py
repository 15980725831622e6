"""The dashboard's HTTP rules without a browser: sessions, 401s, Origin checks, the read-only
default, answers cached per data version, and the installed page's files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from prometheus_client import CollectorRegistry

from tbotd.ops.dashboard.routes import COOKIE, STATIC
from tbotd.ops.http import OpsServer

TOKEN = "dash-http-PLANTED-77-0123456789ab"
API = (
    "/api/live",
    "/api/overview",
    "/api/chart?symbol=X",
    "/api/equity",
    "/api/trades",
    "/api/events",
    "/api/config",
)


class FakeSource:
    """Counts what the routes ask; the data version moves only when a test says so."""

    def __init__(self) -> None:
        self.data_version, self.asked, self.writes = 1, 0, 0

    def version(self) -> str:
        return str(self.data_version)

    async def overview(self) -> dict[str, Any]:
        self.asked += 1
        return {"symbols": ["X"], "asked": self.asked}

    async def chart(self, symbol: str, span: str) -> dict[str, Any]:
        return {"symbol": symbol, "span": span}

    async def equity(self) -> dict[str, Any]:
        return {"equity": []}

    async def trades(self) -> dict[str, Any]:
        return {"trades": []}

    async def events(self) -> dict[str, Any]:
        return {"events": []}

    def config(self) -> dict[str, Any]:
        return {"keys": []}

    async def write_config(
        self, changes: dict[str, Any], apply: bool
    ) -> tuple[int, dict[str, Any]]:
        self.writes += 1
        return 200, {"applied": apply, "diff": [], "changes": changes}


async def served(allow_write: bool) -> tuple[OpsServer, FakeSource, str]:
    source = FakeSource()
    ops = OpsServer(
        "127.0.0.1",
        0,
        TOKEN,
        CollectorRegistry(),
        _status,
        lambda: (True, "ok"),
        source,
        allow_write,
    )
    return ops, source, await ops.start()


async def _status() -> dict[str, Any]:
    return {}


@pytest_asyncio.fixture
async def read_only() -> AsyncIterator[tuple[FakeSource, str]]:
    ops, source, url = await served(allow_write=False)
    yield source, url
    await ops.stop()


@pytest_asyncio.fixture
async def writable() -> AsyncIterator[tuple[FakeSource, str]]:
    ops, source, url = await served(allow_write=True)
    yield source, url
    await ops.stop()


def browser_like() -> aiohttp.ClientSession:
    """A client that keeps cookies from 127.0.0.1, as a browser does."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(
    session: aiohttp.ClientSession, url: str, token: str = TOKEN
) -> aiohttp.ClientResponse:
    async with session.post(
        url + "/login", data={"token": token}, allow_redirects=False, headers={"Origin": url}
    ) as r:
        return r


async def test_every_api_answers_401_until_the_token_is_given(
    read_only: tuple[FakeSource, str],
) -> None:
    """No session: the page redirects to the login and every API is 401; a wrong token gets no
    session; the right one gets an HttpOnly, SameSite=Strict cookie that opens everything."""
    _, url = read_only
    async with browser_like() as session:
        async with session.get(url + "/", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/login")
        for path in API:
            async with session.get(url + path) as r:
                assert r.status == 401, path
        refused = await login(session, url, "wrong")
        assert refused.headers["Location"] == "/login?failed=1"
        assert COOKIE not in refused.cookies
        granted = await login(session, url)
        morsel = granted.cookies[COOKIE]
        assert (morsel["httponly"], morsel["samesite"]) == (True, "Strict")
        assert TOKEN not in morsel.value
        for path in API:
            async with session.get(url + path) as r:
                assert r.status == 200, path
        async with session.get(url + "/") as r:
            assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
        async with session.post(url + "/logout", headers={"Origin": url}) as r:
            pass
        async with session.get(url + "/api/overview") as r:
            assert r.status == 401


async def test_writes_are_refused_without_the_token_from_elsewhere_or_when_read_only(
    read_only: tuple[FakeSource, str], writable: tuple[FakeSource, str]
) -> None:
    """A config write: 401 without credentials, 403 from a foreign Origin (token or session),
    403 while ``ops.allow_write`` is off; from the page's own origin it reaches the daemon."""
    body = {"changes": {"strategy.threshold": 0.8}}
    for source, url in (read_only, writable):
        async with (
            aiohttp.ClientSession() as anonymous,
            anonymous.post(url + "/api/config", json=body) as r,
        ):
            assert r.status == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            aiohttp.ClientSession(headers=bearer) as s,
            s.post(url + "/api/config", json=body, headers={"Origin": "https://evil.example"}) as r,
        ):
            assert r.status == 403
        async with browser_like() as browser:
            await login(browser, url)
            async with browser.post(url + "/api/config", json=body) as r:
                assert r.status == 403  # a session without this page's Origin
            async with browser.post(url + "/api/config", json=body, headers={"Origin": url}) as r:
                assert r.status == (200 if source is writable[0] else 403)
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                url + "/login",
                data={"token": TOKEN},
                headers={"Origin": "https://evil.example"},
                allow_redirects=False,
            ) as r,
        ):
            assert r.status == 403
    assert (read_only[0].writes, writable[0].writes) == (0, 1)


async def test_answers_are_read_once_per_data_version(read_only: tuple[FakeSource, str]) -> None:
    """Twenty pages asking after one change cost one read; the next change, one more."""
    source, url = read_only
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
        for _ in range(20):
            async with s.get(url + "/api/overview") as r:
                assert (await r.json())["asked"] == 1
        source.data_version += 1
        async with s.get(url + "/api/overview") as r:
            assert (await r.json())["asked"] == 2


def test_the_page_and_its_vendored_chart_library_ship_in_the_package() -> None:
    """The page, its script and the chart library with its license are package files."""
    for name in (
        "index.html",
        "login.html",
        "app.js",
        "app.css",
        "vendor/lightweight-charts/lightweight-charts.standalone.production.js",
        "vendor/lightweight-charts/LICENSE",
        "vendor/lightweight-charts/NOTICE",
    ):
        assert (STATIC / name).is_file(), name
    assert "cdn" not in (STATIC / "index.html").read_text().lower()
