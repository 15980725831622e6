"""Configs load from TOML with env overrides; every problem is reported with file, key and value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tbotd.config import ConfigInvalidError, StrategyMode, load_settings, secret_values
from tbotd.domain import MarketType, TradingMode
from tests.conftest import CONFIGS, RunTbotd

MINIMAL = """
[exchange]
market_type = "linear"
symbols = ["BTC/USDT:USDT"]
[strategy]
mode = "ml_usdt_directional"
share_class = "USDT"
initial_capital = "10000"
threshold = 0.7
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigInvalidError) as info:
        load_settings(path, env or {})
    return [(p.source, p.key, p.value) for p in info.value.problems]


def test_shipped_mode_configs_carry_the_design_values() -> None:
    """The two strategy modes are configs with the capital, market and threshold of README:
    Strategies."""
    usdt = load_settings(CONFIGS / "ml_usdt_directional.toml", {})
    btc = load_settings(CONFIGS / "ml_btc_directional.toml", {})
    assert (usdt.strategy.mode, usdt.exchange.market_type) == (
        StrategyMode.ML_USDT_DIRECTIONAL,
        MarketType.LINEAR,
    )
    assert (str(usdt.strategy.initial_capital), usdt.strategy.threshold) == ("10000", 0.70)
    assert usdt.exchange.symbols == ("BTC/USDT:USDT",)
    assert (btc.strategy.mode, btc.exchange.market_type) == (
        StrategyMode.ML_BTC_DIRECTIONAL,
        MarketType.INVERSE,
    )
    assert (str(btc.strategy.initial_capital), btc.strategy.threshold) == ("1.0", 0.65)
    assert btc.exchange.symbols == ("BTC/USD:BTC",)
    assert load_settings(CONFIGS / "demo.toml", {}).execution.mode is TradingMode.PAPER


def test_unknown_key_names_file_and_dotted_key(tmp_path: Path) -> None:
    """A typo in a section is an error naming the file and the key."""
    path = write(tmp_path, MINIMAL + "tresh = 0.5\n")
    assert problems(path) == [(str(path), "strategy.tresh", "0.5")]


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    """A value of the wrong type is reported with the value that was given."""
    path = write(tmp_path, MINIMAL.replace("threshold = 0.7", 'threshold = "high"'))
    assert problems(path) == [(str(path), "strategy.threshold", "'high'")]


def test_missing_required_value_is_reported(tmp_path: Path) -> None:
    """Leaving out a required key says which one."""
    path = write(tmp_path, MINIMAL.replace('share_class = "USDT"\n', ""))
    assert problems(path) == [(str(path), "strategy.share_class", "")]


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    """Several mistakes produce several problems, not just the first."""
    text = MINIMAL.replace("threshold = 0.7", "threshold = 7") + "[execution]\nleverage = 0\n"
    keys = {key for _, key, _ in problems(write(tmp_path, text))}
    assert keys == {"strategy.threshold", "execution.leverage"}


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """TBOTD_SECTION__KEY wins over the file."""
    path = write(tmp_path, MINIMAL)
    settings = load_settings(path, {"TBOTD_EXECUTION__LEVERAGE": "3"})
    assert settings.execution.leverage == 3


def test_bad_environment_override_names_the_variable(tmp_path: Path) -> None:
    """A bad or unknown TBOTD_ variable is blamed, not the file."""
    path = write(tmp_path, MINIMAL)
    env = {"TBOTD_EXECUTION__LEVERAGE": "500", "TBOTD_EXECUTION__LEVERGAE": "2"}
    found = problems(path, env)
    assert ("environment TBOTD_EXECUTION__LEVERAGE", "execution.leverage", "'500'") in found
    assert ("environment TBOTD_EXECUTION__LEVERGAE", "execution.levergae", "") in found


