"""Shared plumbing of the REST routes: venues, parameter parsing and the handler wrappers.

USDⓈ-M (``/fapi``) and COIN-M (``/dapi``) share every handler; a :class:`Venue` says which one a
route serves. Handlers raise :class:`~tbotd.sim.auth.SimError` for anything the venue would
reject; the wrappers turn it (and any bug) into a Binance-style JSON error, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tbotd.domain.enums import MarketType
from tbotd.ops.logs import get_logger
from tbotd.sim.accounts import Account
from tbotd.sim.auth import SimError, authenticate, illegal, missing, parse_params, require_key
from tbotd.sim.instruments import Instrument

if TYPE_CHECKING:
    from tbotd.sim.server import SimExchange

log = get_logger(__name__)


@dataclass(frozen=True)
class Venue:
    """One of the two futures venues the sim serves."""

    name: str  # "fapi" | "dapi"
    market_type: MarketType
    instruments: dict[str, Instrument]

    @property
    def prefix(self) -> str:
        """URL prefix: ``/fapi`` or ``/dapi``."""
        return "/" + self.name

    @property
    def assets(self) -> list[str]:
        """Margin assets of this venue's contracts."""
        return sorted({i.margin_asset for i in self.instruments.values()})


@dataclass
class Ctx:
    """One request as a handler sees it."""

    sim: SimExchange
    venue: Venue
    params: dict[str, str]
    account: Account | None = None

    @property
    def acct(self) -> Account:
        """The authenticated account (signed and key-only routes)."""
        if self.account is None:
            raise SimError(-2014, "API-key format invalid.", status=401)
        return self.account

    def instrument(self, required: bool = True) -> Instrument | None:
        """The ``symbol`` parameter as one of this venue's instruments (-1121 otherwise)."""
        symbol = self.params.get("symbol")
        if not symbol:
            if required:
                raise missing("symbol")
            return None
        inst = self.venue.instruments.get(symbol.upper())
        if inst is None:
            raise SimError(-1121, "Invalid symbol.")
        return inst

    def inst(self) -> Instrument:
        """The required ``symbol`` parameter."""
        inst = self.instrument(required=True)
        if inst is None:
            raise missing("symbol")
        return inst

    def decimal(self, name: str) -> Decimal | None:
        """An optional decimal parameter (-1100 if malformed)."""
        raw = self.params.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation as e:
            raise illegal(name, raw) from e
        if not value.is_finite():
            raise illegal(name, raw)
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        """An optional integer parameter (-1100 if malformed)."""
        raw = self.params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError as e:
            raise illegal(name, raw) from e

    def flag(self, name: str) -> bool:
        """A boolean parameter sent as ``true``/``false``."""
        raw = self.params.get(name, "false").lower()
        if raw not in ("true", "false"):
            raise illegal(name, raw)
        return raw == "true"

    def choice(self, name: str, allowed: tuple[str, ...], code: int = -1100) -> str:
        """A required enumerated parameter."""
        raw = self.params.get(name)
        if not raw:
            raise missing(name)
        if raw.upper() not in allowed:
            raise SimError(code, f"Invalid {name}.") if code != -1100 else illegal(name, raw)
        return raw.upper()


Handler = Callable[[Ctx], Awaitable[Any]]
Route = tuple[str, str, Handler, str]  # method, path, handler, auth: public | key | signed


def error_response(err: SimError) -> web.Response:
    """A Binance error as JSON with its HTTP status."""
    return web.json_response(err.body(), status=err.status, headers=err.headers)


def to_json(data: Any) -> web.Response:
    """A 200 JSON answer."""
    return web.Response(
        text=json.dumps(data, separators=(",", ":")), content_type="application/json"
    )


def wrap(
    sim: SimExchange, venue: Venue, handler: Handler, auth: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler: authenticate, catch up the market, run, publish events, answer."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        try:
            raw_query = request.rel_url.raw_query_string
            raw_body = await request.text() if request.can_read_body else ""
            key = request.headers.get("X-MBX-APIKEY")
            if auth == "signed":
                signed = authenticate(
                    api_key=key,
                    raw_query=raw_query,
                    raw_body=raw_body,
                    secrets=sim.secrets,
                    wall_now_ms=sim.wall.now_ms() + sim.faults.config.clock_skew_ms,
                )
                ctx = Ctx(sim, venue, signed.params, sim.engine.accounts[signed.api_key])
            elif auth == "key":
                api_key = require_key(key, sim.secrets)
                ctx = Ctx(
                    sim, venue, parse_params(raw_query, raw_body), sim.engine.accounts[api_key]
                )
            else:
                ctx = Ctx(sim, venue, parse_params(raw_query, raw_body))
            sim.catch_up()
            try:
                result = await handler(ctx)
            finally:
                sim.publish_user_events()
            return result if isinstance(result, web.StreamResponse) else to_json(result)
        except SimError as e:
            return error_response(e)
        except Exception:
            log.exception("sim_handler_failed", path=request.path)
            return error_response(
                SimError(-1000, "An unknown error occurred while processing the request.", 500)
            )

    return endpoint
