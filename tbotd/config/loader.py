"""Load a TOML config with environment overrides, and explain every problem precisely.

A bad config must never reach the daemon, and its owner must not have to read a traceback: every
problem is reported with where it came from (file or environment variable), the dotted key, the
bad value (masked when secret) and what was expected.
"""

from __future__ import annotations

import contextvars
import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from tbotd.config.settings import SECRET_FIELDS, Settings
from tbotd.domain.errors import ConfigError

ENV_PREFIX = "TBOTD_"
ML_TOKEN_ENV = "BASIS_ML_API_TOKEN"  # noqa: S105 - the variable name, not a token
# systemd LoadCredential= names -> the secret they fill
CREDENTIAL_FILES: dict[str, tuple[str, str]] = {
    "exchange_api_key": ("exchange", "api_key"),
    "exchange_api_secret": ("exchange", "api_secret"),
    "basis_ml_api_token": ("ml", "token"),
    "ops_token": ("ops", "token"),
    "notify_urls": ("notify", "urls"),
}

# a misspelt secret (``[ml] tokn = "..."``) is an unknown key: its value is masked all the same
_SECRET_NAME = re.compile(r"(?i)(tok|secret|passw|key|credential|auth)")
_file_data: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("_file_data")
_secret_data: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("_secret_data")
_environ: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("_environ")


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where, which key, what value, what was expected."""

    source: str
    key: str
    value: str
    expected: str

    def __str__(self) -> str:
        key = self.key or "(config)"
        value = f" = {self.value}" if self.value else ""
        return f"{self.source}: {key}{value}: {self.expected}"


class ConfigInvalidError(ConfigError):
    """Raised by :func:`load_settings`; ``problems`` lists everything that is wrong."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class _DictSource(PydanticBaseSettingsSource):
    """A settings source backed by a dict held in a context variable."""

    def __init__(
        self, settings_cls: type[BaseSettings], var: contextvars.ContextVar[dict[str, Any]]
    ):
        super().__init__(settings_cls)
        self._var = var

    def get_field_value(
        self,
        field: FieldInfo,  # noqa: ARG002 - required by the interface
        field_name: str,
    ) -> tuple[Any, str, bool]:
        return self._var.get({}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._var.get({}))


class _EnvSource(EnvSettingsSource):
    """``TBOTD_*`` variables from the mapping given to :func:`load_settings` (tests pass a dict)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in _environ.get(os.environ).items()}


class _LoadedSettings(Settings):
    """Settings whose lower-priority sources are the secrets and the TOML file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - replaced by _EnvSource
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - see _secrets
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _EnvSource(settings_cls),
            _DictSource(settings_cls, _secret_data),
            _DictSource(settings_cls, _file_data),
        )


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Load ``path`` with environment overrides; any problem raises :class:`ConfigInvalidError`."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    data = read_toml(path)
    problems = list(_file_secrets(data, path)) + list(_unknown_env_keys(environ))
    not_json = dict(_not_json_env_values(environ))
    problems += not_json.values()
    environ = {k: v for k, v in environ.items() if k not in not_json}
    for section, key in SECRET_FIELDS:  # reported above; validate the rest anyway
        block = data.get(section)
        if isinstance(block, dict):
            block.pop(key, None)
    secrets = _secrets(environ, problems)
    tokens = (_file_data.set(data), _secret_data.set(secrets), _environ.set(environ))
    try:
        settings = _LoadedSettings()
    except ValidationError as e:
        problems.extend(_explain(e, path, environ))
    finally:
        _file_data.reset(tokens[0])
        _secret_data.reset(tokens[1])
        _environ.reset(tokens[2])
    if problems:
        raise ConfigInvalidError(problems)
    return settings


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's TOML, or :class:`ConfigInvalidError` naming the file and what is wrong."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigInvalidError([ConfigProblem(str(path), "", "", "file not found")]) from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigInvalidError([ConfigProblem(str(path), "", "", f"cannot read: {e}")]) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigInvalidError([ConfigProblem(str(path), "", "", f"not valid TOML: {e}")]) from e


