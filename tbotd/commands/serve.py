"""`tbotd serve --models DIR [--host] [--port]`: serve the local models to many daemons.

Speaks both wire formats of the remote client (the JSON prediction API and the Open Inference
Protocol v2), so a GPU box can serve every daemon and Triton/KServe/MLServer can stand in for it.
Requests need ``Authorization: Bearer $BASIS_ML_API_TOKEN`` (health routes excepted); without a
token set, ``--no-auth`` is required and only allowed on a loopback host. ``--export REPO`` writes
a Triton/KServe ONNX model repository instead of serving.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK

DEFAULT_PORT = 8600


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the serve subcommand."""
    p = sub.add_parser(
        "serve",
        help="serve the local models over the JSON API and OIP v2 (or export them for Triton)",
        description="Serve a model directory written by `tbotd train` over HTTP: the JSON "
        "prediction API (/v1/predictions) and the Open Inference Protocol v2 (/v2/...). "
        "Clients authenticate with Authorization: Bearer $BASIS_ML_API_TOKEN. With --export, "
        "write an ONNX model repository for NVIDIA Triton / KServe instead. "
        "Exit 0 ok, 2 bad input, 1 runtime failure.",
    )
    p.add_argument("--models", type=Path, required=True, metavar="DIR", help="model directory")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT}; 0: any)")
    p.add_argument("--model-name", default="tbotd", help="OIP model name (tbotd)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-wait-ms", type=float, default=2.0, help="micro-batching window (2)")
    p.add_argument("--max-batch-rows", type=int, default=1024, help="rows per forward (1024)")
    p.add_argument("--auth-header", default="Authorization", help="token header (Authorization)")
    p.add_argument("--auth-scheme", default="Bearer", help="token scheme (Bearer; '' for none)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve https with this cert")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert")
    p.add_argument(
        "--no-auth", action="store_true", help="serve without a token (loopback hosts only)"
    )
    p.add_argument("--log-format", choices=("auto", "json", "console"), default="auto")
    p.add_argument("--export", type=Path, metavar="REPO", help="write a Triton model repository")
    p.add_argument("--json", action="store_true", help="with --export: print a JSON summary")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export, or check the options, load the models and serve until SIGTERM/SIGINT."""
    from tbotd.domain.errors import InvalidDataError

    if args.export is not None:
        return _export(args)
    if not 0 <= args.port <= 65535:
        raise InvalidDataError(f"--port must be within 0-65535, not {args.port}")
    if args.batch_wait_ms < 0 or args.max_batch_rows < 1:
        raise InvalidDataError("--batch-wait-ms must be ≥ 0 and --max-batch-rows ≥ 1")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidDataError("--tls-cert and --tls-key go together")
    from tbotd.config.loader import read_ml_token

    token = read_ml_token()
    if token is None and not args.no_auth:
        print(
            "tbotd serve: BASIS_ML_API_TOKEN is not set (environment or systemd credential "
            "basis_ml_api_token); set it, or pass --no-auth on a loopback host",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    from tbotd.config.settings import is_loopback_host
    from tbotd.serving.server import serve

    if args.no_auth and not is_loopback_host(args.host):
        raise InvalidDataError("--no-auth is only allowed on a loopback host (127.0.0.1, ::1)")
    import asyncio

    return asyncio.run(serve(args, None if args.no_auth else token))


def _export(args: argparse.Namespace) -> int:
    from tbotd.serving.export import export_repository

    result = export_repository(args.models, args.export, args.model_name, args.max_batch_rows)
    checked = (
        "not checked (onnxruntime is not installed)"
        if result.max_abs_diff is None
        else f"onnxruntime matches PyTorch within {result.max_abs_diff:.1e}"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "model_dir": str(result.model_dir),
                    "version": result.version,
                    "onnx": str(result.onnx_path),
                    "max_abs_diff": result.max_abs_diff,
                }
            )
        )
    else:
        print(f"wrote {result.onnx_path} and {result.model_dir / 'config.pbtxt'}; {checked}")
    return EXIT_OK
