"""Configuration: the frozen settings tree and its loader (TOML file + TBOTD_* environment)."""

from tbotd.config.loader import ConfigInvalidError, ConfigProblem, load_settings
from tbotd.config.settings import (
    SECRET_FIELDS,
    Device,
    ExchangeConfig,
    ExecutionConfig,
    LogFormat,
    MLConfig,
    OpsConfig,
    Settings,
    StrategyConfig,
    StrategyMode,
    WireFormat,
)
from tbotd.strategy.kinds import OnNeutral

__all__ = [
    "SECRET_FIELDS",
    "ConfigInvalidError",
    "ConfigProblem",
    "Device",
    "ExchangeConfig",
    "ExecutionConfig",
    "LogFormat",
    "MLConfig",
    "OnNeutral",
    "OpsConfig",
    "Settings",
    "StrategyConfig",
    "StrategyMode",
    "WireFormat",
    "load_settings",
    "secret_values",
]


def secret_values(settings: Settings) -> list[str]:
    """Every secret value in ``settings``: the log redactor scrubs these from all output."""
    values = []
    for section, key in SECRET_FIELDS:
        secret = getattr(getattr(settings, section), key)
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    return values
