"""The HTTP ops endpoint (README: Operations): health, readiness, Prometheus metrics, status,
and the web dashboard (``tbotd.ops.dashboard``) when the daemon hands one over.

Bound to loopback by default. ``/healthz`` is always open (systemd, load balancers). Everything
else needs ``Authorization: Bearer <ops token>`` — or the dashboard's session cookie, got by
giving the token on its login page — when a token is configured; without a token the server
refuses to listen anywhere but loopback, so nothing is exposed unauthenticated to a network.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from tbotd.config.settings import is_loopback_host
from tbotd.domain.errors import ConfigError
from tbotd.ops.dashboard.routes import Dashboard, DashboardSource, Sessions, gate
from tbotd.ops.guard import ConnectionGuard, RequestBudget
from tbotd.ops.logs import get_logger

log = get_logger(__name__)
StatusProvider = Callable[[], Awaitable[dict[str, Any]]]


class OpsServer:
    """Serves the ops routes for one daemon."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str | None,
        registry: CollectorRegistry,
        status: StatusProvider,
        ready: Callable[[], tuple[bool, str]],
        dashboard: DashboardSource | None = None,
        allow_write: bool = False,
    ) -> None:
        if not token and not is_loopback_host(host):
            raise ConfigError(
                f"ops.host {host} is not loopback: set TBOTD_OPS__TOKEN to expose the ops "
                "endpoint beyond this machine"
            )
        self.host, self.port, self._token = host, port, token
        self._registry, self._status, self._ready = registry, status, ready
        self._runner: web.AppRunner | None = None
        self._sessions = Sessions(token)
        self._dashboard = (
            None if dashboard is None else Dashboard(dashboard, self._sessions, allow_write)
        )
        self.guard = ConnectionGuard()
        self.budget = RequestBudget()
        self.url = ""

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status_route)
        if self._dashboard is not None:
            self._dashboard.add_routes(app)
        return app

    async def start(self) -> str:
        """Listen; returns the base URL (port 0 picks a free one)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            await _GuardedSite(self._runner, self.host, self.port, self.guard).start()
        except OSError as e:
            await self._runner.cleanup()
            raise ConfigError(
                f"ops endpoint: cannot listen on {self.host}:{self.port} ({e.strerror}): another "
                "process holds the port (another tbotd?) — stop it or change ops.port"
            ) from e
        port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}"
        log.info("ops endpoint listening", url=self.url, auth=bool(self._token))
        if not is_loopback_host(self.host):
            log.warning(
                "ops endpoint reachable beyond this machine over plain HTTP: put TLS in front "
                "(a reverse proxy), or the token travels in clear",
                host=self.host,
            )
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/healthz":  # orchestrators poll it; it reveals and costs nothing
            return await handler(request)
        if not self.budget.allow(request.remote or "?"):  # before auth: guessing costs too
            return _json({"error": "too many requests"}, 429)
        refused = gate(self._sessions, request)
        return refused if refused is not None else await handler(request)

    async def _healthz(self, _request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, why = self._ready()
        return _json({"ready": ready, "reason": why}, 200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_route(self, _request: web.Request) -> web.Response:
        return _json(await self._status())


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, default=str), status=status, content_type="application/json"
    )


class _GuardedSite(web.TCPSite):
    """aiohttp's TCP site with every connection behind :class:`ConnectionGuard`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port)
        self._guard = guard

    async def start(self) -> None:
        """Listen, wrapping aiohttp's protocol factory."""
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner was not set up")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.wrap(server), self._host, self._port, reuse_address=True
        )
