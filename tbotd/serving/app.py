"""The ``tbotd serve`` HTTP application: the local models over both wire formats.

Routes (``{name}`` is the model name, ``tbotd`` by default; the only version is ``1``):

===========================================================  =====  ==========================
route                                                        auth   what
===========================================================  =====  ==========================
``GET /v2/health/live``, ``GET /v2/health/ready``            no     200 once the models loaded
``GET /v2/models/{name}[/versions/1]/ready``                 no     200, or 404 for other names
``GET /v2``                                                  yes    server metadata
``GET /v2/models/{name}[/versions/1]``                       yes    model metadata (+ schema hash)
``GET /v2/models/{name}[/versions/1]/config``                yes    Triton-style configuration
``POST /v2/models/{name}[/versions/1]/infer``                yes    OIP v2 inference
``POST /v1/predictions``, ``POST /v1/predictions:batch``     yes    the JSON prediction API
``GET /metrics``                                             yes    Prometheus text
===========================================================  =====  ==========================

Health routes stay open so load balancers and orchestrators can probe without the secret; they
reveal nothing but liveness. Everything else needs ``Authorization: Bearer <BASIS_ML_API_TOKEN>``
(header name and scheme configurable like the client's); a missing or wrong token gets 401.
Every request gets one structured log line (method, route, status, duration, rows, peer) — never
headers, so never the token. Concurrent requests share forward passes (:class:`MicroBatcher`).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from tbotd import __version__
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import timeframe_ms
from tbotd.features import Bars, latest_features
from tbotd.ml.signals import prediction_from_outputs
from tbotd.ops.logs import get_logger
from tbotd.ops.metrics import SERVE_METRICS, ServeMetrics, render
from tbotd.predictor import jsonapi, oip
from tbotd.predictor.local import LocalPredictor
from tbotd.serving.batcher import MicroBatcher

log = get_logger(__name__)
VERSION = "1"
MAX_BODY_BYTES = 64 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN_ROUTES = ("/v2/health/", "/ready")
ROWS_KEY = web.RequestKey("rows", int)  # feature rows of a request, for its log line


@dataclass(frozen=True)
class ServeOptions:
    """How ``tbotd serve`` answers."""

    model_name: str = "tbotd"
    token: str | None = None
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    batch_wait_s: float = 0.002
    max_batch_rows: int = 1024


class ModelServer:
    """Request handlers over one loaded :class:`LocalPredictor`."""

    def __init__(
        self,
        predictor: LocalPredictor,
        options: ServeOptions,
        metrics: ServeMetrics = SERVE_METRICS,
    ) -> None:
        self.predictor = predictor
        self.options = options
        self.metrics = metrics
        self.model_version = predictor.model_version
        self._step_ms = timeframe_ms(predictor.manifest.timeframe)
        self.batcher = MicroBatcher(
            predictor.predict_features,
            max_wait_s=options.batch_wait_s,
            max_rows=options.max_batch_rows,
            metrics=metrics,
        )

    # --- middleware -------------------------------------------------------------------------

    @web.middleware
    async def log_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """One log line and metrics per request; errors become JSON ``{"error": ...}``."""
        started = time.perf_counter()
        route = _route_name(request)
        try:
            response = await handler(request)
        except web.HTTPException as e:
            response = web.json_response({"error": e.reason}, status=e.status)
        except InvalidDataError as e:
            response = web.json_response({"error": str(e)}, status=400)
        except Exception:
            log.exception("request failed", method=request.method, route=route)
            response = web.json_response({"error": "internal error"}, status=500)
        duration = time.perf_counter() - started
        self.metrics.requests.labels(route=route, status=str(response.status)).inc()
        self.metrics.seconds.labels(route=route).observe(duration)
        log.info(
            "request",
            method=request.method,
            route=route,
            path=request.path,
            status=response.status,
            duration_ms=round(duration * 1000, 2),
            rows=request.get(ROWS_KEY),
            peer=request.remote,
        )
        return response

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """401 without the right token, except on health routes."""
        token = self.options.token
        if token is None or request.path.startswith(_OPEN_ROUTES[0]):
            return await handler(request)
        if request.path.endswith(_OPEN_ROUTES[1]) and request.method == "GET":
            return await handler(request)
        scheme = self.options.auth_scheme
        expected = f"{scheme} {token}" if scheme else token
        presented = request.headers.get(self.options.auth_header, "")
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return web.json_response(
                {"error": "missing or wrong token"},
                status=401,
                headers={"WWW-Authenticate": scheme or "Token"},
            )
        return await handler(request)

    # --- OIP v2 -----------------------------------------------------------------------------

    async def live(self, _request: web.Request) -> web.Response:
        """Always live while the process answers."""
        return web.json_response({"live": True})

    async def ready(self, _request: web.Request) -> web.Response:
        """Ready: the models are loaded (they are, once the server runs)."""
        return web.json_response({"ready": True})

    def _check_model(self, request: web.Request) -> None:
        name = request.match_info["name"]
        version = request.match_info.get("version", VERSION)
        if name != self.options.model_name or version != VERSION:
            raise web.HTTPNotFound(reason=f"unknown model {name!r} version {version!r}")

    async def model_ready(self, request: web.Request) -> web.Response:
        """200 for the served model and version, 404 otherwise."""
        self._check_model(request)
        return web.json_response({"name": self.options.model_name, "ready": True})

    async def server_metadata(self, _request: web.Request) -> web.Response:
        """``GET /v2``."""
        return web.json_response(
            {
                "name": "tbotd",
                "version": __version__,
                "extensions": ["binary_tensor_data", "model_configuration"],
            }
        )

    async def model_metadata(self, request: web.Request) -> web.Response:
        """Inputs, outputs and the feature schema hash."""
        self._check_model(request)
        meta = oip.model_metadata(self.options.model_name, [VERSION], self.model_version)
        return web.json_response(meta)

    async def model_config(self, request: web.Request) -> web.Response:
        """The configuration a Triton ``config.pbtxt`` of this model would hold."""
        self._check_model(request)
        config = oip.model_config(
            self.options.model_name, self.options.max_batch_rows, self.model_version
        )
        return web.json_response(config)

    async def infer(self, request: web.Request) -> web.Response:
        """OIP v2 inference (JSON or binary tensors)."""
        self._check_model(request)
        body = await request.read()
        decoded = oip.decode_infer_request(body, request.headers.get(oip.HEADER_LENGTH))
        request[ROWS_KEY] = len(decoded.features)
        out = await self.batcher.run(decoded.features)
        payload, headers = oip.encode_infer_response(
            out,
            decoded,
            self.options.model_name,
            VERSION,
            self.model_version,
            self.predictor.trained_until,
        )
        return web.Response(body=payload, headers=headers)

    # --- JSON prediction API ----------------------------------------------------------------

    async def predict_one(self, request: web.Request) -> web.Response:
        """``POST /v1/predictions``: one symbol; a per-symbol problem is a 422."""
        body = await _off_loop(jsonapi.strict_json_loads, await request.read())
        parsed = await _off_loop(jsonapi.parse_request, body, self._step_ms)
        request[ROWS_KEY] = 1
        schema = jsonapi.requested_schema(request.headers.get(jsonapi.SCHEMA_HEADER))
        result = (await self._predict_candles([parsed], schema))[0]
        if isinstance(result, str):
            return web.json_response({"error": result}, status=422)
        return web.json_response(result)

    async def predict_batch(self, request: web.Request) -> web.Response:
        """``POST /v1/predictions:batch``: one entry per request, in order."""
        body = await _off_loop(jsonapi.strict_json_loads, await request.read())
        items = jsonapi.parse_batch(body)
        parsed = await _off_loop(self._parse_all, items)
        request[ROWS_KEY] = len(parsed)
        valid = [p for p in parsed if isinstance(p, jsonapi.CandleRequest)]
        schema = jsonapi.requested_schema(request.headers.get(jsonapi.SCHEMA_HEADER))
        results = iter(await self._predict_candles(valid, schema))
        entries: list[dict[str, Any]] = []
        for item, p in zip(items, parsed, strict=True):
            result = next(results) if isinstance(p, jsonapi.CandleRequest) else p
            if isinstance(result, str):
                symbol = item.get("symbol") if isinstance(item, dict) else None
                entries.append({"symbol": str(symbol), "error": result})
            else:
                entries.append(result)
        return web.json_response({"predictions": entries})

    def _parse_all(self, items: list[Any]) -> list[jsonapi.CandleRequest | str]:
        out: list[jsonapi.CandleRequest | str] = []
        for item in items:
            try:
                out.append(jsonapi.parse_request(item, self._step_ms))
            except InvalidDataError as e:
                out.append(str(e))
        return out

    async def _predict_candles(
        self, requests: list[jsonapi.CandleRequest], schema: int
    ) -> list[dict[str, Any] | str]:
        """Features for every usable request, one shared forward, Predictions as JSON in the
        prediction schema the client asked for."""
        if not requests:
            return []
        features, problems = await _off_loop(self._features, requests)
        usable = [i for i in range(len(requests)) if i not in problems]
        results: list[dict[str, Any] | str] = [problems.get(i, "") for i in range(len(requests))]
        if not usable:
            return results
        out = await self.batcher.run(features[usable])
        for row, i in enumerate(usable):
            req = requests[i]
            prediction = prediction_from_outputs(
                req.symbol,
                req.timestamp,
                out,
                row,
                self.model_version,
                self.predictor.source,
                self.predictor.trained_until,
            )
            results[i] = jsonapi.prediction_json(prediction, schema)
        return results

    def _features(
        self, requests: list[jsonapi.CandleRequest]
    ) -> tuple[np.ndarray[Any, np.dtype[np.float32]], dict[int, str]]:
        need = self.predictor.required_history
        problems: dict[int, str] = {}
        rows = []
        for i, req in enumerate(requests):
            if len(req.open_time) < need:
                problems[i] = (
                    f"{req.symbol}: {len(req.open_time)} candles given, the models need {need}"
                )
            else:
                rows.append(i)
        features = np.zeros((len(requests), oip.N_FEATURES), dtype=np.float32)
        if rows:
            times = np.stack([requests[i].open_time[-need:] for i in rows])
            values = np.stack([requests[i].values[-need:] for i in rows])
            bars = Bars(times, *(np.ascontiguousarray(values[:, :, k]) for k in range(5)))
            features[rows] = latest_features(bars).astype(np.float32)
            for i in rows:
                if not np.isfinite(features[i]).all():
                    problems[i] = f"{requests[i].symbol}: features are not finite for these candles"
        return features, problems

    async def metrics_text(self, _request: web.Request) -> web.Response:
        """Prometheus exposition of tbotd's registry."""
        body, content_type = render()
        return web.Response(body=body, headers={"Content-Type": content_type})


