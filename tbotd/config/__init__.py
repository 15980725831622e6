"""Configuration: the frozen settings tree and its loader (TOML file + TBOTD_* environment)."""

from tbotd.config.loader import ConfigInvalidError, ConfigProblem, load_settings
from tbotd.config.notify import NotifyConfig, TargetFilter, TargetURL, secret_parts
from tbotd.config.settings import (
    SECRET_FIELDS,
    Device,
    ExchangeConfig,
    ExecutionConfig,
    LogFormat,
    MLConfig,
    OpsConfig,
    Settings,
    WireFormat,
)
from tbotd.config.strategy import StrategyConfig, StrategyMode
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
    "NotifyConfig",
    "OnNeutral",
    "OpsConfig",
    "Settings",
    "StrategyConfig",
    "StrategyMode",
    "TargetFilter",
    "TargetURL",
    "WireFormat",
    "load_settings",
    "secret_parts",
    "secret_values",
]


def secret_values(settings: Settings) -> list[str]:
    """Every secret value in ``settings``: the log redactor scrubs these from all output (each
    notification URL, and every part of it that may be a token, too)."""
    values = []
    for section, key in SECRET_FIELDS:
        secret = getattr(getattr(settings, section), key)
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    for target in settings.notify.target_urls():
        values.extend(secret_parts(target.url))
    return values
