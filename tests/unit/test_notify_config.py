"""Notification targets are secrets: parsed, checked and reported without ever being shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tbotd.config import ConfigInvalidError, load_settings, secret_values
from tbotd.config.notify import parse_target_urls, secret_parts
from tbotd.domain.notices import NoticeKind, Severity
from tests.conftest import RunTbotd
from tests.unit.test_config import MINIMAL, write

TOKEN = "123456789:AAFsecretTelegramBotToken"
WEBHOOK_ID = "918273645546372819"  # a Discord URL without its token: apprise cannot use it


def problems(path: Path, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigInvalidError) as info:
        load_settings(path, env)
    return [str(p) for p in info.value.problems]


def test_targets_are_named_by_the_operator_or_by_their_scheme() -> None:
    """``name=URL`` names a target; others are called by scheme (numbered when repeated);
    comment lines and blank space are ignored."""
    text = f"# phones\nphone=tgram://{TOKEN}/42\n json://h/a  json://h/b\n\n"
    targets = parse_target_urls(text)
    assert [(t.name, t.scheme, t.entry) for t in targets] == [
        ("phone", "tgram", 1),
        ("json", "json", 2),
        ("json-2", "json", 3),
    ]
    assert TOKEN not in repr(targets[0])
    assert str(targets[0]) == "phone (tgram)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{TOKEN}", "entry 1 is not a URL"),
        (f"a=json://h/x a=tgram://{TOKEN}/1", "the name 'a' is given to two targets"),
    ],
)
def test_a_malformed_entry_is_named_never_shown(text: str, message: str) -> None:
    """The error names the entry; the token is not in it."""
    with pytest.raises(ValueError, match=message) as info:
        parse_target_urls(text)
    assert TOKEN not in str(info.value)


@given(secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8))
def test_no_parse_error_ever_quotes_an_entry(secret: str) -> None:
    """Whatever an entry holds, a parse error does not repeat it."""
    assert secret not in parse_error(f"x://{secret} {secret}")


def parse_error(text: str) -> str:
    """The message parsing ``text`` fails with ("" when it parses)."""
    try:
        parse_target_urls(text)
    except ValueError as e:
        return str(e)
    return ""


def test_every_part_that_may_be_a_token_is_redacted() -> None:
    """Bot tokens in the host position, webhook paths, passwords and query values."""
    assert {"123456789", "AAFsecretTelegramBotToken"} <= secret_parts(f"tgram://{TOKEN}/42")
    parts = secret_parts(
        "jsons://user:pw-1@hooks.example.com/api/webhook/abcdef123456?key=v4lue99x"
    )
    assert {"pw-1", "abcdef123456", "v4lue99x"} <= parts
    assert "hooks.example.com" not in parts
    assert "api" not in parts


def test_a_url_apprise_cannot_use_is_refused_naming_the_setting(tmp_path: Path) -> None:
    """An unknown scheme and a malformed Telegram URL: errors name notify.urls, the entry and
    the scheme, and show the value as ***."""
    path = write(tmp_path, MINIMAL)
    env = {"TBOTD_NOTIFY__URLS": f"nosuch://{TOKEN}"}
    [problem] = problems(path, env)
    assert "notify.urls = ***" in problem
    assert "no scheme 'nosuch'" in problem
    env = {"TBOTD_NOTIFY__URLS": f"json://h/x discord://{WEBHOOK_ID}"}
    [problem] = problems(path, env)
    assert "entry 2, target discord (discord)" in problem
    assert WEBHOOK_ID not in problem


def test_urls_in_the_config_file_are_refused(tmp_path: Path) -> None:
    """Secrets only come from the environment or systemd credentials."""
    path = write(tmp_path, MINIMAL + f'[notify]\nurls = "tgram://{TOKEN}/1"\n')
    [problem] = problems(path, {})
    assert "notify.urls = ***" in problem
    assert "TBOTD_NOTIFY__URLS" in problem
    assert TOKEN not in problem


def test_urls_come_from_the_systemd_credential(tmp_path: Path) -> None:
    """``notify_urls`` in $CREDENTIALS_DIRECTORY, one per line; every part is redacted."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "notify_urls").write_text(f"phone=tgram://{TOKEN}/42\njson://h/hook\n")
    settings = load_settings(write(tmp_path, MINIMAL), {"CREDENTIALS_DIRECTORY": str(creds)})
    assert [t.name for t in settings.notify.target_urls()] == ["phone", "json"]
    assert "AAFsecretTelegramBotToken" in secret_values(settings)


def test_filters_must_name_configured_targets_and_known_kinds(tmp_path: Path) -> None:
    """A filter for a target that does not exist, an unknown kind, a bad summary time."""
    path = write(tmp_path, MINIMAL + '[notify.targets.pager]\nmin_severity = "critical"\n')
    [problem] = problems(path, {"TBOTD_NOTIFY__URLS": "json://h/x"})
    assert "notify.targets names pager" in problem
    assert "its targets: json" in problem
    path = write(tmp_path, MINIMAL + '[notify]\nkinds = ["entry", "moon"]\n')
    assert any("notify.kinds" in p for p in problems(path, {}))
    path = write(tmp_path, MINIMAL + '[notify]\ndaily_summary_utc = "25:00"\n')
    assert any("notify.daily_summary_utc" in p and "HH:MM" in p for p in problems(path, {}))


def test_a_target_gets_its_own_filter_or_the_default(tmp_path: Path) -> None:
    """``[notify.targets.NAME]`` for that target; ``[notify]``'s filter for the others."""
    path = write(
        tmp_path,
        MINIMAL + '[notify]\nexclude_kinds = ["daily_summary"]\n'
        '[notify.targets.pager]\nmin_severity = "critical"\nkinds = ["stop_loss"]\n',
    )
    env = {"TBOTD_NOTIFY__URLS": "pager=json://h/p json://h/all"}
    notify = load_settings(path, env).notify
    assert notify.filter_for("pager").min_severity is Severity.CRITICAL
    assert notify.filter_for("pager").kinds == (NoticeKind.STOP_LOSS,)
    assert notify.filter_for("json").exclude_kinds == (NoticeKind.DAILY_SUMMARY,)


def test_check_config_exits_2_naming_the_setting_without_the_url(
    tmp_path: Path, run_tbotd: RunTbotd
) -> None:
    """Text and JSON: exit 2, ``notify.urls`` named, the URL's secret nowhere."""
    path = write(tmp_path, MINIMAL)
    env = {"TBOTD_NOTIFY__URLS": f"tgram://{TOKEN}/42 discord://{WEBHOOK_ID}"}
    done = run_tbotd("check-config", str(path), env=env)
    assert done.returncode == 2
    assert "notify.urls" in done.stderr
    as_json = run_tbotd("check-config", str(path), "--json", env=env)
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["problems"][0]["key"] == "notify.urls"
    for output in (done.stdout + done.stderr, as_json.stdout + as_json.stderr):
        assert "AAFsecretTelegramBotToken" not in output
        assert WEBHOOK_ID not in output
    ok = run_tbotd("check-config", str(path), env={"TBOTD_NOTIFY__URLS": f"tgram://{TOKEN}/42"})
    assert ok.returncode == 0
    assert 'urls = "**********"' in ok.stdout
    assert "AAFsecret" not in ok.stdout
