"""``build_strategy(settings)``: the one place a config becomes a :class:`Strategy`.

The daemon's cycle, its SIGHUP reload, the wiring of the brokers (their fallback exits) and the
backtest (every arm of ``--compare`` too) all build their strategy here, so no rule is read from
the config twice. This is the only strategy module that imports the config: the strategy, its
signal sources, the enhancement layer, sizing and TP/SL stay pure.
"""

from __future__ import annotations

from decimal import Decimal

from tbotd.config.ml_strategies import PureMLTables
from tbotd.config.settings import Settings
from tbotd.config.strategy import (
    ClassicStrategyConfig,
    MeanReversionConfig,
    MLEnhancedConfig,
    MomentumConfig,
)
from tbotd.strategy.classic import (
    ClassicStrategy,
    MeanReversion,
    MeanReversionParams,
    Momentum,
    MomentumParams,
)
from tbotd.strategy.consensus import ConsensusParams
from tbotd.strategy.enhance import EnhanceParams
from tbotd.strategy.exits import ExitBounds, ExitParams
from tbotd.strategy.kinds import PURE_ML_KINDS, SecondaryModel, StrategyKind
from tbotd.strategy.meta_label import MetaLabel
from tbotd.strategy.pure_ml import MLMeanReversionParams, MLMomentumParams, PureML
from tbotd.strategy.rules import ManagerConfig
from tbotd.strategy.strategy import Strategy


def build_strategy(settings: Settings) -> Strategy:
    """The strategy of one tbotd instance: its signal source and position rules."""
    s = settings.strategy
    rules = rules_config(settings)
    if isinstance(s, ClassicStrategyConfig):
        return Strategy(s.kind, rules, classic_strategy(s.classic))
    if isinstance(s, MLEnhancedConfig):
        e = s.enhance
        params = EnhanceParams(
            e.mode, e.ml_weight, e.confidence_threshold, e.fail_open, e.replace_on
        )
        gate = meta_label(settings) if e.secondary_model is SecondaryModel.META_LABEL else None
        classic = classic_strategy(s.classic)
        return Strategy(s.kind, rules, classic, params, e.secondary_model, meta=gate)
    if s.kind in PURE_ML_KINDS:
        return Strategy(s.kind, rules, pure=pure_ml(settings, s.kind))
    return Strategy(s.kind, rules, secondary=SecondaryModel.NONE)


def pure_ml(settings: Settings, kind: StrategyKind) -> PureML:
    """A pure ML kind's knobs: the config's pure ML tables (their defaults where it has none, as
    for the arms of ``--compare`` over an ``ml_enhanced`` config) and the fee band of the price
    model's vote: the round trip's taker fees and slippage."""
    s = settings.strategy
    tables = s if isinstance(s, PureMLTables) else PureMLTables()
    c, m, r = tables.consensus, tables.ml_momentum, tables.ml_mean_reversion
    ex = settings.execution
    band = float(2 * (ex.taker_fee_bps + ex.slippage_bps) / 10_000)
    return PureML(
        kind,
        ConsensusParams(c.min_confidence, c.min_quorum, c.min_agreement, band, c.regime_votes),
        MLMomentumParams(m.enter_trend, m.exit_trend),
        MLMeanReversionParams(r.extreme_probability, r.min_sideways),
    )


def meta_label(settings: Settings) -> MetaLabel | None:
    """The meta-label gate of ``[strategy.meta_label]`` (None without ``models_dir``); the model
    itself is loaded on first use (``tbotd.ml.meta.scorer``: torch only then)."""
    s = settings.strategy
    table = s.meta_label if isinstance(s, MLEnhancedConfig) else None
    if table is None or table.models_dir is None:
        return None
    from tbotd.ml.meta.scorer import MetaModelScorer

    return MetaLabel(table.threshold, MetaModelScorer(table.models_dir, table.device))


def classic_strategy(cfg: MeanReversionConfig | MomentumConfig) -> ClassicStrategy:
    """A classic rule strategy from its ``[strategy.classic]`` table."""
    if isinstance(cfg, MeanReversionConfig):
        return MeanReversion(
            MeanReversionParams(
                cfg.bollinger_window_bars,
                cfg.bollinger_width_sd,
                cfg.rsi_window_bars,
                cfg.rsi_oversold,
                cfg.rsi_overbought,
                cfg.exit_at_middle_band,
            )
        )
    return Momentum(
        MomentumParams(
            cfg.fast_ema_bars, cfg.slow_ema_bars, cfg.atr_window_bars, cfg.full_confidence_atr
        )
    )


def exit_params(settings: Settings) -> ExitParams:
    """TP/SL knobs and bounds (also the brokers' fallback when a plan's prices are unusable)."""
    strategy, execution = settings.strategy, settings.execution
    return ExitParams(
        strategy.k_sl,
        strategy.k_tp,
        strategy.stop_loss_pct,
        strategy.take_profit_pct,
        ExitBounds(
            min_stop=strategy.min_stop_pct / 100,
            max_stop=strategy.max_stop_pct / 100,
            min_take=strategy.min_take_profit_pct / 100,
            max_take=strategy.max_take_profit_pct / 100,
            prediction_band=strategy.prediction_price_band_pct / 100,
            leverage=Decimal(execution.leverage),
        ),
    )


def rules_config(settings: Settings) -> ManagerConfig:
    """The position rules' knobs from the strategy and execution sections."""
    strategy, execution = settings.strategy, settings.execution
    return ManagerConfig(
        threshold=strategy.threshold,
        on_neutral=strategy.on_neutral,
        refresh_exits_on_hold=strategy.refresh_exits_on_hold,
        position_fraction=execution.position_fraction,
        leverage=Decimal(execution.leverage),
        exits=exit_params(settings),
        cost_rate=(execution.taker_fee_bps + execution.slippage_bps + execution.size_buffer_bps)
        / 10_000,
        max_entries_per_hour=strategy.max_entries_per_hour,
    )
