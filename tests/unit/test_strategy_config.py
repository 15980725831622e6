"""``strategy.kind`` and its sections: every shipped config validates, defaults keep old configs
working, and every bad value is exit 2 naming its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tbotd.config import ConfigInvalidError, load_settings
from tbotd.config.strategy import MLEnhancedConfig
from tbotd.strategy.build import build_strategy
from tbotd.strategy.kinds import EnhanceMode, ReplaceOn, StrategyKind
from tests.conftest import CONFIGS, RunTbotd

BASE = """
[exchange]
market_type = "linear"
symbols = ["BTC/USDT:USDT"]
[strategy]
mode = "ml_usdt_directional"
share_class = "USDT"
initial_capital = "10000"
threshold = 0.55
"""
ENHANCED = (
    BASE
    + """kind = "ml_enhanced"
[strategy.classic]
name = "mean_reversion"
[strategy.enhance]
mode = "boost"
"""
)
NAMES = {
    "ml_usdt_directional.toml": "ml_directional",
    "ml_btc_directional.toml": "ml_directional",
    "demo.toml": "ml_directional",
    "classic_mean_reversion.toml": "classic:mean_reversion",
    "classic_momentum.toml": "classic:momentum",
    "ml_enhanced_mean_reversion.toml": "ml_enhanced:boost:mean_reversion",
    "ml_enhanced_momentum.toml": "ml_enhanced:filter:momentum",
    "ml_enhanced_replace.toml": "ml_enhanced:replace:mean_reversion",
    "ml_enhanced_hybrid.toml": "ml_enhanced:hybrid:momentum",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return path


def keys(path: Path, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigInvalidError) as info:
        load_settings(path, env or {})
    return [(p.key, p.value) for p in info.value.problems]


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_shipped_config_builds_its_strategy(name: str) -> None:
    """Each config in configs/ validates and builds the strategy its name says (a config
    without ``kind`` is the ML directional strategy, as before kinds existed)."""
    settings = load_settings(CONFIGS / name, {})
    assert build_strategy(settings).name == NAMES[name]


def test_check_config_accepts_every_kind_and_mode(run_tbotd: RunTbotd, models_dir: Path) -> None:
    """`tbotd check-config` exits 0 on the classic and enhanced configs (with trained models)
    and shows their sections in the effective config."""
    result = run_tbotd(
        "check-config", str(CONFIGS / "ml_enhanced_replace.toml"), "--json",
        env={"TBOTD_ML__MODELS_DIR": str(models_dir)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)["config"]["strategy"]
    assert config["kind"] == "ml_enhanced"
    assert config["classic"]["name"] == "mean_reversion"
    assert config["enhance"] == {
        "mode": "replace",
        "ml_weight": 0.3,
        "confidence_threshold": 0.6,
        "fail_open": False,
        "replace_on": "classic_bars",
        "secondary_model": "none",
    }


BAD = [
    ('kind = "momentum"\n', ("strategy.kind", "'momentum'")),
    ('[strategy.enhance]\nmode = "blend"\n', ("strategy.enhance.mode", "'blend'")),
    (
        '[strategy.enhance]\nmode = "boost"\nml_weight = 1.5\n',
        ("strategy.enhance.ml_weight", "1.5"),
    ),
    (
        '[strategy.enhance]\nmode = "filter"\nconfidence_threshold = -0.1\n',
        ("strategy.enhance.confidence_threshold", "-0.1"),
    ),
    (
        '[strategy.classic]\nname = "mean_reversion"\nbollinger_window_bars = 1\n',
        ("strategy.classic.bollinger_window_bars", "1"),
    ),
    (
        '[strategy.classic]\nname = "mean_reversion"\nbollinger_width_sd = -2.0\n',
        ("strategy.classic.bollinger_width_sd", "-2.0"),
    ),
    (
        '[strategy.classic]\nname = "momentum"\natr_window_bars = 0\n',
        ("strategy.classic.atr_window_bars", "0"),
    ),
    ('[strategy.classic]\nname = "breakout"\n', ("strategy.classic.name", "'breakout'")),
]


@pytest.mark.parametrize(("change", "expected"), BAD)
def test_bad_strategy_values_name_their_key(
    tmp_path: Path, change: str, expected: tuple[str, str]
) -> None:
    """An unknown kind or mode, a weight outside [0, 1], a window under 2 bars, a negative
    band: the problem names the dotted key and the value."""
    if change.startswith("kind"):
        text = BASE + change
    elif change.startswith("[strategy.enhance]"):
        text = BASE + 'kind = "ml_enhanced"\n[strategy.classic]\nname = "momentum"\n' + change
    else:
        text = BASE + 'kind = "classic"\n' + change
    assert expected in keys(write(tmp_path, text))


def test_check_config_exits_2_naming_the_key(tmp_path: Path, run_tbotd: RunTbotd) -> None:
    """The command line says it too: exit 2 and the key in the problem list."""
    path = write(tmp_path, ENHANCED.replace('mode = "boost"', 'mode = "boost"\nml_weight = 2'))
    result = run_tbotd("check-config", str(path))
    assert result.returncode == 2
    assert "strategy.enhance.ml_weight = 2" in result.stderr


def test_rules_that_make_no_sense_are_refused(tmp_path: Path) -> None:
    """A fast average not faster than the slow one, RSI levels the wrong way round, classic
    parameters on the ML-only kind, a classic kind without its table."""
    momentum = BASE + 'kind = "classic"\n[strategy.classic]\nname = "momentum"\n'
    assert keys(write(tmp_path, momentum + "fast_ema_bars = 60\n"))[0][0] == "strategy.classic"
    rsi = BASE + 'kind = "classic"\n[strategy.classic]\nname = "mean_reversion"\n'
    assert keys(write(tmp_path, rsi + "rsi_oversold = 80\n"))[0][0] == "strategy.classic"
    plain = BASE + '[strategy.classic]\nname = "momentum"\n'
    assert keys(write(tmp_path, plain)) == [("strategy.classic", "")]
    assert keys(write(tmp_path, BASE + 'kind = "classic"\n')) == [("strategy.classic", "")]


def test_environment_overrides_reach_every_kind(tmp_path: Path) -> None:
    """TBOTD_STRATEGY__* overrides the shared rules and the enhancement section of a union
    member; an unknown one is still an error."""
    path = write(tmp_path, ENHANCED)
    env = {
        "TBOTD_STRATEGY__THRESHOLD": "0.4",
        "TBOTD_STRATEGY__ENHANCE__MODE": "replace",
        "TBOTD_STRATEGY__ENHANCE__REPLACE_ON": "all_bars",
        "TBOTD_STRATEGY__CLASSIC__RSI_OVERSOLD": "25",
    }
    s = load_settings(path, env).strategy
    assert isinstance(s, MLEnhancedConfig)
    assert (s.kind, s.threshold) == (StrategyKind.ML_ENHANCED, 0.4)
    assert (s.enhance.mode, s.enhance.replace_on) == (EnhanceMode.REPLACE, ReplaceOn.ALL_BARS)
    assert s.classic.name == "mean_reversion"
    assert getattr(s.classic, "rsi_oversold") == 25  # noqa: B009 - a union member's field
    bad = keys(path, {"TBOTD_STRATEGY__ENHANCE__WEIGHT": "0.5"})
    assert ("strategy.enhance.weight", "") in bad
