"""`tbotd models [status | report --out DIR] --config FILE | --db FILE [--json]`: how each model
is doing live.

Read from the database (running daemon or not; SQLite's WAL lets a reader in beside the writer).
Plain `tbotd models` prints the rolling metrics per model and source over the last 50 / 200 /
1,000 scored predictions and since the model went live — hit rate ± its standard error beside the
always-long and contrarian baselines on the same bars, Brier score, expected calibration error
and ``sd`` band coverage ("n too small" where a number is not yet known). `status` adds each
model's health state and reasons, the top drifting input features, the error-change test and,
with --config, the local model's age and shelf life. `report --out DIR` draws them
(:mod:`tbotd.commands.models_report`).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK
from tbotd.commands.database import add_database_choice, database_path

if TYPE_CHECKING:
    from tbotd.config.settings import Settings
    from tbotd.monitoring.metrics import ModelMetrics
    from tbotd.store import Store

_ROLLING = ("n", "hit_rate", "always_long", "contrarian")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the models subcommand and its status / report subcommands."""
    p = sub.add_parser(
        "models",
        help="live accuracy, health and drift of each model against baselines",
        description="Rolling metrics of every model's graded predictions (per model and "
        "source) from the database of --config's store.path, or of --db. Subcommands: status "
        "(health state, drift, age), report --out DIR (PNG plots); retrain, rollback, recover "
        "--config FILE (model versions: README, Champion/challenger retraining).",
    )
    add_database_choice(p, required=False)
    p.add_argument("--json", action="store_true", help='JSON: {"models": [...]}')
    p.set_defaults(handler=run)
    views = p.add_subparsers(dest="view", metavar="{status,report,retrain,rollback,recover}")
    status = views.add_parser("status", help="each model's state, rolling metrics, drift, age")
    add_database_choice(status)
    status.add_argument("--json", action="store_true", help='JSON: {"models": [...]}')
    status.set_defaults(handler=run_status)
    report = views.add_parser("report", help="PNG: rolling hit rate, reliability, PSI")
    add_database_choice(report)
    report.add_argument("--out", type=Path, required=True, metavar="DIR")
    report.set_defaults(handler=run_report)
    from tbotd.commands.models_retrain import register_views

    register_views(views)


def _open(args: argparse.Namespace) -> Store | None:
    db = database_path(args)
    if db is None:
        return None
    from tbotd.store import Store

    return Store.open(db, quick_check=False)  # a reader: no whole-file check to wait on


def run(args: argparse.Namespace) -> int:
    """Print every model's metrics as a table or JSON."""
    store = _open(args)
    if store is None:
        return EXIT_BAD_INPUT
    from tbotd.daemon.monitor import load_saved
    from tbotd.monitoring.report import models_json, table

    try:
        models = load_saved(store).metrics()  # what /status shows, read the same bounded way
    finally:
        store.close()
    if args.json:
        print(json.dumps({"models": models_json(models)}, indent=2))
    else:
        print(table(models))
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    """Each model's state, rolling metrics vs baselines, drift and age."""
    store = _open(args)
    if store is None:
        return EXIT_BAD_INPUT
    from tbotd.daemon.monitor import load_saved

    try:
        metrics, health = load_saved(store).metrics(), store.model_health()
    finally:
        store.close()
    settings = _settings(args)
    age = _age(settings) if settings is not None else {}
    models = status_json(metrics, health, age)
    local = _versions(settings) if settings is not None else {}
    if args.json:
        print(json.dumps({"models": models} | ({"local": local} if local else {}), indent=2))
    else:
        print(status_text(models))
        if local:
            print(versions_text(local))
    return EXIT_OK