def _file_secrets(data: dict[str, Any], path: Path) -> Iterator[ConfigProblem]:
    for section, key in SECRET_FIELDS:
        block = data.get(section)
        if isinstance(block, dict) and key in block:
            yield ConfigProblem(
                str(path),
                f"{section}.{key}",
                "***",
                "secrets are read only from the environment or systemd credentials, "
                f"not from config files (use {_env_name((section, key))})",
            )


def _secrets(environ: Mapping[str, str], problems: list[ConfigProblem]) -> dict[str, Any]:
    """Secrets from ``BASIS_ML_API_TOKEN`` and from systemd's ``$CREDENTIALS_DIRECTORY``."""
    found: dict[str, dict[str, str]] = {}
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        for name, (section, key) in CREDENTIAL_FILES.items():
            file = Path(cred_dir) / name
            try:
                value = file.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                continue
            except OSError as e:
                problems.append(
                    ConfigProblem(str(file), f"{section}.{key}", "", f"unreadable: {e}")
                )
                continue
            found.setdefault(section, {})[key] = value
    token = environ.get(ML_TOKEN_ENV)
    if token:
        found.setdefault("ml", {})["token"] = token
    return found


def read_ml_token(environ: Mapping[str, str] | None = None) -> str | None:
    """``BASIS_ML_API_TOKEN`` from the environment, else from systemd's credential file.

    For commands that need the token without a config file (``tbotd serve``); same precedence
    as :func:`load_settings` (the environment wins).
    """
    environ = os.environ if environ is None else environ
    token = environ.get(ML_TOKEN_ENV, "").strip()
    if token:
        return token
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        try:
            token = (Path(cred_dir) / "basis_ml_api_token").read_text(encoding="utf-8").strip()
        except OSError:
            return None
    return token or None


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The config sections an annotation allows: the model itself, or each member of a union
    (``strategy`` is a union on ``kind``, ``strategy.classic`` one on ``name``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [m for a in get_args(annotation) for m in _models(a)]
    return []


def _known_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    seen: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path
        for section in _models(field.annotation):
            for known in _known_paths(section, path):
                if known not in seen:
                    seen.add(known)
                    yield known


def _unknown_env_keys(environ: Mapping[str, str]) -> Iterator[ConfigProblem]:
    known = {"__".join(p).upper() for p in _known_paths(Settings)}
    for name in environ:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper[len(ENV_PREFIX) :] not in known:
            yield ConfigProblem(
                f"environment {name}",
                name[len(ENV_PREFIX) :].lower().replace("__", "."),
                "",
                "unknown setting (expected TBOTD_SECTION__KEY naming a key of the config)",
            )


def _takes_json(annotation: Any) -> bool:
    """Keys whose environment value pydantic-settings parses as JSON (lists, tables)."""
    if _models(annotation):
        return True
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_takes_json(a) for a in get_args(annotation) if a is not type(None))
    return origin in (list, tuple, dict, set, frozenset)


def _not_json_env_values(environ: Mapping[str, str]) -> Iterator[tuple[str, ConfigProblem]]:
    """``TBOTD_*`` variables for list or table keys whose value is not JSON.

    pydantic-settings would raise its own SettingsError (a traceback, not a problem list).
    """
    fields = {"__".join(p).upper(): p for p in _known_paths(Settings)}
    for name, value in environ.items():
        upper = name.upper()
        path = fields.get(upper[len(ENV_PREFIX) :]) if upper.startswith(ENV_PREFIX) else None
        if path is None or not _takes_json(_annotation(path)):
            continue
        try:
            json.loads(value)
        except ValueError:
            yield (
                name,
                ConfigProblem(
                    f"environment {name}",
                    ".".join(path),
                    _short(value),
                    'expected JSON: a list such as ["BTC/USDT:USDT"] or a table such as {"k": 1}',
                ),
            )