def test_secrets_come_from_environment_and_credentials(tmp_path: Path) -> None:
    """API keys from TBOTD_ variables, the ML token from BASIS_ML_API_TOKEN or systemd."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ops_token").write_text("ops-token-from-systemd-credential\n")
    env = {
        "TBOTD_EXCHANGE__API_KEY": "key-123",
        "TBOTD_EXCHANGE__API_SECRET": "secret-456",
        "BASIS_ML_API_TOKEN": "ml-token-789",
        "CREDENTIALS_DIRECTORY": str(creds),
    }
    settings = load_settings(write(tmp_path, MINIMAL), env)
    assert sorted(secret_values(settings)) == sorted(
        ["key-123", "secret-456", "ml-token-789", "ops-token-from-systemd-credential"]
    )
    assert "key-123" not in repr(settings)
    assert "ml-token-789" not in settings.model_dump_json()


def test_secrets_in_the_file_are_refused(tmp_path: Path) -> None:
    """A secret written into a config file is an error, and its value is never echoed."""
    path = write(tmp_path, MINIMAL.replace("[strategy]", 'api_secret = "hunter2"\n[strategy]'))
    assert problems(path) == [(str(path), "exchange.api_secret", "***")]


def test_live_mode_without_keys_is_refused(tmp_path: Path) -> None:
    """Live trading needs exchange credentials."""
    path = write(tmp_path, MINIMAL + '[execution]\nmode = "live"\n')
    with pytest.raises(ConfigInvalidError, match="live mode needs"):
        load_settings(path, {})


def test_ml_token_is_refused_over_plain_http(tmp_path: Path) -> None:
    """The ML token never travels unencrypted except to loopback."""
    remote = '[ml]\nremote_url = "http://ml.example.com"\n'
    with pytest.raises(ConfigInvalidError, match="only sent over https"):
        load_settings(write(tmp_path, MINIMAL + remote), {"BASIS_ML_API_TOKEN": "t0ken"})
    local = '[ml]\nremote_url = "http://127.0.0.1:9000"\n'
    assert load_settings(write(tmp_path, MINIMAL + local), {"BASIS_ML_API_TOKEN": "t0ken"})


def test_settle_currency_must_match_share_class(tmp_path: Path) -> None:
    """A BTC-settled symbol in a USDT share class is refused."""
    path = write(tmp_path, MINIMAL.replace('["BTC/USDT:USDT"]', '["BTC/USD:BTC"]'))
    with pytest.raises(ConfigInvalidError, match="settles in BTC"):
        load_settings(path, {})


@pytest.mark.parametrize("name", ["ml_usdt_directional.toml", "ml_btc_directional.toml"])
def test_check_config_accepts_shipped_configs(
    run_tbotd: RunTbotd, name: str, models_dir: Path
) -> None:
    """`tbotd check-config` exits 0 on the shipped mode configs (with trained models)."""
    result = run_tbotd(
        "check-config", str(CONFIGS / name), env={"TBOTD_ML__MODELS_DIR": str(models_dir)}
    )
    assert result.returncode == 0, result.stderr
    assert "[strategy]" in result.stdout


def test_check_config_refuses_what_the_run_could_not_trade_with(
    run_tbotd: RunTbotd, tmp_path: Path
) -> None:
    """A missing models directory, an open ops port without a token, a short token: exit 2,
    each named."""
    missing = run_tbotd(
        "check-config", str(CONFIGS / "ml_usdt_directional.toml"),
        env={"TBOTD_ML__MODELS_DIR": str(tmp_path / "none")},
    )  # fmt: skip
    assert missing.returncode == 2
    assert "ml.models_dir" in missing.stderr
    assert str(tmp_path / "none") in missing.stderr
    open_port = problems(write(tmp_path, MINIMAL + '[ops]\nhost = "0.0.0.0"\n'))
    assert [key for _, key, _ in open_port] == ["ops"]
    with pytest.raises(ConfigInvalidError, match="shorter than 24"):
        load_settings(write(tmp_path, MINIMAL), {"TBOTD_OPS__TOKEN": "short"})


def test_check_config_refuses_local_models_already_past_their_shelf_life(
    run_tbotd: RunTbotd, models_dir: Path
) -> None:
    """Models older than ml.max_model_age_days would abstain on every candle: exit 2, named."""
    env = {"TBOTD_ML__MODELS_DIR": str(models_dir), "TBOTD_ML__MAX_MODEL_AGE_DAYS": "1"}
    old = run_tbotd("check-config", str(CONFIGS / "ml_usdt_directional.toml"), env=env)
    assert old.returncode == 2
    assert "ml.max_model_age_days" in old.stderr
    assert "days old" in old.stderr
    env["TBOTD_ML__MAX_MODEL_AGE_DAYS"] = "3650"
    fresh = run_tbotd("check-config", str(CONFIGS / "ml_usdt_directional.toml"), env=env)
    assert fresh.returncode == 0, fresh.stderr


def test_check_config_masks_secrets(run_tbotd: RunTbotd, models_dir: Path) -> None:
    """The effective config never shows a secret's value."""
    env = {
        "TBOTD_EXCHANGE__API_KEY": "planted-key-AAA",
        "BASIS_ML_API_TOKEN": "planted-tok-BBB",
        "TBOTD_ML__MODELS_DIR": str(models_dir),
    }
    result = run_tbotd("check-config", str(CONFIGS / "ml_usdt_directional.toml"), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "planted" not in result.stdout + result.stderr
    config = json.loads(result.stdout)["config"]
    assert config["exchange"]["api_key"] == "**********"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (MINIMAL + "colour = 1\n", "strategy.colour"),
        (MINIMAL.replace("threshold = 0.7", "threshold = [1]"), "strategy.threshold"),
        (MINIMAL.replace('mode = "ml_usdt_directional"\n', ""), "strategy.mode"),
        ("[exchange\n", ""),
    ],
)
def test_check_config_exits_2_without_traceback(
    run_tbotd: RunTbotd, tmp_path: Path, text: str, key: str
) -> None:
    """Unknown key, wrong type, missing value or broken TOML: exit 2, file and key, no traceback."""
    path = write(tmp_path, text)
    result = run_tbotd("check-config", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert key in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_config_json_lists_problems(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """With --json the problems are data."""
    result = run_tbotd("check-config", str(write(tmp_path, MINIMAL + "x = 1\n")), "--json")
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert body["ok"] is False
    assert body["problems"][0]["key"] == "strategy.x"


def test_missing_file_exits_2(run_tbotd: RunTbotd, tmp_path: Path) -> None:
    """A config path that does not exist is bad input."""
    result = run_tbotd("check-config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TBOTD_EXCHANGE__SYMBOLS", "BTC/USDT:USDT"),
        ("TBOTD_EXCHANGE__SYMBOLS", "[BTC/USDT:USDT"),
        ("TBOTD_EXCHANGE", "not json"),
    ],
)
def test_a_list_or_table_variable_that_is_not_json_is_explained(
    tmp_path: Path, name: str, value: str
) -> None:
    """A list-valued key set from the environment without JSON is a named problem (regression:
    pydantic-settings' SettingsError escaped as a traceback)."""
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigInvalidError) as info:
        load_settings(path, {name: value})
    [problem] = info.value.problems
    assert problem.source == f"environment {name}"
    assert "JSON" in problem.expected