def status_json(
    metrics: list[ModelMetrics],
    health: dict[tuple[str, str], dict[str, Any]],
    age: dict[str, Any],
) -> list[dict[str, Any]]:
    """One entry per model and source graded or assessed (see README: How is my model doing)."""
    from tbotd.monitoring.report import model_json

    by_key = {(m.model, m.source): model_json(m) for m in metrics}
    out = []
    for key in dict.fromkeys([*by_key, *health]):
        m = by_key.get(key, {"name": key[0], "source": key[1], "rolling": {}})
        h = health.get(key, {})
        rolling = {
            w: {k: v["value"] if isinstance(v, dict) else v for k, v in stats.items()
                if k in _ROLLING} | {"hit_rate_se": stats["hit_rate"]["se"]}
            for w, stats in m["rolling"].items()
        }  # fmt: skip
        entry = {
            "name": key[0],
            "source": key[1],
            "state": h.get("state", "healthy"),
            "reasons": h.get("reasons", []),
            "rolling": rolling,
            "drift": h.get("drift", {"available": False}),
            "error_change": h.get("error_change"),
            "assessed_at": h.get("updated_at"),
        }
        if age.get("model") == key[0]:
            entry |= {k: v for k, v in age.items() if k != "model"}
        out.append(entry)
    return out


def _settings(args: argparse.Namespace) -> Settings | None:
    """The config given with --config (None with --db): read once for the age and versions."""
    if getattr(args, "config", None) is None:
        return None
    from tbotd.config import load_settings

    return load_settings(args.config)


def _age(settings: Settings) -> dict[str, Any]:
    """The configured local model's training end, age and shelf life."""
    from datetime import UTC

    from tbotd.ml.errors import ModelLoadError
    from tbotd.ml.manifest import read_manifest

    if settings.ml.models_dir is None:
        return {}
    try:
        manifest = read_manifest(settings.ml.models_dir, check_weights=False)
    except ModelLoadError:
        return {}
    end = (manifest.training.get("window") or {}).get("end")
    if not isinstance(end, str):
        return {"model": manifest.model_version}
    days = (datetime.now(UTC) - datetime.fromisoformat(end)).total_seconds() / 86_400
    limit = settings.ml.max_model_age_days
    return {
        "model": manifest.model_version,
        "trained_until": end,
        "age_days": round(days, 2),
        "max_model_age_days": limit,
        "expired": limit is not None and days > limit,
    }


def _versions(settings: Settings) -> dict[str, Any]:
    """The configured models directory's live and previous versions, as retraining and
    `tbotd models rollback` left them."""
    from tbotd.ml.versions import Layout, kept

    live = settings.ml.models_dir
    if live is None:
        return {}
    layout = Layout(live)
    return {
        "models_dir": str(live),
        "live_version": layout.live_name(),
        "previous_version": layout.previous_name(),
        "versions": kept(live),
    }


def versions_text(local: dict[str, Any]) -> str:
    """The terminal view of :func:`_versions`."""
    if local["live_version"] is None:
        return f"{local['models_dir']}: a plain directory (no retrained versions yet)"
    previous = local["previous_version"] or "none"
    return (
        f"{local['models_dir']} -> {local['live_version']} (previous: {previous}; "
        f"{len(local['versions'])} kept)"
    )


def status_text(models: list[dict[str, Any]]) -> str:
    """The terminal view of :func:`status_json`."""
    if not models:
        return "no graded or assessed model yet"
    lines = []
    for m in models:
        lines.append(f"{m['name']} ({m['source']}): {m['state'].upper()}")
        lines.extend(f"  - {r}" for r in m["reasons"])
        if "age_days" in m:
            limit = m["max_model_age_days"]
            shelf = f", shelf life {limit:g} days" if limit is not None else ""
            lines.append(f"  trained until {m['trained_until']}: {m['age_days']:.1f} days{shelf}")
        for w, r in m["rolling"].items():
            lines.append(
                f"  {w:>5}: n {r['n']:>5}  hit {_pct(r['hit_rate'])}  always long "
                f"{_pct(r['always_long'])}  contrarian {_pct(r['contrarian'])}"
            )
        top = m["drift"].get("top") if m["drift"] else None
        if top:
            lines.append("  PSI: " + ", ".join(f"{name} {psi:.3f}" for name, psi in top))
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n too small" if value is None else f"{100 * value:5.1f}%"


def run_report(args: argparse.Namespace) -> int:
    """Write the PNG report of every model into --out."""
    store = _open(args)
    if store is None:
        return EXIT_BAD_INPUT
    from tbotd.commands.models_report import write_report

    try:
        written = write_report(store, args.out)
    finally:
        store.close()
    for path in written:
        print(path)
    if not written:
        print("no graded predictions yet: nothing to plot")
    return EXIT_OK