def _annotation(path: tuple[str, ...]) -> Any:
    models: list[type[BaseModel]] = [Settings]
    annotation: Any = None
    for name in path:
        annotation = next(m.model_fields[name] for m in models if name in m.model_fields).annotation
        models = _models(annotation)
    return annotation


def _config_key(loc: tuple[str, ...]) -> tuple[str, ...]:
    """A validation error's location as the config's key: the union tags pydantic inserts
    (``strategy.classic.momentum.fast_ema_bars``) dropped, so the key is the one in the file."""
    key: list[str] = []
    models: list[type[BaseModel]] = [Settings]
    tag_expected = False  # just entered a union: pydantic's next location is the member's tag
    for part in loc:
        if tag_expected:
            tag_expected = False
            continue
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        key.append(part)
        models = [s for f in fields for s in _models(f.annotation)]
        tag_expected = len(models) > 1
    return tuple(key)


def _env_name(loc: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(loc).upper()


def _explain(error: ValidationError, path: Path, environ: Mapping[str, str]) -> list[ConfigProblem]:
    problems = []
    env_upper = {k.upper(): k for k in environ}
    for err in error.errors():
        loc = _config_key(tuple(str(p) for p in err["loc"]))
        if err["type"] == "config_tag":  # a union's tag (strategy.kind, classic.name)
            loc = (*loc, str(err.get("ctx", {}).get("key", "")))
        key = ".".join(loc)
        source = str(path)
        for depth in range(len(loc), 0, -1):
            env = _env_name(loc[:depth])
            if env in env_upper:
                source = f"environment {env_upper[env]}"
                break
        misspelt = err["type"] == "extra_forbidden" and bool(_SECRET_NAME.search(loc[-1]))
        secret = misspelt or any(loc[:2] == pair for pair in SECRET_FIELDS)
        given = err.get("input")
        if err["type"] == "missing":
            value, expected = "", "missing required value"
        elif err["type"] == "config_tag" and isinstance(given, dict):
            tag = given.get(loc[-1])
            value, expected = ("" if tag is None else _short(tag)), _expected(err)
        elif isinstance(given, dict):  # a check of a whole section: its contents hold secrets
            value, expected = "", _expected(err)
        else:
            value = "***" if secret else _short(given)
            expected = _expected(err)
        if err["type"] == "extra_forbidden":
            expected = _unknown(loc)
        problems.append(ConfigProblem(source, key, value, expected))
    return problems


def _unknown(loc: tuple[str, ...]) -> str:
    """An unknown key, with the nearest real one (``threshhold`` → ``strategy.threshold``), and
    how to give it when that one is a secret."""
    siblings = _sibling_keys(loc[:-1])
    near = difflib.get_close_matches(loc[-1], siblings, n=1, cutoff=0.75)
    if not near:
        return "unknown key (keys are listed in configs/*.toml)"
    meant = (*loc[:-1], near[0])
    if meant in SECRET_FIELDS:
        return (
            f"unknown key — did you mean {'.'.join(meant)}? It is a secret: give it only "
            f"through {_env_name(meant)} or a systemd credential, never in the file"
        )
    return f"unknown key — did you mean {'.'.join(meant)}?"


def _sibling_keys(parent: tuple[str, ...]) -> list[str]:
    """The keys a section allows (every member's, for a union section like ``strategy``)."""
    models: list[type[BaseModel]] = [Settings]
    for name in parent:
        fields = [m.model_fields[name] for m in models if name in m.model_fields]
        models = [sub for f in fields for sub in _models(f.annotation)]
    return sorted({name for m in models for name in m.model_fields})


def _expected(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (typo? keys are listed in configs/*.toml)"
    if err["type"] in ("tuple_type", "list_type"):
        return 'expected a list, e.g. ["BTC/USDT:USDT"]'
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
