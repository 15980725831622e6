"""The names a config chooses a strategy by (README: Strategies); plain enums, so config and
strategy code can share them without the strategy ever importing the config."""

from __future__ import annotations

from enum import StrEnum


class StrategyKind(StrEnum):
    """Which signal source drives the shared position rules (``strategy.kind``)."""

    ML_DIRECTIONAL = "ml_directional"  # the ML prediction alone (README: Strategies)
    CLASSIC = "classic"  # a rule strategy over indicators of closed candles
    ML_ENHANCED = "ml_enhanced"  # a classic strategy with the ML enhancement layer over it
    ML_MOMENTUM = "ml_momentum"  # the direction model's call while the regime model says trending
    ML_MEAN_REVERSION = "ml_mean_reversion"  # fade an extreme call while the regime says sideways


PURE_ML_KINDS = (StrategyKind.ML_MOMENTUM, StrategyKind.ML_MEAN_REVERSION)


class ClassicName(StrEnum):
    """The classic rule strategies (``strategy.classic.name``)."""

    MEAN_REVERSION = "mean_reversion"  # Bollinger bands + RSI
    MOMENTUM = "momentum"  # EMA crossover, strength in ATRs


class EnhanceMode(StrEnum):
    """How the ML opinion changes the classic signal (``strategy.enhance.mode``, README:
    Strategies)."""

    BOOST = "boost"
    FILTER = "filter"
    REPLACE = "replace"
    HYBRID = "hybrid"


class ReplaceOn(StrEnum):
    """Where ``replace`` lets the ML opinion stand in for the classic signal."""

    CLASSIC_BARS = "classic_bars"  # only on bars where the classic strategy has a setup
    ALL_BARS = "all_bars"  # on every bar


class SecondaryModel(StrEnum):
    """The optional model that must confirm: the ML opinion (``regime``) or the classic setup
    (``meta_label``, :mod:`tbotd.strategy.meta_label`) before it counts."""

    NONE = "none"
    REGIME = "regime"  # the regime detector's probabilities carried by the prediction
    META_LABEL = "meta_label"  # a meta-label model confirms or vetoes the classic setups


class OnNeutral(StrEnum):
    """What a confident neutral (flat) signal does to an open position."""

    CLOSE = "close"
    HOLD = "hold"
