"""`tbotd notify test`: a test message to every target, each reported ok or error, exit 0/1/2."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from benchmarks.reliability.webhook import Receiver, receiver
from tests.conftest import REPO, tbotd_env
from tests.unit.test_config import MINIMAL

SECRET_PATH = "hook-4f9d2c7e1a8b"  # a webhook's path is its secret


async def notify_test(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI as a process (the receiver keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tbotd",
        "notify",
        "test",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=tbotd_env(env),
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with receiver() as r:
        yield r


async def test_every_target_is_reported_and_one_failure_exits_1(rx: Receiver) -> None:
    """A working and a refusing target: one line each, by name and scheme, exit 1; the URL's
    secret path is not shown; the working target got the test message."""
    rx.modes[SECRET_PATH + "x"] = "refuse"
    urls = f"{rx.url(SECRET_PATH, 'phone')} {rx.url(SECRET_PATH + 'x', 'pager')}"
    code, out, err = await notify_test(env={"TBOTD_NOTIFY__URLS": urls})
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].startswith("phone (json): ok")
    assert lines[1].startswith("pager (json): error: Failed to send JSON POST notification")
    assert "401" in lines[1]
    assert SECRET_PATH not in out + err
    [message] = rx.of(SECRET_PATH)
    assert (message.kind, message.fields["target"]) == ("test", "phone")


async def test_all_targets_ok_exits_0_with_a_config_and_json(rx: Receiver, tmp_path: Path) -> None:
    """With --config the daemon's own loading is used (its instance names the message)."""
    config = tmp_path / "c.toml"
    config.write_text('instance = "night-owl"\n' + MINIMAL)
    env = {"TBOTD_NOTIFY__URLS": rx.url(SECRET_PATH)}
    code, out, _ = await notify_test("--config", str(config), "--json", env=env)
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert [(t["name"], t["ok"]) for t in report["targets"]] == [("json", True)]
    assert rx.of(SECRET_PATH)[0].title == "[night-owl] INFO test"


async def test_no_target_or_a_bad_one_exits_2(rx: Receiver) -> None:
    """Nothing configured, or a URL apprise cannot use: exit 2 with the reason."""
    code, _, err = await notify_test(env={})
    assert code == 2
    assert "no notification target" in err
    code, _, err = await notify_test(env={"TBOTD_NOTIFY__URLS": f"nosuch://{SECRET_PATH}"})
    assert code == 2
    assert "no scheme 'nosuch'" in err
    assert SECRET_PATH not in err
