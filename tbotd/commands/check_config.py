"""`tbotd check-config FILE [--json]`: validate a config and print the effective configuration."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK

if TYPE_CHECKING:
    from tbotd.config import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the check-config subcommand."""
    check = sub.add_parser(
        "check-config",
        help="validate a config file and print the effective configuration",
        description="Validate FILE with TBOTD_* environment overrides applied. Exit 0 and print "
        "the effective config (secrets masked), or exit 2 listing every problem.",
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate ``args.file``; print the effective config or every problem."""
    from tbotd.config import ConfigInvalidError, load_settings

    try:
        settings = load_settings(args.file)
    except ConfigInvalidError as e:
        if args.json:
            problems = [vars(p) for p in e.problems]
            print(json.dumps({"ok": False, "file": str(args.file), "problems": problems}))
        else:
            print(f"{args.file}: {len(e.problems)} problem(s):", file=sys.stderr)
            for problem in e.problems:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    runtime = runtime_problems(settings)
    if runtime:
        if args.json:
            problems = [{"key": key, "expected": why} for key, why in runtime]
            print(json.dumps({"ok": False, "file": str(args.file), "problems": problems}))
        else:
            print(f"{args.file}: {len(runtime)} problem(s):", file=sys.stderr)
            for key, why in runtime:
                print(f"  {args.file}: {key}: {why}", file=sys.stderr)
        return EXIT_BAD_INPUT
    effective = settings.model_dump(mode="json")
    if args.json:
        print(json.dumps({"ok": True, "file": str(args.file), "config": effective}))
    else:
        print(f"# {args.file}: ok (effective configuration, secrets masked)")
        print(as_toml(effective))
    return EXIT_OK


def runtime_problems(settings: Settings) -> list[tuple[str, str]]:
    """What the config's shape allows but a run could not trade with: a models directory that
    is missing, unreadable, for another timeframe or needing more history than the daemon
    keeps (the daemon would start and decide neutral every candle)."""
    found = _meta_label_problems(settings)
    models_dir = settings.ml.models_dir
    if models_dir is None:
        return found
    from tbotd.ml.errors import ModelLoadError
    from tbotd.ml.manifest import history_shortfall, read_manifest

    if not models_dir.is_dir():
        why = f"{models_dir} is not a directory (train one: tbotd train)"
        return [*found, ("ml.models_dir", why)]
    try:
        manifest = read_manifest(models_dir)
    except ModelLoadError as e:
        return [*found, ("ml.models_dir", str(e))]
    if manifest.timeframe != settings.exchange.timeframe:
        why = f"{models_dir} holds {manifest.timeframe} models, exchange.timeframe is "
        found.append(("ml.models_dir", why + settings.exchange.timeframe))
    short = history_shortfall(settings.daemon.history_bars, manifest)
    if short is not None:
        found.append(("daemon.history_bars", short))
    expired = _expired(manifest.training, settings.ml.max_model_age_days)
    if expired is not None:
        found.append(("ml.max_model_age_days", f"{models_dir}: {expired}; retrain it"))
    return found


def _expired(training: dict[str, Any], max_age_days: float | None) -> str | None:
    """The local models are already past their shelf life: they would abstain every candle."""
    from datetime import UTC, datetime

    from tbotd.predictor.expiry import expiry_of

    end = (training.get("window") or {}).get("end")
    if not isinstance(end, str):
        return None
    expiry = expiry_of(
        "the local models", datetime.fromisoformat(end), datetime.now(UTC), max_age_days
    )
    return None if expiry is None else str(expiry)


def _meta_label_problems(settings: Settings) -> list[tuple[str, str]]:
    """A meta-label gate whose model would not load vetoes every setup (``meta_missing``):
    refuse it here, as the run would otherwise trade nothing without saying so."""
    strategy = settings.strategy
    if str(getattr(getattr(strategy, "enhance", None), "secondary_model", "")) != "meta_label":
        return []
    models_dir = getattr(getattr(strategy, "meta_label", None), "models_dir", None)
    if models_dir is None:
        return []  # the config itself refuses this
    import torch

    from tbotd.ml.errors import ModelLoadError
    from tbotd.ml.meta.model import load_meta

    try:
        load_meta(Path(models_dir), torch.device("cpu"))
    except ModelLoadError as e:
        return [("strategy.meta_label.models_dir", str(e))]
    return []


def as_toml(config: dict[str, Any]) -> str:
    """A readable TOML rendering of the effective config (values as JSON literals)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, values in config.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None)
    return "\n".join(lines)