def _route_name(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


SERVER_KEY = web.AppKey("server", ModelServer)


def build_app(
    predictor: LocalPredictor, options: ServeOptions, metrics: ServeMetrics = SERVE_METRICS
) -> web.Application:
    """The aiohttp application of ``tbotd serve`` (its batcher starts with the app)."""
    server = ModelServer(predictor, options, metrics)
    app = web.Application(
        middlewares=[server.log_requests, server.authenticate], client_max_size=MAX_BODY_BYTES
    )
    app[SERVER_KEY] = server
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    app.router.add_get("/v2/health/live", server.live)
    app.router.add_get("/v2/health/ready", server.ready)
    app.router.add_get("/v2", server.server_metadata)
    for base in (model, versioned):
        app.router.add_get(base, server.model_metadata)
        app.router.add_get(base + "/ready", server.model_ready)
        app.router.add_get(base + "/config", server.model_config)
        app.router.add_post(base + "/infer", server.infer)
    app.router.add_post(jsonapi.PREDICT_PATH, server.predict_one)
    app.router.add_post(jsonapi.BATCH_PATH, server.predict_batch)
    app.router.add_get("/metrics", server.metrics_text)

    async def start_batcher(_app: web.Application) -> None:
        server.batcher.start()

    async def stop_batcher(_app: web.Application) -> None:
        await server.batcher.close()

    app.on_startup.append(start_batcher)
    app.on_cleanup.append(stop_batcher)
    return app
