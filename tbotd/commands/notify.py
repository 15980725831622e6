"""`tbotd notify test [--config FILE] [--json]`: one test message to every notification target.

Targets come from ``TBOTD_NOTIFY__URLS`` or the systemd credential ``notify_urls`` (with a config
file, exactly as `tbotd run` would load them). Each target is reported by name and scheme with
ok or its error — never its URL. Exit 0 when every target took the message, 1 when one did
not, 2 when the config (or the URLs) are invalid or name no target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tbotd.commands import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the notify subcommand."""
    notify = sub.add_parser(
        "notify",
        help="notifications: send a test message to every target",
        description="Notification targets (apprise URLs in TBOTD_NOTIFY__URLS or the "
        "notify_urls systemd credential).",
    )
    actions = notify.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test",
        help="send a test message to every target and report each one",
        description="Send one test message to every target (filters do not apply). Exit 0 when "
        "all took it, 1 when one did not, 2 on a bad config or no target.",
    )
    test.add_argument("--config", type=Path, metavar="FILE", help="the daemon's config file")
    test.add_argument("--json", action="store_true", help="print one JSON object")
    test.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the targets, send, report."""
    from pydantic import ValidationError

    from tbotd.config import ConfigInvalidError, NotifyConfig, load_settings

    instance = "tbotd"
    try:
        if args.config is not None:
            settings = load_settings(args.config)
            config, instance = settings.notify, settings.instance
        else:
            config = NotifyConfig(urls=_urls_from_environment())
    except ConfigInvalidError as e:
        return _bad(args, [str(p) for p in e.problems])
    except ValidationError as e:  # the URLs alone; the message names the entry, not the URL
        return _bad(args, [f"notify.urls: {_msg(err['msg'])}" for err in e.errors()])
    targets = config.target_urls()
    if not targets:
        why = (
            "no notification target: set TBOTD_NOTIFY__URLS or the notify_urls credential "
            "(one apprise URL per line, optionally name=URL)"
        )
        return _bad(args, [why])
    results = asyncio.run(_send_all(config, instance))
    ok = all(r["ok"] for r in results)
    if args.json:
        print(json.dumps({"ok": ok, "targets": results}))
    else:
        for r in results:
            verdict = "ok" if r["ok"] else f"error: {r['error']}"
            print(f"{r['name']} ({r['scheme']}): {verdict} ({r['seconds']:.2f} s)")
    return EXIT_OK if ok else EXIT_FAILURE


def _urls_from_environment() -> Any:
    """``TBOTD_NOTIFY__URLS``, else the credential file (the environment wins, as in run)."""
    from pydantic import SecretStr

    value = os.environ.get("TBOTD_NOTIFY__URLS", "")
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if not value and credentials:
        try:
            value = (Path(credentials) / "notify_urls").read_text(encoding="utf-8")
        except FileNotFoundError:
            value = ""
    return SecretStr(value) if value.strip() else None


async def _send_all(config: Any, instance: str) -> list[dict[str, Any]]:
    from tbotd.domain.notices import Notice, NoticeKind, Severity
    from tbotd.notify.render import render
    from tbotd.notify.targets import AppriseTarget, register_target_secrets

    urls = config.target_urls()
    register_target_secrets(urls)
    senders = [AppriseTarget(u, config.timeout_s) for u in urls]
    now = datetime.now(UTC)

    async def one(sender: AppriseTarget) -> dict[str, Any]:
        text = f"test message from tbotd {instance}: notifications reach {sender}"
        notice = Notice(
            NoticeKind.TEST, Severity.INFO, text, now, fields=(("target", sender.name),)
        )
        result = await sender.send(render(notice, instance), config.timeout_s)
        return {
            "name": sender.name,
            "scheme": sender.scheme,
            "ok": result.ok,
            "error": result.detail or None,
            "seconds": round(result.seconds, 3),
        }

    return list(await asyncio.gather(*(one(s) for s in senders)))


def _bad(args: argparse.Namespace, problems: list[str]) -> int:
    if args.json:
        print(json.dumps({"ok": False, "problems": problems}))
    else:
        print(f"tbotd notify test: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _msg(text: str) -> str:
    return text.removeprefix("Value error, ")
