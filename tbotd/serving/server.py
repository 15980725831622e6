"""Running ``tbotd serve``: logging, model loading, the listening socket, orderly shutdown."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys

from aiohttp import web

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK
from tbotd.config.settings import is_loopback_host
from tbotd.ml.errors import ModelLoadError
from tbotd.ops.logs import configure_logging, get_logger, register_secrets
from tbotd.serving.app import ServeOptions, build_app

log = get_logger(__name__)


async def serve(args: argparse.Namespace, token: str | None) -> int:
    """Serve until SIGTERM or SIGINT; the first log line says where (``event": "serving``)."""
    configure_logging("info", args.log_format)
    if token is not None:
        register_secrets([token])
    from tbotd.predictor.local import LocalPredictor

    try:
        predictor = await asyncio.to_thread(LocalPredictor.load, args.models, args.device)
    except ModelLoadError as e:
        print(f"tbotd serve: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = ServeOptions(
        model_name=args.model_name,
        token=token,
        auth_header=args.auth_header,
        auth_scheme=args.auth_scheme,
        batch_wait_s=args.batch_wait_ms / 1000,
        max_batch_rows=args.max_batch_rows,
    )
    ssl_context = None
    if args.tls_cert is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(str(args.tls_cert), str(args.tls_key))
    runner = web.AppRunner(build_app(predictor, options), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, args.host, args.port, ssl_context=ssl_context)
        await site.start()
        host, port = runner.addresses[0][:2]
        scheme = "https" if ssl_context else "http"
        if ssl_context is None and token is not None and not is_loopback_host(args.host):
            log.warning(
                "serving plain http on a non-loopback address: tbotd clients send their token "
                "to other hosts only over https; use --tls-cert/--tls-key or a TLS proxy"
            )
        log.info(
            "serving",
            url=f"{scheme}://{host}:{port}",
            port=port,
            model=options.model_name,
            model_version=predictor.model_version,
            device=predictor.device.type,
            auth=token is not None,
        )
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
        predictor.close()
    return EXIT_OK
