"""The dashboard's HTTP side: login sessions, the page, its static files and the JSON API.

Auth is the ops endpoint's: the ops token, given once on the login page, becomes a random
session id in an HttpOnly, SameSite=Strict cookie (the token itself never reaches the page's
scripts). Every ``/api/`` route answers 401 without a session or the bearer token. Writes also
need the request's Origin to be the dashboard's own (a cross-site form can carry a cookie in
older browsers, never our Origin). Answers are cached per data version, so twenty pages asking
the same question after a cycle cost one database read.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

STATIC = Path(__file__).parent / "static"
COOKIE = "tbotd_session"
MAX_SESSIONS = 64
OPEN_PATHS = ("/healthz", "/login")
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DashboardSource(Protocol):
    """What the page asks the daemon (implemented in ``tbotd.daemon.dashboard``)."""

    def version(self) -> str:
        """Changes whenever anything the page shows may have changed (memory only)."""

    async def overview(self) -> dict[str, Any]:
        """Health, per-symbol ML cards, positions with protection, orders, equity now."""

    async def chart(self, symbol: str, span: str) -> dict[str, Any]:
        """One symbol's candle chart data for a span (``1d``, ``1w``, ``1m``, ``1y``)."""

    async def equity(self) -> dict[str, Any]:
        """The equity curve and drawdown."""

    async def trades(self) -> dict[str, Any]:
        """Closed trades, newest first."""

    async def events(self) -> dict[str, Any]:
        """Events, alerts first."""

    def config(self) -> dict[str, Any]:
        """The effective config, secrets masked, each key labelled live or restart."""

    async def write_config(
        self, changes: dict[str, Any], apply: bool
    ) -> tuple[int, dict[str, Any]]:
        """Validate ``changes`` (dotted key → value) and show the diff; with ``apply``, write
        and reload; (HTTP status, answer)."""


class Sessions:
    """Logged-in browsers: random ids, newest ``MAX_SESSIONS`` kept, gone on restart."""

    def __init__(self, token: str | None) -> None:
        self._token = token
        self._ids: OrderedDict[str, None] = OrderedDict()

    @property
    def required(self) -> bool:
        """Whether anything beyond health needs credentials (a token is configured)."""
        return bool(self._token)

    def bearer_ok(self, header: str) -> bool:
        """``Authorization: Bearer <token>`` carries the ops token."""
        return bool(self._token) and hmac.compare_digest(
            header.encode(), f"Bearer {self._token}".encode()
        )

    def login(self, given: str) -> str | None:
        """A new session id when ``given`` is the ops token."""
        if not self._token or not hmac.compare_digest(given.encode(), self._token.encode()):
            return None
        session = secrets.token_urlsafe(32)
        self._ids[session] = None
        while len(self._ids) > MAX_SESSIONS:
            self._ids.popitem(last=False)
        return session

    def valid(self, session: str | None) -> bool:
        """``session`` is a live session id."""
        return bool(session) and any(hmac.compare_digest(session or "", s) for s in self._ids)

    def logout(self, session: str | None) -> None:
        """Forget ``session``."""
        self._ids.pop(session or "", None)


def same_origin(request: web.Request) -> bool:
    """The request's Origin is this server's own (scheme and host as the browser sent them)."""
    return request.headers.get("Origin") == f"{request.scheme}://{request.host}"


def gate(sessions: Sessions, request: web.Request) -> web.StreamResponse | None:
    """None when ``request`` may proceed; else the refusal (login page for the page itself)."""
    writes = request.method not in ("GET", "HEAD", "OPTIONS")
    if writes and "Origin" in request.headers and not same_origin(request):
        return json_answer({"error": "forbidden: cross-origin write"}, 403)
    if request.path in OPEN_PATHS or request.path.startswith("/static/"):
        return None
    if not sessions.required or sessions.bearer_ok(request.headers.get("Authorization", "")):
        return None
    if sessions.valid(request.cookies.get(COOKIE)):
        if writes and not same_origin(request):
            return json_answer({"error": "forbidden: a write must come from this page"}, 403)
        return None
    if request.path == "/" and request.method == "GET":
        raise web.HTTPSeeOther("/login")
    return json_answer({"error": "unauthorized"}, 401)


