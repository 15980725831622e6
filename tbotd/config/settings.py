"""The configuration tree: frozen pydantic models, unknown keys rejected, units in the names.

Values come from a TOML file (see ``configs/``), overridden by ``TBOTD_SECTION__KEY`` environment
variables. Secrets (:class:`~pydantic.SecretStr`) come only from the environment or systemd
credentials, never from the file, and are masked whenever the config is printed.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from tbotd.config.notify import NotifyConfig
from tbotd.config.retrain import RetrainConfig
from tbotd.config.risk import RiskConfig
from tbotd.config.section import Section as _Section
from tbotd.config.strategy import (
    StrategyConfig,
)
from tbotd.domain.enums import MarginMode, MarketType, TradingMode
from tbotd.domain.values import timeframe_ms

_SYMBOL = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$")
_INSTANCE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: traffic to it never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sends_secrets_safely(url: str) -> bool:
    """True for https URLs and for http to a loopback host: where a bearer token may travel."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and is_loopback_host(parts.hostname or "")


class WireFormat(StrEnum):
    """Remote ML wire formats: the JSON prediction API or the Open Inference Protocol v2."""

    JSON = "json"
    OIP = "oip"


class Device(StrEnum):
    """Where local models run; ``auto`` picks CUDA when available."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class LogFormat(StrEnum):
    """``auto``: JSON lines when stdout is not a terminal, readable console output when it is."""

    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


Bps = Annotated[Decimal, Field(ge=0, le=10_000)]


class ExchangeConfig(_Section):
    """Which venue and markets to trade, and how to reach them."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9]+$")] = "binanceusdm"
    market_type: MarketType
    symbols: Annotated[tuple[str, ...], Field(min_length=1, max_length=200)]
    timeframe: str = "5m"
    base_url: str = Field(default="", description="override for the local exchange (tbotd sim)")
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    request_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0

    @field_validator("symbols")
    @classmethod
    def _unified_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            if not _SYMBOL.match(symbol):
                raise ValueError(f"{symbol!r} is not a unified perp symbol like 'BTC/USDT:USDT'")
        if len(set(value)) != len(value):
            raise ValueError("symbols are listed more than once")
        return value

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        timeframe_ms(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("base_url must be an http(s) URL such as http://127.0.0.1:8800")
        return value.rstrip("/")


class MLConfig(_Section):
    """Prediction sources: remote API first, then local models, then neutral.

    ``deadline_s`` bounds the whole prediction step of a cycle (wall-clock seconds); the remote
    service gets ``deadline_s - local_reserve_s`` of it, so the local models always have time.
    """

    remote_url: str = ""
    wire_format: WireFormat = WireFormat.JSON
    model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "tbotd"
    deadline_s: Annotated[float, Field(gt=0, le=120)] = 3.0
    token: SecretStr | None = Field(default=None, description="from BASIS_ML_API_TOKEN")
    auth_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] = "Authorization"
    auth_scheme: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{0,32}$")] = "Bearer"
    models_dir: Path | None = None
    device: Device = Device.AUTO
    # shelf life from the end of a model's training data; past it the model abstains (None: none)
    max_model_age_days: Annotated[float, Field(gt=0, le=3650)] | None = None
    # a model whose rolling hit rate fell below its baselines (monitoring.health): still trade it?
    trade_when_degraded: bool = False
    # the remote client (tbotd/predictor/remote.py); every timeout is capped by the deadline
    model_version: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,64}$")] = ""
    remote_connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    remote_timeout_s: Annotated[float, Field(gt=0, le=120)] = 2.5
    remote_retries: Annotated[int, Field(ge=0, le=2)] = 2
    remote_backoff_s: Annotated[float, Field(gt=0, le=10)] = 0.1
    remote_backoff_cap_s: Annotated[float, Field(gt=0, le=30)] = 1.0
    remote_breaker_failures: Annotated[int, Field(ge=1, le=100)] = 3
    remote_breaker_cooldown_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    remote_candles: Annotated[int, Field(ge=0, le=5000)] = 576
    remote_ca_file: Path | None = None
    remote_require_schema_hash: bool = True
    local_reserve_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    # champion/challenger retraining of the local models (:mod:`tbotd.config.retrain`)
    retrain: RetrainConfig = RetrainConfig()

    @field_validator("remote_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("remote_url must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _token_only_over_tls(self) -> MLConfig:
        if self.token is not None and self.remote_url and not sends_secrets_safely(self.remote_url):
            raise ValueError(
                f"remote_url {self.remote_url} is plain http to a non-loopback host: the ML token "
                "is only sent over https (or to 127.0.0.1/localhost)"
            )
        if self.local_reserve_s >= self.deadline_s:
            raise ValueError(
                f"local_reserve_s ({self.local_reserve_s}) must be below deadline_s "
                f"({self.deadline_s}): it is the part of the deadline kept for the local models"
            )
        return self


class ExecutionConfig(_Section):
    """How orders are executed and sized."""

    mode: TradingMode = TradingMode.PAPER
    leverage: Annotated[int, Field(ge=1, le=125)] = 1
    margin_mode: MarginMode = MarginMode.ISOLATED
    position_fraction: Annotated[Decimal, Field(gt=0, le=1)] = Decimal(1)
    slippage_bps: Bps = Decimal(2)
    taker_fee_bps: Bps = Decimal(5)
    maker_fee_bps: Bps = Decimal(2)
    # kept free when sizing, for price moves between decision and fill (see strategy/sizing.py)
    size_buffer_bps: Bps = Decimal(20)


class StoreConfig(_Section):
    """Where the SQLite database lives (one file per instance)."""

    path: Path = Path("tbotd.sqlite")


MIN_OPS_TOKEN_CHARS = 24  # a short or guessable token guards nothing on an open port


class OpsConfig(_Section):
    """The HTTP ops endpoint and the web dashboard; loopback by default, a token for anything
    beyond health. ``allow_write``: the dashboard may edit the strategy and ML settings (off:
    it only shows them).

    Checked here so that `check-config` refuses what the run would: a bind beyond loopback
    without a token (anyone on the network could read positions), and a token too short to
    guard anything.
    """

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8787
    token: SecretStr | None = None
    allow_write: bool = False

    @model_validator(mode="after")
    def _guarded(self) -> OpsConfig:
        if self.token is not None and len(self.token.get_secret_value().strip()) < (
            MIN_OPS_TOKEN_CHARS
        ):
            raise ValueError(
                f"ops.token is shorter than {MIN_OPS_TOKEN_CHARS} characters; make one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        if self.token is None and not is_loopback_host(self.host):
            raise ValueError(
                f"ops.host = {self.host!r} is beyond loopback: set an ops token "
                "(TBOTD_OPS__TOKEN or the ops_token credential), or bind 127.0.0.1"
            )
        return self


class DaemonConfig(_Section):
    """The cycle's timing. ``time_scale`` > 1 only against an accelerated `tbotd sim`.

    The cycle fires ``grace_s`` after each candle boundary and then waits (up to
    ``candle_wait_s``) for every symbol's closed candle, so it starts the moment they arrive;
    REST is asked to confirm a candle ``confirm_after_s`` after its close when the stream has not
    rolled over (illiquid markets).
    """

    grace_s: Annotated[float, Field(ge=0, le=60)] = 0.05
    # a candle stream connected but silent this long (wall seconds) is redialled, and the
    # daemon reports not ready meanwhile (Binance pushes kline updates every few seconds)
    stream_silent_after_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    # an exchange unreachable at start is waited for, retrying at most this far apart
    startup_retry_cap_s: Annotated[float, Field(ge=1, le=600)] = 30.0
    confirm_after_s: Annotated[float, Field(ge=0, le=120)] = 3.0
    candle_wait_s: Annotated[float, Field(gt=0, le=120)] = 20.0
    reconcile_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    # the venue's clock is re-read this often (exchange seconds), between closes, never at one
    clock_resync_s: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    history_bars: Annotated[int, Field(ge=50, le=20_000)] = 1000
    time_scale: Annotated[float, Field(gt=0, le=10_000)] = 1.0
    stop_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0


class LogConfig(_Section):
    """Logging level and format."""

    level: Annotated[str, Field(pattern=r"^(debug|info|warning|error)$")] = "info"
    format: LogFormat = LogFormat.AUTO


class Settings(BaseSettings):
    """The whole configuration of one tbotd instance."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="TBOTD_",
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    instance: str = "tbotd"
    exchange: ExchangeConfig
    strategy: StrategyConfig
    ml: MLConfig = MLConfig()
    execution: ExecutionConfig = ExecutionConfig()
    store: StoreConfig = StoreConfig()
    ops: OpsConfig = OpsConfig()
    daemon: DaemonConfig = DaemonConfig()
    log: LogConfig = LogConfig()
    notify: NotifyConfig = NotifyConfig()
    risk: RiskConfig = RiskConfig()

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not _INSTANCE.match(value):
            raise ValueError("instance must be 1-32 characters of letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        inverse = self.exchange.market_type is MarketType.INVERSE
        for symbol in self.exchange.symbols:
            settle = symbol.rsplit(":", 1)[1]
            if settle != self.strategy.share_class:
                raise ValueError(
                    f"symbol {symbol} settles in {settle} but strategy.share_class is "
                    f"{self.strategy.share_class}: equity is accounted in the settlement currency"
                )
            quote = symbol.split("/")[1].split(":")[0]
            if inverse != (settle != quote):
                kind = "inverse (settled in the base coin)" if inverse else "linear"
                raise ValueError(f"symbol {symbol} is not a {kind} perp")
        self._stops_fit_the_leverage()
        if self.execution.mode is TradingMode.LIVE and (
            self.exchange.api_key is None or self.exchange.api_secret is None
        ):
            raise ValueError(
                "live mode needs TBOTD_EXCHANGE__API_KEY and TBOTD_EXCHANGE__API_SECRET "
                "(environment or systemd credentials)"
            )
        return self

    def _stops_fit_the_leverage(self) -> None:
        """At high leverage the liquidation price comes nearer than the smallest stop allowed."""
        from tbotd.domain.enums import Side
        from tbotd.strategy.exits import LIQUIDATION_SHARE, ExitBounds

        bounds = ExitBounds(
            min_stop=self.strategy.min_stop_pct / 100,
            max_stop=self.strategy.max_stop_pct / 100,
            leverage=Decimal(self.execution.leverage),
        )
        for side in Side:
            near, far, _ = bounds.stop_range(self.exchange.market_type, side)
            if far < near:
                raise ValueError(
                    f"execution.leverage {self.execution.leverage} puts a {side}'s liquidation "
                    f"{far / LIQUIDATION_SHARE:.2%} from its entry: a stop may use at most half "
                    f"of that, below strategy.min_stop_pct {self.strategy.min_stop_pct}; "
                    "lower the leverage"
                )


SECRET_FIELDS: tuple[tuple[str, str], ...] = (
    ("exchange", "api_key"),
    ("exchange", "api_secret"),
    ("ml", "token"),
    ("ops", "token"),
    ("notify", "urls"),
)
