"""``[strategy]``: the kinds of strategy a config can name (README: Strategies), one pydantic
model per ``strategy.kind`` behind a discriminated union, and the position rules they share.

Split from :mod:`tbotd.config.settings` (which re-exports every name) so the tree's largest
section reads on its own; ``tbotd.strategy.build`` turns these into the strategy objects.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from tbotd.config.meta_label import MetaLabelTable
from tbotd.config.ml_strategies import PureMLTables
from tbotd.config.section import Section as _Section
from tbotd.strategy.kinds import (
    ClassicName,
    EnhanceMode,
    OnNeutral,
    ReplaceOn,
    SecondaryModel,
    StrategyKind,
)


class StrategyMode(StrEnum):
    """The two ML directional modes of README: Strategies; both are configs, not code branches."""

    ML_USDT_DIRECTIONAL = "ml_usdt_directional"
    ML_BTC_DIRECTIONAL = "ml_btc_directional"


class _StrategyBase(_Section):
    """What every ``strategy.kind`` shares: the share class, and the position rules (README:
    Strategies): threshold, flat/neutral handling, TP/SL and their bounds, the entry cap."""

    mode: StrategyMode
    share_class: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,10}$")]
    initial_capital: Annotated[Decimal, Field(gt=0)]
    threshold: Annotated[float, Field(ge=0, le=1)]
    on_neutral: OnNeutral = OnNeutral.CLOSE
    refresh_exits_on_hold: bool = False
    k_sl: Annotated[Decimal, Field(gt=0, le=100)] = Decimal("1.5")
    k_tp: Annotated[Decimal, Field(gt=0, le=100)] = Decimal("2.0")
    stop_loss_pct: Annotated[Decimal, Field(gt=0, lt=100)] = Decimal("1.0")
    take_profit_pct: Annotated[Decimal, Field(gt=0, le=1000)] = Decimal("2.0")
    # README: Protection: whatever a model says, a stop risks between these shares of the entry
    # (also at most half the way to the liquidation price at execution.leverage), a target lies
    # between the take-profit bounds, and a model's absolute price farther than the band is refused.
    min_stop_pct: Annotated[Decimal, Field(gt=0, lt=100)] = Decimal("0.3")
    max_stop_pct: Annotated[Decimal, Field(gt=0, lt=100)] = Decimal("5.0")
    min_take_profit_pct: Annotated[Decimal, Field(gt=0, le=1000)] = Decimal("0.3")
    max_take_profit_pct: Annotated[Decimal, Field(gt=0, le=1000)] = Decimal("20.0")
    prediction_price_band_pct: Annotated[Decimal, Field(gt=0, le=100)] = Decimal("20.0")
    max_entries_per_hour: Annotated[int, Field(ge=1, le=60)] = 4  # per symbol

    @model_validator(mode="after")
    def _bounds(self) -> _StrategyBase:
        for low, value, high in (
            ("min_stop_pct", "stop_loss_pct", "max_stop_pct"),
            ("min_take_profit_pct", "take_profit_pct", "max_take_profit_pct"),
        ):
            if not getattr(self, low) <= getattr(self, value) <= getattr(self, high):
                raise ValueError(
                    f"{value} ({getattr(self, value)}) must lie between {low} "
                    f"({getattr(self, low)}) and {high} ({getattr(self, high)})"
                )
        return self


Bars = Annotated[int, Field(ge=2, le=10_000)]  # an indicator window: a window of 1 means nothing


class MeanReversionConfig(_Section):
    """``[strategy.classic]`` with ``name = "mean_reversion"``: Bollinger bands + RSI."""

    name: Literal[ClassicName.MEAN_REVERSION]
    bollinger_window_bars: Bars = 20
    bollinger_width_sd: Annotated[float, Field(gt=0, le=10)] = 2.0
    rsi_window_bars: Bars = 14
    rsi_oversold: Annotated[float, Field(gt=0, lt=100)] = 30.0
    rsi_overbought: Annotated[float, Field(gt=0, lt=100)] = 70.0
    exit_at_middle_band: bool = True

    @model_validator(mode="after")
    def _levels(self) -> MeanReversionConfig:
        if not self.rsi_oversold < self.rsi_overbought:
            raise ValueError(
                f"rsi_oversold ({self.rsi_oversold}) must be below rsi_overbought "
                f"({self.rsi_overbought})"
            )
        return self


class MomentumConfig(_Section):
    """``[strategy.classic]`` with ``name = "momentum"``: EMA crossover, strength in ATRs."""

    name: Literal[ClassicName.MOMENTUM]
    fast_ema_bars: Bars = 12
    slow_ema_bars: Bars = 48
    atr_window_bars: Bars = 14
    full_confidence_atr: Annotated[float, Field(gt=0, le=100)] = 1.0

    @model_validator(mode="after")
    def _windows(self) -> MomentumConfig:
        if not self.fast_ema_bars < self.slow_ema_bars:
            raise ValueError(
                f"fast_ema_bars ({self.fast_ema_bars}) must be below slow_ema_bars "
                f"({self.slow_ema_bars})"
            )
        return self


def _tag(key: str, default: str | None = None) -> Any:
    """A union's member by the value of ``key`` (``default`` when absent), and an error that
    names the key and the choices when the value is unknown."""

    def tag(value: Any) -> str | None:
        found = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        return str(found) if found is not None else default

    return tag


ClassicConfig = Annotated[
    Annotated[MeanReversionConfig, Tag(ClassicName.MEAN_REVERSION.value)]
    | Annotated[MomentumConfig, Tag(ClassicName.MOMENTUM.value)],
    Discriminator(
        _tag("name"),
        custom_error_type="config_tag",
        custom_error_message="unknown or missing classic strategy (expected mean_reversion or "
        "momentum)",
        custom_error_context={"key": "name"},
    ),
]


class EnhanceConfig(_Section):
    """``[strategy.enhance]``: how ML changes the classic signal (README: Strategies, its truth
    table).

    ``confidence_threshold``: below it the model abstains (never a vote of 0.5);
    ``fail_open``: ``filter`` passes the classic signal while ML abstains instead of blocking it;
    ``replace_on``: where ``replace`` lets ML stand in; ``secondary_model``: a model that must
    confirm the ML opinion (``regime``: the regime detector must not lean against it) or the
    classic setup (``meta_label``: ``[strategy.meta_label]``, :mod:`tbotd.config.meta_label`).
    """

    mode: EnhanceMode
    ml_weight: Annotated[float, Field(ge=0, le=1)] = 0.3
    confidence_threshold: Annotated[float, Field(ge=0, le=1)] = 0.6
    fail_open: bool = False
    replace_on: ReplaceOn = ReplaceOn.CLASSIC_BARS
    secondary_model: SecondaryModel = SecondaryModel.NONE


class MLDirectionalConfig(_StrategyBase):
    """``kind = "ml_directional"`` (the default): the ML prediction is the signal (README:
    Strategies)."""

    kind: Literal[StrategyKind.ML_DIRECTIONAL] = StrategyKind.ML_DIRECTIONAL


class ClassicStrategyConfig(_StrategyBase):
    """``kind = "classic"``: a rule strategy alone."""

    kind: Literal[StrategyKind.CLASSIC]
    classic: ClassicConfig


class MLEnhancedConfig(_StrategyBase, PureMLTables, MetaLabelTable):
    """``kind = "ml_enhanced"``: a classic strategy with the ML enhancement layer over it (the
    pure ML tables, if given, tune the pure ML arms of ``backtest --compare``)."""

    kind: Literal[StrategyKind.ML_ENHANCED]
    classic: ClassicConfig
    enhance: EnhanceConfig


class MLMomentumConfig(_StrategyBase, PureMLTables):
    """``kind = "ml_momentum"``: the direction model's call while the regime model says trending,
    with consensus (``[strategy.consensus]``, ``[strategy.ml_momentum]``)."""

    kind: Literal[StrategyKind.ML_MOMENTUM]


class MLMeanReversionConfig(_StrategyBase, PureMLTables):
    """``kind = "ml_mean_reversion"``: fade an extreme call while the regime model says sideways,
    with consensus (``[strategy.consensus]``, ``[strategy.ml_mean_reversion]``)."""

    kind: Literal[StrategyKind.ML_MEAN_REVERSION]


StrategyConfig = Annotated[
    Annotated[MLDirectionalConfig, Tag(StrategyKind.ML_DIRECTIONAL.value)]
    | Annotated[ClassicStrategyConfig, Tag(StrategyKind.CLASSIC.value)]
    | Annotated[MLEnhancedConfig, Tag(StrategyKind.ML_ENHANCED.value)]
    | Annotated[MLMomentumConfig, Tag(StrategyKind.ML_MOMENTUM.value)]
    | Annotated[MLMeanReversionConfig, Tag(StrategyKind.ML_MEAN_REVERSION.value)],
    Discriminator(
        _tag("kind", StrategyKind.ML_DIRECTIONAL.value),
        custom_error_type="config_tag",
        custom_error_message="unknown strategy kind (expected ml_directional, classic, "
        "ml_enhanced, ml_momentum or ml_mean_reversion)",
        custom_error_context={"key": "kind"},
    ),
]