class Dashboard:
    """Routes of the dashboard on an aiohttp application."""

    def __init__(self, source: DashboardSource, sessions: Sessions, allow_write: bool) -> None:
        self.source, self.sessions, self.allow_write = source, sessions, allow_write
        self._cache: dict[tuple[str, ...], tuple[str, bytes]] = {}

    def add_routes(self, app: web.Application) -> None:
        """Mount the login, the page, the static files and the API."""
        r = app.router
        r.add_get("/", self._page)
        r.add_get("/login", self._login_page)
        r.add_post("/login", self._login)
        r.add_post("/logout", self._logout)
        r.add_static("/static", STATIC)
        r.add_get("/api/live", self._live)
        r.add_get("/api/overview", self._cached(lambda _q: self.source.overview(), "overview"))
        r.add_get("/api/chart", self._chart)
        r.add_get("/api/equity", self._cached(lambda _q: self.source.equity(), "equity"))
        r.add_get("/api/trades", self._cached(lambda _q: self.source.trades(), "trades"))
        r.add_get("/api/events", self._cached(lambda _q: self.source.events(), "events"))
        r.add_get("/api/config", self._config)
        r.add_post("/api/config", self._write_config)

    async def _page(self, _request: web.Request) -> web.StreamResponse:
        return _file("index.html")

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        if not self.sessions.required or self.sessions.valid(request.cookies.get(COOKIE)):
            raise web.HTTPSeeOther("/")
        return _file("login.html")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        session = self.sessions.login(str(form.get("token", "")))
        if session is None:
            raise web.HTTPSeeOther("/login?failed=1")
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            COOKIE, session, httponly=True, samesite="Strict", secure=request.secure, path="/"
        )
        raise response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.logout(request.cookies.get(COOKIE))
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def _live(self, _request: web.Request) -> web.Response:
        return json_answer({"version": self.source.version(), "allow_write": self.allow_write})

    def _cached(
        self, ask: Callable[[web.Request], Awaitable[dict[str, Any]]], *key: str
    ) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._answer(key, lambda: ask(request))

        return handler

    async def _answer(
        self, key: tuple[str, ...], ask: Callable[[], Awaitable[dict[str, Any]]]
    ) -> web.Response:
        version = self.source.version()
        hit = self._cache.get(key)
        if hit is None or hit[0] != version:
            body = json.dumps(await ask(), default=str, separators=(",", ":")).encode()
            hit = self._cache[key] = (version, body)
        response = web.Response(body=hit[1], content_type="application/json")
        response.enable_compression()
        return response

    async def _chart(self, request: web.Request) -> web.StreamResponse:
        symbol = request.query.get("symbol", "")
        span = request.query.get("span", "1d")
        return await self._answer(("chart", symbol, span), lambda: self.source.chart(symbol, span))

    async def _config(self, _request: web.Request) -> web.Response:
        return json_answer(self.source.config() | {"allow_write": self.allow_write})

    async def _write_config(self, request: web.Request) -> web.Response:
        if not self.allow_write:
            return json_answer({"error": "read-only: set ops.allow_write = true to edit"}, 403)
        try:
            body = await request.json()
        except ValueError:
            return json_answer({"error": "the body must be JSON"}, 400)
        changes = body.get("changes") if isinstance(body, dict) else None
        if not isinstance(changes, dict) or not changes:
            expected = 'expected {"changes": {"section.key": value}, "apply": false|true}'
            return json_answer({"error": expected}, 400)
        status, answer = await self.source.write_config(changes, body.get("apply") is True)
        return json_answer(answer, status)


def json_answer(body: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON response (Decimals and datetimes as text)."""
    return web.Response(
        text=json.dumps(body, default=str), status=status, content_type="application/json"
    )


def _file(name: str) -> web.StreamResponse:
    response = web.FileResponse(STATIC / name)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