@pytest.mark.parametrize(
    "extra",
    [
        "[ml]\ndeadline_s = 0.5\n",  # a section-wide check (reserve below deadline)
        '[execution]\nmode = "live"\n',  # a config-wide check (live needs both keys)
    ],
)
def test_a_problem_with_a_whole_section_never_shows_its_secrets(tmp_path: Path, extra: str) -> None:
    """Section- and config-wide checks name the section, not its contents (regression: the ml
    section, token included, was printed as the problem's value)."""
    path = write(tmp_path, MINIMAL + extra)
    env = {"BASIS_ML_API_TOKEN": "PLANTED-tok", "TBOTD_EXCHANGE__API_KEY": "PLANTED-key"}
    with pytest.raises(ConfigInvalidError) as info:
        load_settings(path, env)
    [problem] = info.value.problems
    assert "PLANTED" not in str(info.value)
    assert not problem.value.startswith("{")


def test_a_misspelt_secret_in_a_file_is_reported_masked(tmp_path: Path) -> None:
    """``[ml] tokn = "..."`` is an unknown key whose value looks like a secret: masked."""
    path = write(tmp_path, MINIMAL + '[ml]\napi_tokn = "PLANTED-tok"\n')
    assert problems(path) == [(str(path), "ml.api_tokn", "***")]


def test_a_misspelt_key_is_answered_with_the_nearest_real_one(tmp_path: Path) -> None:
    """``threshhold`` → "did you mean strategy.threshold?"; nothing near → no guess."""
    path = write(tmp_path, MINIMAL + "threshhold = 0.5\nzzz = 1\n")
    with pytest.raises(ConfigInvalidError) as info:
        load_settings(path, {})
    said = {p.key: p.expected for p in info.value.problems}
    assert said["strategy.threshhold"] == "unknown key — did you mean strategy.threshold?"
    assert "did you mean" not in said["strategy.zzz"]


def test_a_misspelt_secret_is_named_as_a_secret_to_set_elsewhere(tmp_path: Path) -> None:
    """``[ml] tokn`` in a file: masked, and the answer names ml.token as a secret with its
    environment variable."""
    path = write(tmp_path, MINIMAL + '[ml]\ntokn = "PLANTED-tok"\n')
    with pytest.raises(ConfigInvalidError) as info:
        load_settings(path, {})
    (problem,) = info.value.problems
    assert problem.value == "***"
    assert "did you mean ml.token? It is a secret" in problem.expected
    assert "TBOTD_ML__TOKEN" in problem.expected
